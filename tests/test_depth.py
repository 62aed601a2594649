"""Depth probe (paper appendix C): network shapes, loss and metrics by hand, encoder init, data, a short run."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from simipu.checkpoint import CheckpointError
from simipu.depth import (METRICS, DepthNet, depth_metrics, load_encoder, make_config, read_init,
                          run_depth_probe, silog_loss)
from simipu.depth_data import DepthDataset, read_depth_png, resize_nearest, sparse_depth_map
from simipu.errors import ConfigError, DataError


def make_depth_root(root, n_train=3, n_val=2, size=(384, 128), seed=0):
    """Tiny KITTI-format root: random images, dense depth_2 PNGs (a depth ramp, sky = 0), ImageSets."""
    rng = np.random.default_rng(seed)
    W, H = size
    for sub in ("image_2", "depth_2"):
        (root / "training" / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}" for i in range(n_train + n_val)]
    for fid in ids:
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "training" / "image_2" / f"{fid}.png")
        depth = np.linspace(60.0, 3.0, H)[:, None] * np.ones((1, W)) + rng.uniform(0, 1, (H, W))
        depth[: H // 4] = 0                                                  # sky: no value
        Image.fromarray(np.round(depth * 256).astype(np.uint16)).save(root / "training" / "depth_2" / f"{fid}.png")
    (root / "ImageSets").mkdir(exist_ok=True)
    (root / "ImageSets" / "train.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (root / "ImageSets" / "val.txt").write_text("\n".join(ids[n_train:]) + "\n")
    return root


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_depth_net_output_has_input_size_and_positive_bounded_depth(arch):
    model = DepthNet(arch, max_depth=80.0, decoder_width=64).eval()
    for H, W in ((128, 384), (70, 100)):
        with torch.no_grad():
            d = model(torch.randn(1, 3, H, W))
        assert d.shape == (1, 1, H, W)
        assert (d > 0).all() and (d < 80.0).all()


def test_silog_loss_is_the_formula_of_appendix_c():
    gt = torch.tensor([[2.0, 5.0], [10.0, 40.0]])
    pred = torch.tensor([[2.5, 4.0], [11.0, 30.0]])
    g = np.log([2.5, 4.0, 11.0, 30.0]) - np.log([2.0, 5.0, 10.0, 40.0])
    expected = 10 * math.sqrt(np.mean(g ** 2) - 0.85 * np.mean(g) ** 2)
    assert silog_loss(pred, gt).item() == pytest.approx(expected, rel=1e-6)
    assert silog_loss(gt.clone(), gt).item() == 0.0


def test_silog_loss_of_a_scaled_prediction_is_small_but_not_zero_with_lambda_085():
    gt = torch.tensor([3.0, 7.0, 20.0, 50.0])
    loss = silog_loss(2.0 * gt, gt).item()                   # g = log 2 everywhere
    assert loss == pytest.approx(10 * math.sqrt(0.15) * math.log(2.0), rel=1e-6)
    assert silog_loss(2.0 * gt, gt, lam=1.0).item() == pytest.approx(0.0, abs=1e-3)


def test_silog_loss_ignores_pixels_without_ground_truth():
    gt = torch.tensor([2.0, 0.0, 10.0, 0.0])
    pred = torch.tensor([2.5, 77.0, 11.0, 0.5], requires_grad=True)
    loss = silog_loss(pred, gt)
    g = np.log([2.5, 11.0]) - np.log([2.0, 10.0])
    assert loss.item() == pytest.approx(10 * math.sqrt(np.mean(g ** 2) - 0.85 * np.mean(g) ** 2), rel=1e-6)
    loss.backward()
    assert pred.grad[1] == 0 and pred.grad[3] == 0 and pred.grad[0] != 0
    assert silog_loss(pred, torch.zeros(4)).item() == 0.0


def test_metrics_match_a_hand_computation():
    gt = np.array([[2.0, 4.0, 0.0], [10.0, 100.0, 5.0]])    # 0 = no value, 100 m beyond max_depth
    pred = np.array([[2.2, 3.0, 9.0], [10.0, 50.0, 7.0]])
    m = depth_metrics(pred, gt, min_depth=1e-3, max_depth=80.0)
    d_hat, d = np.array([2.2, 3.0, 10.0, 7.0]), np.array([2.0, 4.0, 10.0, 5.0])
    assert set(m) == set(METRICS)
    assert m["abs_rel"] == pytest.approx(np.mean([0.1, 0.25, 0.0, 0.4]))
    assert m["sq_rel"] == pytest.approx(np.mean([0.04 / 2, 1 / 4, 0.0, 4 / 5]))
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean([0.04, 1.0, 0.0, 4.0])))
    assert m["rmse_log"] == pytest.approx(math.sqrt(np.mean((np.log(d_hat) - np.log(d)) ** 2)))
    # max ratios 1.1, 1.333, 1.0, 1.4 → under 1.25: 2 of 4; under 1.5625: all
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.5, 1.0, 1.0)
    clipped = depth_metrics(np.array([200.0]), np.array([40.0]))  # prediction capped to 80 m
    assert clipped["abs_rel"] == pytest.approx(1.0)


def test_silog_loss_of_a_perfect_prediction_is_zero_with_a_finite_gradient():
    gt = torch.tensor([[2.0, 5.0], [30.0, 0.0]])           # one invalid pixel (0 m)
    pred = gt.clone().requires_grad_(True)
    loss = silog_loss(pred, gt)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all() and not pred.grad.any()
    near = (gt * 1.01).requires_grad_(True)  # just off: a positive loss and a finite, non-zero gradient
    silog_loss(near, gt).backward()
    assert torch.isfinite(near.grad).all() and near.grad[0].abs().sum() > 0


def test_perfect_prediction_has_perfect_metrics():
    gt = torch.rand(1, 8, 8) * 70 + 1
    m = depth_metrics(gt, gt)
    assert m["abs_rel"] == m["rmse"] == m["rmse_log"] == 0.0 and m["delta1"] == 1.0


def test_init_from_torchvision_state_dict_sets_encoder_to_the_file_values(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    state, arch, kind = read_init(tmp_path / "r18.pth")
    assert (arch, kind) == ("resnet18", "torchvision")
    model = DepthNet("resnet18")
    assert not torch.equal(model.encoder.conv1.weight, ref.conv1.weight)
    report = load_encoder(model, state)
    assert torch.equal(model.encoder.conv1.weight, ref.conv1.weight)
    assert torch.equal(model.encoder.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)
    assert report["missing"] == [] and report["ignored"] == ["fc.bias", "fc.weight"]
    assert len(report["loaded"]) == len(model.encoder.state_dict())


def test_init_from_a_simipu_checkpoint_reads_the_image_encoder(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        ref.layer2[0].conv1.weight.fill_(0.5)
    model_state = {f"image_encoder.{k}": v for k, v in ref.state_dict().items()}
    model_state["point_encoder.sa.0.weight"] = torch.zeros(3)
    torch.save({"model": model_state, "config": {"model": {"image_backbone": "resnet18"}}}, tmp_path / "ckpt.pt")
    state, arch, kind = read_init(tmp_path / "ckpt.pt")
    assert (arch, kind) == ("resnet18", "simipu")
    model = DepthNet(arch)
    load_encoder(model, state)
    assert (model.encoder.layer2[0].conv1.weight == 0.5).all()


def test_init_that_matches_nothing_or_the_wrong_arch_fails_clearly(tmp_path):
    torch.save({"head.weight": torch.zeros(2)}, tmp_path / "other.pt")
    state, arch, _ = read_init(tmp_path / "other.pt")
    assert arch is None
    with pytest.raises(CheckpointError, match="no tensor matches"):
        load_encoder(DepthNet("resnet18"), state)
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    state, arch, _ = read_init(tmp_path / "r34.pth")
    assert arch == "resnet34"
    with pytest.raises(ConfigError, match="resnet34"):
        run_depth_probe(tmp_path, init=tmp_path / "r34.pth", arch="resnet18")


def test_unknown_or_bad_config_keys_raise_config_error():
    assert make_config(["steps=3", "lr=1e-3", "image_size=[256,96]"]).image_size == (256, 96)
    with pytest.raises(ConfigError, match="stepz"):
        make_config(["stepz=3"])
    with pytest.raises(ConfigError):
        make_config(arch="vgg16")


def test_dense_ground_truth_is_read_and_resized_with_nearest_neighbour(tmp_path):
    root = make_depth_root(tmp_path / "root", size=(96, 32))
    ds = DepthDataset(root, "train", image_size=(48, 16))
    sample = ds[0]
    assert sample["image"].shape == (3, 16, 48) and sample["depth"].shape == (1, 16, 48)
    full = read_depth_png(root / "training" / "depth_2" / "000000.png")
    assert np.array_equal(sample["depth"][0].numpy(), full[1::2, 1::2])   # centres of 2x2 cells
    assert set(np.unique(resize_nearest(full, (7, 13)))) <= set(np.unique(full))


def test_sparse_depth_keeps_the_nearest_point_per_pixel():
    lidar2img = np.eye(4)                        # x, y = pixel * depth, z = depth
    xyz = np.array([[2.5 * 4, 1.5 * 4, 4.0], [2.2 * 9, 1.9 * 9, 9.0], [0.5 * 3, 0.5 * 3, 3.0], [9.0, 9.0, -1.0]])
    d = sparse_depth_map(xyz, lidar2img, (4, 5))
    expected = np.zeros((4, 5), np.float32)
    expected[1, 2], expected[0, 0] = 4.0, 3.0    # the point at 9 m hides behind the 4 m one; behind camera dropped
    assert np.array_equal(d, expected)
    half = sparse_depth_map(xyz, lidar2img, (4, 5), out_hw=(2, 10))   # u scaled by 2, v by 0.5
    assert (half[0, 5], half[0, 4], half[0, 1]) == (4.0, 9.0, 3.0)      # u 2.5→5, 2.2→4.4 now apart
    assert np.count_nonzero(half) == 3


def test_sparse_ground_truth_on_real_kitti_is_valid_only_where_lidar_projects(kitti_real_root):
    from simipu.data import load_points, read_calib
    from simipu.geometry import in_image, project_points
    ds = DepthDataset(kitti_real_root, "train", image_size=(384, 128))
    assert ds.source["000134"] == "sparse"
    depth = ds[0]["depth"][0].numpy()
    d = kitti_real_root / "training"
    pts, calib = load_points(d / "velodyne" / "000134.bin"), read_calib(d / "calib" / "000134.txt")
    H, W = np.asarray(Image.open(d / "image_2" / "000134.png")).shape[:2]
    uv, z = project_points(pts[:, :3].astype(np.float64), calib.lidar2img)
    uv = uv * [384 / W, 128 / H]
    ok = in_image(uv, z, (128, 384))
    hit = np.zeros((128, 384), bool)
    hit[uv[ok, 1].astype(int), uv[ok, 0].astype(int)] = True
    assert np.array_equal(depth > 0, hit)                  # valid exactly where points land, zero elsewhere
    assert 0.05 < hit.mean() < 0.9 and depth.max() < 120
    assert np.all(depth[hit] <= z[ok].max()) and np.all(depth[hit] >= z[ok].min())


def test_missing_split_file_is_a_data_error(tmp_path):
    root = make_depth_root(tmp_path / "root", size=(64, 32))
    (root / "ImageSets" / "val.txt").unlink()
    with pytest.raises(DataError, match="val.txt"):
        DepthDataset(root, "val")


def test_three_step_fine_tune_returns_seven_finite_metrics(tmp_path):
    root = make_depth_root(tmp_path / "root")
    out = tmp_path / "probe"
    metrics = run_depth_probe(root, out=out, overrides=["steps=3", "batch_size=2", "decoder_width=64", "image_size=[192,64]",
                                                        "arch=resnet18"],
                              progress=False, eval_before=True)
    assert set(metrics) == set(METRICS)
    assert all(math.isfinite(v) for v in metrics.values())
    assert json.loads((out / "metrics.json").read_text()) == metrics
    run = json.loads((out / "run.json").read_text())
    assert len(run["losses"]) == 3 and run["init"]["kind"] == "scratch" and run["train_gt"]["dense"] == 3
    assert set(run["metrics_before"]) == set(METRICS)


def test_scratch_without_an_arch_is_refused_so_scratch_and_pretrained_use_the_same_encoder(tmp_path, capsys):
    from simipu.cli import main
    root = make_depth_root(tmp_path / "root")
    with pytest.raises(ConfigError, match="init=scratch needs arch="):
        run_depth_probe(root, out=tmp_path / "p", steps=1, progress=False)
    assert main(["depth-probe", "--data-root", str(root), "--init", "scratch", "--out", str(tmp_path / "q"),
                 "steps=1"]) == 2
    err = capsys.readouterr().err
    assert "arch=resnet18 for the tiny preset, arch=resnet50 for kitti" in err and len(err.strip().splitlines()) == 1
