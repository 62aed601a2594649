"""Calibration, point/image loading, crops, sampling and the KITTI-layout dataset, with bad inputs."""
from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image

from simipu.data import (Calib, KittiDataset, check_image_matches_calib, crop_to_fov, crop_to_range,
                         load_image, load_points, read_calib, sample_points, write_calib)
from simipu.errors import DataError

CALIB_ROWS = {"P0": 12, "P1": 12, "P2": 12, "P3": 12, "R0_rect": 9, "Tr_velo_to_cam": 12, "Tr_imu_to_velo": 12}


def _calib_text(**changes) -> str:
    rng = np.random.default_rng(0)
    rows = {k: " ".join(f"{v:.6e}" for v in rng.normal(size=n)) for k, n in CALIB_ROWS.items()}
    rows.update(changes)
    return "\n".join(f"{k}: {v}" for k, v in rows.items() if v is not None) + "\n"


# --- calibration -------------------------------------------------------------------------------------

def test_real_calib_has_kitti_shapes_and_lidar2img_is_P2_R0_Tr(kitti_real):
    c = read_calib(kitti_real / "testing/calib/000002.txt")
    assert c.P2.shape == (3, 4) and c.R0_rect.shape == (3, 3) and c.Tr_velo_to_cam.shape == (3, 4)
    assert c.Tr_imu_to_velo.shape == (3, 4) and c.lidar2img.shape == (4, 4)
    assert all(m.dtype == np.float64 for m in (c.P0, c.P1, c.P2, c.P3, c.lidar2img))
    P, R, Tr = np.eye(4), np.eye(4), np.eye(4)
    P[:3], R[:3, :3], Tr[:3] = c.P2, c.R0_rect, c.Tr_velo_to_cam
    np.testing.assert_allclose(c.lidar2img, P @ R @ Tr, rtol=0, atol=1e-12)
    assert c.P2[0, 0] == 7.215377e+02 and c.R0_rect[2, 2] == 9.999631e-01


def test_write_calib_reproduces_the_kitti_file_text(kitti_real, tmp_path):
    for src in sorted(kitti_real.glob("*/calib/*.txt")):
        write_calib(tmp_path / "c.txt", read_calib(src))
        assert (tmp_path / "c.txt").read_text() == src.read_text()


def test_write_then_read_calib_round_trips_matrices(tmp_path):
    rng = np.random.default_rng(1)
    mats = {k: rng.normal(size=(3, 3 if n == 9 else 4)) * 100 for k, n in CALIB_ROWS.items()}
    mats["Tr_imu_to_velo"] = None
    write_calib(tmp_path / "c.txt", mats)
    c = read_calib(tmp_path / "c.txt")
    assert c.Tr_imu_to_velo is None
    for k in ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam"):
        np.testing.assert_allclose(getattr(c, k), mats[k], rtol=1e-12)
    write_calib(tmp_path / "d.txt", c)
    assert (tmp_path / "d.txt").read_text() == (tmp_path / "c.txt").read_text()


def test_calib_tolerates_extra_rows_and_reads_waymo_style_files(tmp_path):
    rng = np.random.default_rng(2)
    lines = [f"P{i}: " + " ".join(map(str, rng.normal(size=12))) for i in range(5)]
    lines.append("R0_rect: 1 0 0 0 1 0 0 0 1")
    lines += [f"Tr_velo_to_cam_{i}: " + " ".join(map(str, rng.normal(size=12))) for i in range(5)]
    (tmp_path / "0000123.txt").write_text("\n".join(lines) + "\n")
    c = read_calib(tmp_path / "0000123.txt", camera=0)
    np.testing.assert_array_equal(c.Tr_velo_to_cam, c.extra["Tr_velo_to_cam_0"].reshape(3, 4))
    expected = np.eye(4)
    expected[:3] = c.P0 @ np.vstack([c.Tr_velo_to_cam, [0, 0, 0, 1]])
    np.testing.assert_allclose(c.lidar2img, expected, atol=1e-12)
    assert "P4" in c.extra


@pytest.mark.parametrize("text, problem", [
    (_calib_text(R0_rect=None), "missing calibration rows ['R0_rect']"),
    (_calib_text(Tr_velo_to_cam=None), "Tr_velo_to_cam"),
    (_calib_text(P2="7.2e+02 0.0 6.0e+02 4.4e+01 0.0 7.2e+02 1.7e+02 2.1e-01 0.0 0.0 1.O 2.7e-03"), "not a number"),
    (_calib_text(P2="1 2 3 4 5 6 7 8 9"), "'P2' has 9 values, expected 12"),
    (_calib_text(R0_rect="1 0 0 0 1 0 0 0 1 0 0 0"), "'R0_rect' has 12 values, expected 9"),
    (_calib_text(P1="nan 0 0 0 0 0 0 0 0 0 0 0"), "NaN or inf"),
    (_calib_text() + "this line has no colon\n", "is not 'KEY: numbers'"),
    (_calib_text() + "P2: 1 2 3 4 5 6 7 8 9 10 11 12\n", "appears twice"),
])
def test_bad_calibration_raises_data_error_naming_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "000007.txt"
    path.write_text(text)
    with pytest.raises(DataError) as e:
        read_calib(path)
    assert str(path) in str(e.value) and problem in str(e.value)


