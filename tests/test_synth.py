"""The synthetic KITTI-format generator: layout, determinism, and ground truth that agrees with itself."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from simipu._open3d import import_open3d
from simipu.data import read_calib
from simipu.geometry import in_image, project_points
from simipu.synth import generate
from simipu.synth.lidar import hdl64_elevations
from simipu.synth.scene import make_scene, raycasting_scene
from simipu.synth.writer import FOLDERS, frame_rng

SMALL = dict(image_size=(621, 188), beams=32, azimuth_step_deg=0.35)  # half of KITTI, fast
SEED, FRAMES = 7, 3
KITTI_CLASSES = {"Car", "Pedestrian", "Cyclist"}


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), frames=FRAMES, seed=SEED, split_val_every=3,
                    progress=False, **SMALL)


def _frame(root, fid):
    t = root / "training"
    points = np.fromfile(t / "velodyne" / f"{fid}.bin", dtype="<f4").reshape(-1, 4)
    point_instance = np.fromfile(t / "velodyne_instance" / f"{fid}.bin", dtype="<i4")
    depth = np.asarray(Image.open(t / "depth_2" / f"{fid}.png")).astype(np.float64) / 256.0
    instance = np.asarray(Image.open(t / "instance_2" / f"{fid}.png")).astype(np.int64)
    return points, point_instance, depth, instance, read_calib(t / "calib" / f"{fid}.txt")


def _camera_centre_lidar(calib) -> np.ndarray:
    """Centre of camera 2 in the LiDAR frame, from P2, R0_rect and Tr_velo_to_cam."""
    P2 = calib.P2
    centre_rect = -np.linalg.inv(P2[:, :3]) @ P2[:, 3]
    rect_from_lidar = np.eye(4)
    rect_from_lidar[:3, :3] = calib.R0_rect
    tr = np.eye(4)
    tr[:3] = calib.Tr_velo_to_cam
    return (np.linalg.inv(rect_from_lidar @ tr) @ np.append(centre_rect, 1.0))[:3]


def _check_ground_truth_agrees(root, fid, seed, index):
    """Return (depth agreement of camera-visible points, instance agreement of in-image points)."""
    points, point_instance, depth, instance, calib = _frame(root, fid)
    H, W = depth.shape
    uv, d = project_points(points[:, :3].astype(np.float64), calib.lidar2img)
    inside = in_image(uv, d, (H, W))
    assert inside.sum() > 200, "too few points in the image to test"
    px = np.floor(uv[inside]).astype(int)
    xyz, d_in = points[inside, :3].astype(np.float64), d[inside]
    # Is the camera's view of the point blocked? Cast from the camera centre to the point.
    o3d = import_open3d()
    rcs = raycasting_scene(make_scene(frame_rng(seed, index)).mesh)
    c = _camera_centre_lidar(calib)
    rays = np.concatenate([np.broadcast_to(c, xyz.shape), xyz - c], 1).astype(np.float32)
    t_hit = rcs.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
    dist = np.linalg.norm(xyz - c, axis=1)
    visible = np.abs(t_hit * dist - dist) < 0.1
    assert visible.mean() > 0.5
    gt = depth[px[:, 1], px[:, 0]]
    depth_ok = np.abs(gt[visible] - d_in[visible]) <= 0.02 * d_in[visible]
    inst_ok = point_instance[inside] == instance[px[:, 1], px[:, 0]]
    return depth_ok.mean(), inst_ok.mean()


def test_open3d_imports_through_the_libusb_preload():
    o3d = import_open3d()
    assert hasattr(o3d.t.geometry, "RaycastingScene")


def test_generator_writes_the_kitti_layout_and_splits(small_root):
    ids = [f"{i:06d}" for i in range(FRAMES)]
    for folder in FOLDERS:
        found = sorted(p.stem for p in (small_root / "training" / folder).iterdir())
        assert found == ids, folder
    sets = {n: (small_root / "ImageSets" / f"{n}.txt").read_text().split() for n in ("train", "val", "trainval")}
    assert sets == {"train": ids[:2], "val": ids[2:], "trainval": ids}


def test_files_have_kitti_dtypes_and_shapes(small_root):
    points, point_instance, depth, instance, calib = _frame(small_root, "000000")
    assert len(points) == len(point_instance) > 1000
    assert np.all((points[:, 3] >= 0) & (points[:, 3] <= 1))
    assert Image.open(small_root / "training" / "depth_2" / "000000.png").mode in ("I;16", "I")
    assert Image.open(small_root / "training" / "image_2" / "000000.png").mode == "RGB"
    assert depth.shape == instance.shape == (188, 621)
    assert (depth > 0).mean() > 0.4 and depth.max() < 256
    assert calib.P2[0, 0] == pytest.approx(721.5377 / 2, rel=1e-6)
    assert calib.Tr_imu_to_velo is not None


def test_lidar_beams_span_hdl64_elevations(small_root):
    el = hdl64_elevations(64)
    assert el[0] == pytest.approx(2.0) and el[-1] == pytest.approx(-24.9) and len(np.unique(el)) == 64
    points = _frame(small_root, "000001")[0]
    elevation = np.degrees(np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1])))
    assert elevation.min() > -25.5 and elevation.max() < 2.5
    ground = points[elevation < -15]  # steep beams hit the road, 1.73 m below the sensor
    assert np.median(ground[:, 2]) == pytest.approx(-1.73, abs=0.15)


def test_same_seed_gives_byte_identical_files(small_root, tmp_path):
    again = generate(tmp_path / "again", frames=2, seed=SEED, split_val_every=3, progress=False, **SMALL)
    other = generate(tmp_path / "other", frames=1, seed=SEED + 1, progress=False, **SMALL)
    for folder in FOLDERS:
        for fid in ("000000", "000001"):
            name = next((again / "training" / folder).glob(f"{fid}.*")).name
            assert (again / "training" / folder / name).read_bytes() == \
                   (small_root / "training" / folder / name).read_bytes(), (folder, fid)
    velo = "training/velodyne/000000.bin"
    assert (other / velo).read_bytes() != (small_root / velo).read_bytes()


def test_label_lines_parse_and_match_instance_ids(small_root):
    n_lines = 0
    for fid in ("000000", "000001", "000002"):
        instance = _frame(small_root, fid)[3]
        lines = (small_root / "training" / "label_2" / f"{fid}.txt").read_text().splitlines()
        for k, line in enumerate(lines, start=1):
            f = line.split()
            assert len(f) == 15 and f[0] in KITTI_CLASSES
            trunc, occ, alpha, *box, h, w, l, x, y, z, ry = map(float, f[1:])
            assert 0 <= trunc <= 1 and occ in (0, 1, 2) and abs(alpha) <= np.pi + 0.01 and abs(ry) <= np.pi + 0.01
            assert h > 0.5 and w > 0.3 and l > 0.3 and z > 0
            # instance k is the object of line k, and its pixels lie inside that line's 2D box
            vs, us = np.nonzero(instance == k)
            assert len(us) > 0
            x1, y1, x2, y2 = box
            assert us.min() >= x1 - 2 and us.max() <= x2 + 2 and vs.min() >= y1 - 2 and vs.max() <= y2 + 2
            n_lines += 1
    assert n_lines > 0


def test_unoccluded_points_match_depth_image_and_instances_match(small_root):
    for index in range(FRAMES):
        depth_ok, inst_ok = _check_ground_truth_agrees(small_root, f"{index:06d}", SEED, index)
        assert depth_ok >= 0.95, f"frame {index}: only {depth_ok:.1%} of visible points match depth_2"
        assert inst_ok >= 0.90, f"frame {index}: only {inst_ok:.1%} of points match instance_2"


def test_full_size_fov_only_frame_is_consistent(tmp_path):
    root = generate(tmp_path, frames=1, seed=3, progress=False, fov_only=True)
    points, _, depth, _, calib = _frame(root, "000000")
    assert depth.shape == (375, 1242)
    uv, d = project_points(points[:, :3].astype(np.float64), calib.lidar2img)
    assert in_image(uv, d, depth.shape).all() and len(points) > 10000
    depth_ok, inst_ok = _check_ground_truth_agrees(root, "000000", 3, 0)
    assert depth_ok >= 0.95 and inst_ok >= 0.90


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="frames"):
        generate(tmp_path, frames=0)
    with pytest.raises(ValueError, match="image_size"):
        generate(tmp_path, frames=1, image_size=(4, 4))


def test_open3d_imports_in_a_fresh_process():
    """import_open3d works in a new interpreter even where `import open3d` alone fails for libusb."""
    code = "from simipu._open3d import import_open3d; print(import_open3d().__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
