"""Inspection where users look: `inspect --config` reads Waymo-in-KITTI-format frames, and `browse` shows one
sample as pre-training sees it (both views, the network image, point-to-pixel and matched pairs)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simipu.checkpoint import save_checkpoint
from simipu.cli import main
from simipu.config import load_config
from simipu.data import write_calib
from simipu.model import SimIPU
from simipu.pipeline import PretrainDataset
from simipu.viz.training import network_image, sample_pairs

from conftest import KITTI_P2

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
FRAME = "1000007"  # mmdetection3d's Waymo converter: 7-digit ids


@pytest.fixture
def waymo_root(tmp_path) -> Path:
    """One Waymo-in-KITTI-format frame: image_0 (front camera), P0..P4 and Tr_velo_to_cam_0..4, 6 floats a point."""
    root, rng = tmp_path / "waymo_kitti", np.random.default_rng(0)
    d = root / "training"
    for sub in ("velodyne", "image_0", "calib"):
        (d / sub).mkdir(parents=True)
    n = 3000
    xyz = np.column_stack([rng.uniform(5, 60, n), rng.uniform(-10, 10, n), rng.uniform(-2, 0.5, n)])
    extra = rng.uniform(0, 1, (n, 3))  # intensity, elongation, timestamp
    np.column_stack([xyz, extra]).astype(np.float32).tofile(d / "velodyne" / f"{FRAME}.bin")
    Image.fromarray(rng.integers(0, 256, (375, 1242, 3), dtype=np.uint8)).save(d / "image_0" / f"{FRAME}.png")
    Tr = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
    side = np.array(KITTI_P2)
    side[0, 2] += 5000.0  # the other cameras look elsewhere: reading P2 would put no point in the image
    calib = {f"P{i}": (np.array(KITTI_P2) if i == 0 else side) for i in range(5)}
    calib.update(R0_rect=np.eye(3), **{f"Tr_velo_to_cam_{i}": Tr for i in range(5)})
    write_calib(d / "calib" / f"{FRAME}.txt", calib)
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "train.txt").write_text(FRAME + "\n")
    return root


def test_inspect_reads_a_waymo_frame_with_the_waymo_config(waymo_root, tmp_path, capsys):
    out = tmp_path / "waymo.png"
    rc = main(["inspect", "--config", "waymo", "--data-root", str(waymo_root), "--frame", FRAME, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert out.stat().st_size > 10_000


def test_inspect_counts_the_front_camera_points_of_a_waymo_frame(waymo_root, tmp_path):
    from simipu.viz.matches import load_frame
    from simipu.geometry import in_image, project_points
    cfg = load_config("waymo")
    f = load_frame(waymo_root, FRAME, velodyne_dir=cfg.data.velodyne_dir, camera=cfg.data.camera,
                   point_dims=cfg.data.point_dims)
    assert f["points"].shape == (3000, 4)          # 6 floats on disk, xyz + intensity kept
    uv, d = project_points(f["points"][:, :3].astype(np.float64), f["calib"].lidar2img)
    assert in_image(uv, d, f["image"].shape[:2]).mean() > 0.5     # P0 (front), not the bogus P2


def test_inspect_without_config_refuses_a_waymo_root_and_names_the_folder(waymo_root, tmp_path, capsys):
    rc = main(["inspect", "--data-root", str(waymo_root), "--frame", FRAME, "--out", str(tmp_path / "x.png")])
    assert rc == 2 and "image_2" in capsys.readouterr().err


def test_inspect_overrides_set_data_options_without_a_preset(waymo_root, tmp_path):
    out = tmp_path / "w.html"
    assert main(["inspect", "--data-root", str(waymo_root), "--frame", FRAME, "--out", str(out),
                 "data.camera=0", "data.point_dims=6"]) == 0
    assert out.stat().st_size > 10_000


def test_browse_writes_the_training_view_of_a_frame(tmp_path, capsys):
    out = tmp_path / "browse.png"
    assert main(["browse", "--data-root", str(SAMPLES), "--frame", "000001", "--out", str(out),
                 "data.img_scale_range=[[320, 97], [352, 106]]"]) == 0
    assert str(out) in capsys.readouterr().out
    img = np.asarray(Image.open(out))
    assert img.shape[0] > 600 and img.shape[1] > 1200 and img.std() > 20


def test_browse_of_a_waymo_frame_uses_the_waymo_pipeline(waymo_root, tmp_path):
    out = tmp_path / "w.png"
    assert main(["browse", "--config", "waymo", "--data-root", str(waymo_root), "--split", "train", "--out", str(out),
                 "data.num_points=2048", "model.image_backbone=resnet18",
                 "model.point.num_points=[512, 128, [64, 64]]", "model.point.fps_sample_range_lists=[[-1], [-1], [64, -1]]"]) == 0
    assert out.stat().st_size > 50_000


def test_browse_unknown_frame_exits_2_and_lists_frames(tmp_path, capsys):
    rc = main(["browse", "--data-root", str(SAMPLES), "--frame", "424242", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "424242" in err and "000000" in err


def test_browse_with_a_checkpoint_uses_its_weights(tmp_path):
    cfg = load_config("tiny")
    torch.manual_seed(1)
    path = save_checkpoint(dict(model=SimIPU(cfg.model).state_dict(), step=3, config=cfg.to_dict()), tmp_path / "r", 3)
    out = tmp_path / "b.png"
    assert main(["browse", "--data-root", str(SAMPLES), "--ckpt", str(path), "--out", str(out)]) == 0
    assert out.stat().st_size > 50_000


def test_pairs_of_a_sample_are_the_pairs_training_uses():
    """The picture's M1 pairs are the model's matching of the sample's downsampled views, and its M2 points are
    the downsampled points that project into the network image; drawing leaves the RNG and mode alone."""
    from simipu.geometry import in_image, project_points
    from simipu.matching import match_views
    cfg = load_config("tiny", [f"data.root={SAMPLES}"])
    sample = PretrainDataset(cfg.data)[0]
    torch.manual_seed(0)
    model = SimIPU(cfg.model).train()
    rng_before = torch.get_rng_state()
    pairs = sample_pairs(model, sample)
    assert model.training and torch.equal(torch.get_rng_state(), rng_before)
    model.eval()
    with torch.no_grad():
        l_a, _ = model.point_encoder(torch.from_numpy(sample["points_a"])[None])
        l_b, _ = model.point_encoder(torch.from_numpy(sample["points_b"])[None])
    rows, cols = match_views(l_a, l_b, torch.from_numpy(sample["T_ab"])[None])[0]
    assert np.array_equal(pairs["rows"], rows) and np.array_equal(pairs["cols"], cols)
    uv, d = project_points(l_a[0].double().numpy(), sample["lidar2img"])
    assert np.array_equal(pairs["valid"], in_image(uv, d, sample["image_hw"]))
    # T(l_a) of a matched pair lies near its partner: most pairs closer than 1 m
    dist = np.linalg.norm(pairs["l_a_in_b"][pairs["rows"]] - pairs["l_b"][pairs["cols"]], axis=1)
    assert np.median(dist) < 1.0
    assert network_image(sample, cfg.data.img_norm).shape[:2] == tuple(sample["image_hw"])