def test_missing_calibration_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read calibration"):
        read_calib(tmp_path / "nope.txt")


# --- points ------------------------------------------------------------------------------------------

def test_load_points_reads_float32_rows_and_first_four_of_wider_rows(tmp_path):
    pts = np.arange(24, dtype=np.float32).reshape(4, 6)
    pts.tofile(tmp_path / "a.bin")
    got = load_points(tmp_path / "a.bin", point_dims=6)
    assert got.dtype == np.float32 and got.shape == (4, 4)
    np.testing.assert_array_equal(got, pts[:, :4])
    assert load_points(tmp_path / "a.bin").shape == (6, 4)


@pytest.mark.parametrize("nbytes, problem", [(0, "empty"), (16 * 3 + 8, "not a multiple of 16 bytes"),
                                             (16 * 3 + 3, "not a multiple of 16 bytes")])
def test_truncated_empty_or_odd_sized_bin_is_a_data_error(tmp_path, nbytes, problem):
    path = tmp_path / "000001.bin"
    path.write_bytes(b"\x00" * nbytes)
    with pytest.raises(DataError) as e:
        load_points(path)
    assert str(path) in str(e.value) and problem in str(e.value)


def test_nan_and_inf_points_are_dropped_with_a_warning(tmp_path):
    pts = np.ones((5, 4), dtype=np.float32)
    pts[1, 0], pts[3, 2] = np.nan, np.inf
    pts.tofile(tmp_path / "p.bin")
    with pytest.warns(UserWarning, match="dropped 2 of 5 points"):
        got = load_points(tmp_path / "p.bin")
    assert got.shape == (3, 4) and np.isfinite(got).all()
    np.full((3, 4), np.nan, dtype=np.float32).tofile(tmp_path / "q.bin")
    with pytest.raises(DataError, match="every point has NaN"):
        load_points(tmp_path / "q.bin")


def test_ten_million_point_file_loads_and_samples_within_memory(tmp_path):
    path = tmp_path / "big.bin"
    n = 10_000_000
    with open(path, "wb") as f:          # sparse file of zeros (valid points) with a few real ones at the end
        f.truncate(16 * n)
    with open(path, "r+b") as f:
        f.seek(16 * (n - 2))
        f.write(np.array([[1, 2, 3, 0.5], [4, 5, 6, 0.25]], dtype=np.float32).tobytes())
    tracemalloc.start()
    pts = load_points(path, mmap=True, max_points=n)  # above the default cap: allowed explicitly
    sample = sample_points(pts, 16384, np.random.default_rng(0))
    peak_mmap = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pts.shape == (n, 4) and sample.shape == (16384, 4)
    np.testing.assert_array_equal(pts[-1], [4, 5, 6, 0.25])
    assert peak_mmap < 40e6, f"memory-mapped load + sample peaked at {peak_mmap / 1e6:.0f} MB"
    tracemalloc.start()
    pts = load_points(path, max_points=n)
    peak_copy = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pts.shape == (n, 4) and peak_copy < 16 * n + 40e6   # one copy of the file, plus chunks


# --- images ------------------------------------------------------------------------------------------

def test_grey_image_loads_as_rgb_uint8(tmp_path):
    grey = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.shape == (12, 20, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 1], grey)


def test_unreadable_or_missing_image_is_a_data_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="cannot read image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "missing.png")


