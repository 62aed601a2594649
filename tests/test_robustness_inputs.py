"""Hostile or unusual input files: 16-bit and bomb PNGs, and `simipu synth` into a folder that holds data."""
from __future__ import annotations

import hashlib
import resource
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simipu.cli import main
from simipu.data import MAX_IMAGE_PIXELS, load_image
from simipu.errors import DataError
from simipu.synth import generate

SMALL = dict(image_size=(160, 48), beams=16, azimuth_step_deg=1.0, progress=False)  # seconds per frame


def _png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> Path:
    """A PNG file from its chunks (for what PIL cannot write: 16-bit RGB, huge 1-bit images)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
                     + chunk(b"IEND", b""))
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_16_bit_grey_png_written_by_pil_is_scaled_not_clipped_to_white(tmp_path):
    values = np.linspace(0, 65535, 40 * 64).round().astype(np.uint16).reshape(40, 64)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"  # a real 16-bit PNG
    image = load_image(tmp_path / "grey16.png")
    assert image.shape == (40, 64, 3) and image.dtype == np.uint8
    expected = np.round(values / 257.0).astype(np.uint8)
    assert np.array_equal(image[..., 0], expected) and np.array_equal(image[..., 2], expected)
    assert image.min() == 0 and image.max() == 255 and (image == 255).mean() < 0.01


def test_16_bit_rgb_png_keeps_its_colours(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 65536, (12, 20, 3)).astype(np.uint16)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)
    image = load_image(_png(tmp_path / "rgb16.png", 20, 12, 16, 2, rows))
    assert np.array_equal(image, (rgb >> 8).astype(np.uint8))  # PIL keeps the high byte


def test_floating_point_image_is_refused_naming_the_file(tmp_path):
    Image.fromarray(np.ones((8, 8), np.float32)).save(tmp_path / "depth.tiff")
    with pytest.raises(DataError, match=r"depth.tiff: floating-point TIFF image \(PIL mode F\)"):
        load_image(tmp_path / "depth.tiff")


@pytest.mark.parametrize("side", [9000, 20000])
def test_decompression_bomb_png_is_refused_unread_naming_the_file(tmp_path, side):
    """A ~10-60 KB PNG that decodes to 81 M (under PIL's own limit) or 400 M pixels (over it)."""
    assert side * side > MAX_IMAGE_PIXELS
    rows = (b"\x00" + bytes((side + 7) // 8)) * side            # 1-bit grey, all black
    path = _png(tmp_path / "bomb.png", side, side, 1, 0, rows)
    assert path.stat().st_size < 100_000
    before = _peak_rss_mb()
    with pytest.raises(DataError, match=rf"bomb.png: image (is {side}x{side}|refused unread)"):
        load_image(path)
    assert _peak_rss_mb() - before < 50


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_refuses_a_folder_that_holds_a_dataset_and_changes_nothing(tmp_path, capsys):
    root = generate(tmp_path / "ds", frames=2, seed=0, **SMALL)
    before = _tree_digest(root)
    with pytest.raises(ValueError, match="is not empty .2 frames there.; refusing"):
        generate(root, frames=1, seed=5, **SMALL)
    assert main(["synth", "--out", str(root), "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--add" in err and "--overwrite" in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")  # any non-empty folder, not only datasets
    assert main(["synth", "--out", str(tmp_path / "other"), "--frames", "1"]) == 2
    assert _tree_digest(root) == before


def test_synth_add_gives_the_files_of_one_bigger_run_and_keeps_every_listed_frame(tmp_path):
    whole = generate(tmp_path / "whole", frames=4, seed=3, split_val_every=2, **SMALL)
    grown = generate(tmp_path / "grown", frames=2, seed=3, split_val_every=2, **SMALL)
    generate(grown, frames=2, seed=3, split_val_every=2, existing="add", **SMALL)
    assert _tree_digest(grown) == _tree_digest(whole)
    assert (grown / "ImageSets" / "val.txt").read_text() == "000001\n000003\n"
    with pytest.raises(ValueError, match="in use"):
        generate(grown, frames=1, seed=3, existing="add", first_id=2, **SMALL)


def test_synth_overwrite_replaces_the_frames_and_leaves_other_files(tmp_path):
    root = generate(tmp_path / "ds", frames=3, seed=0, **SMALL)
    (root / "README.txt").write_text("keep me")
    generate(root, frames=1, seed=9, existing="overwrite", **SMALL)
    assert sorted(p.name for p in (root / "training" / "velodyne").iterdir()) == ["000000.bin"]
    assert (root / "ImageSets" / "trainval.txt").read_text() == "000000\n"
    assert (root / "README.txt").read_text() == "keep me"
    fresh = generate(tmp_path / "fresh", frames=1, seed=9, **SMALL)
    assert {k: v for k, v in _tree_digest(root).items() if k != "README.txt"} == _tree_digest(fresh)


# ---- point clouds: size cap, a row width that does not match the files, byte-order marks --------------

SAMPLE_BIN = Path(__file__).resolve().parents[1] / "data_samples" / "training" / "velodyne"


def _a_sample_cloud() -> np.ndarray:
    return np.fromfile(sorted(SAMPLE_BIN.glob("*.bin"))[0], dtype=np.float32).reshape(-1, 4)


def test_a_cloud_over_the_cap_is_refused_from_its_size_before_reading(tmp_path):
    from simipu.data import MAX_POINTS, load_points
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:  # a sparse file: (MAX_POINTS + 1) points, no disk used, nothing to read
        f.truncate((MAX_POINTS + 1) * 16)
    before = _peak_rss_mb()
    with pytest.raises(DataError, match=rf"{MAX_POINTS + 1} points .* more than the cap of {MAX_POINTS} "
                                        r"\(data.max_points.*refused unread"):
        load_points(huge)
    assert _peak_rss_mb() - before < 50  # 80 MB of zeros were never read
    cloud = _a_sample_cloud()
    (tmp_path / "ok.bin").write_bytes(cloud.tobytes())
    with pytest.raises(DataError, match=f"{len(cloud)} points .* cap of 1000"):
        load_points(tmp_path / "ok.bin", max_points=1000)
    assert len(load_points(tmp_path / "ok.bin", max_points=len(cloud))) == len(cloud)


def test_the_cap_is_a_config_key_that_pretrain_obeys(tmp_path, capsys):
    from simipu.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="data.max_points"):
        load_config("tiny", ["data.max_points=0"])
    code = main(["pretrain", "--config", "tiny", "--out", str(tmp_path / "run"), "--max-steps", "1",
                 "--no-progress", "data.max_points=1000", "data.num_workers=1", "train.image_every=0"])
    err = capsys.readouterr().err
    assert code == 2 and "cap of 1000 (data.max_points" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("wrong", [5, 6])
def test_a_cloud_read_with_the_wrong_point_dims_is_refused_even_when_the_size_divides(tmp_path, wrong):
    from simipu.data import load_points
    cloud = _a_sample_cloud()
    cloud = cloud[: len(cloud) // 60 * 60]  # 4·n floats divisible by 5 and by 6: the size check passes
    (tmp_path / "four.bin").write_bytes(cloud.tobytes())
    assert np.array_equal(load_points(tmp_path / "four.bin"), cloud)  # the right width reads clean
    with pytest.raises(DataError, match=rf"look like 4 float32 per point, not {wrong} \(data.point_dims\)"):
        load_points(tmp_path / "four.bin", point_dims=wrong)
    # The other way round: a 6-float file (Waymo converted) read as KITTI's 4 floats.
    six = np.concatenate([cloud, np.ones((len(cloud), 2), np.float32)], axis=1)
    (tmp_path / "six.bin").write_bytes(six.tobytes())
    assert np.array_equal(load_points(tmp_path / "six.bin", point_dims=6), cloud)
    with pytest.raises(DataError, match=r"look like 6 float32 per point, not 4"):
        load_points(tmp_path / "six.bin")


def test_a_shuffled_cloud_read_with_its_own_width_is_not_refused(tmp_path):
    from simipu.data import load_points
    cloud = _a_sample_cloud()
    cloud = cloud[np.random.default_rng(0).permutation(len(cloud))][: len(cloud) // 60 * 60]
    (tmp_path / "shuffled.bin").write_bytes(cloud.tobytes())
    assert np.array_equal(load_points(tmp_path / "shuffled.bin"), cloud)


def test_calibration_and_split_files_with_a_byte_order_mark_read_as_without(tmp_path):
    import shutil
    from simipu.data import KittiDataset, read_calib
    root = tmp_path / "root"
    shutil.copytree(SAMPLE_BIN.parents[1], root)
    calib = sorted((root / "training" / "calib").glob("*.txt"))[0]
    plain = read_calib(calib)
    calib.write_bytes(b"\xef\xbb\xbf" + calib.read_bytes())
    for split in (root / "ImageSets").glob("*.txt"):
        split.write_bytes(b"\xef\xbb\xbf" + split.read_bytes())
    with_bom = read_calib(calib)
    assert np.array_equal(with_bom.P2, plain.P2) and np.array_equal(with_bom.Tr_velo_to_cam, plain.Tr_velo_to_cam)
    ours = KittiDataset(root, "train")
    assert [f for f in ours.frames] == [f for f in KittiDataset(SAMPLE_BIN.parents[1], "train").frames]
    assert ours[0]["frame_id"].isdigit()