def test_image_size_against_calibration_warns_or_fails(kitti_real):
    c = read_calib(kitti_real / "testing/calib/000002.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_image_matches_calib((375, 1242), c, "img.png")    # KITTI sizes vary a little: silent
    with pytest.warns(UserWarning, match="principal point"):
        check_image_matches_calib((375, 700), c, "img.png")
    with pytest.raises(DataError, match="outside"):
        check_image_matches_calib((150, 600), c, "img.png")


# --- crops and sampling ------------------------------------------------------------------------------

def test_crop_to_range_keeps_exactly_points_inside():
    pts = np.array([[1, 0, 0, 0], [-1, 0, 0, 0], [70.39, 39.9, 0.9, 1], [70.4, 0, 0, 0], [5, 0, -3.1, 0]],
                   dtype=np.float32)
    got = crop_to_range(pts, (0, -40, -3, 70.4, 40, 1))
    np.testing.assert_array_equal(got, pts[[0, 2]])


def test_crop_to_fov_drops_points_behind_or_beside_the_camera(kitti_real):
    c = read_calib(kitti_real / "testing/calib/000002.txt")
    pts = np.array([[20, 0, 0, 1], [-20, 0, 0, 1], [5, 30, 0, 1], [30, 2, -1, 1]], dtype=np.float32)
    np.testing.assert_array_equal(crop_to_fov(pts, c.lidar2img, (375, 1242)), pts[[0, 3]])


def test_sample_points_without_replacement_when_enough_with_when_fewer():
    rng = np.random.default_rng(0)
    pts = np.arange(400, dtype=np.float32).reshape(100, 4)
    got = sample_points(pts, 60, rng)
    assert got.shape == (60, 4) and len(np.unique(got[:, 0])) == 60
    got = sample_points(pts, 250, rng)
    assert got.shape == (250, 4) and set(got[:, 0]) == set(pts[:, 0])     # every point at least once
    with pytest.raises(ValueError):
        sample_points(pts[:0], 10, rng)


# --- the dataset -------------------------------------------------------------------------------------

def test_dataset_reads_train_and_test_splits_from_their_folders(kitti_real_root):
    ds = KittiDataset(kitti_real_root, splits=("train", "test"))
    assert [(f["frame_id"], f["split_dir"]) for f in ds] == [("000134", "training"), ("000002", "testing")]
    f = ds[1]
    assert f["points"].shape == (17694, 4) and f["points"].dtype == np.float32
    assert f["image"].shape == (375, 1242, 3) and f["image"].dtype == np.uint8
    assert isinstance(f["calib"], Calib)


def test_without_imagesets_a_named_split_is_refused_so_val_cannot_leak(make_frame):
    root = make_frame("000001")
    with pytest.raises(DataError, match=r"no ImageSets/ folder.*data.splits=\[all\]"):
        KittiDataset(root, splits=("train", "test"))


def test_split_all_takes_every_frame_on_disk_and_auto_reads_velodyne_reduced(make_frame, tmp_path):
    for fid in ("000003", "000001"):
        root = make_frame(fid)
    make_frame("000007", split_dir="testing", root=root)
    assert KittiDataset(root, splits="all", velodyne_dir="auto").velodyne_dir == "velodyne"
    for d in ("training", "testing"):
        (root / d / "velodyne").rename(root / d / "velodyne_reduced")
    ds = KittiDataset(root, splits=("all",), velodyne_dir="auto")
    assert ds.velodyne_dir == "velodyne_reduced"
    assert ds.frames == [("000001", "training"), ("000003", "training"), ("000007", "testing")]
    assert ds[0]["points"].shape == (500, 4)


def test_seven_digit_waymo_ids_load(make_frame):
    root = make_frame("1000042")
    (root / "ImageSets").mkdir()
    (root / "ImageSets/train.txt").write_text("1000042\n")
    assert KittiDataset(root, splits="train")[0]["frame_id"] == "1000042"


def _with_split(root, text, split="train"):
    (root / "ImageSets").mkdir(exist_ok=True)
    (root / "ImageSets" / f"{split}.txt").write_text(text)
    return root


def test_duplicate_ids_warn_and_are_kept_once(make_frame):
    root = _with_split(make_frame("000001"), "000001\n000001\n\n")
    with pytest.warns(UserWarning, match="more than once"):
        ds = KittiDataset(root, splits=("train",))
    assert len(ds) == 1
    _with_split(root, "000001\n", split="trainval")
    with pytest.warns(UserWarning, match="more than once"):
        assert len(KittiDataset(root, splits=("train", "trainval"))) == 1


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "/etc/passwd", "..", "000001/../000002", "00 01"])
def test_ids_that_leave_the_root_are_rejected(make_frame, bad_id):
    root = _with_split(make_frame("000001"), f"000001\n{bad_id}\n")
    with pytest.raises(DataError, match="not a plain file name") as e:
        KittiDataset(root, splits=("train",))
    assert "train.txt" in str(e.value)


def test_split_ids_missing_on_disk_are_named(make_frame):
    root = _with_split(make_frame("000001"), "000001\n000009\n")
    with pytest.raises(DataError, match=r"missing on disk.*000009"):
        KittiDataset(root, splits=("train",))


def test_missing_imagesets_file_and_unknown_split_are_reported(make_frame):
    root = _with_split(make_frame("000001"), "000001\n")
    with pytest.raises(DataError, match="split file for 'test' does not exist"):
        KittiDataset(root, splits=("train", "test"))
    with pytest.raises(ValueError, match="unknown split"):
        KittiDataset(root, splits=("training",))


def test_frame_with_bad_point_file_names_the_file(make_frame):
    root = make_frame("000001")
    (root / "training/velodyne/000001.bin").write_bytes(b"\x00" * 20)
    with pytest.raises(DataError, match="000001.bin"):
        KittiDataset(root, splits=("all",))[0]
