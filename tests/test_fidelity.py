"""The faithful presets are the released SimIPU setting (docs/method_notes.md, section 1)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from simipu.config import load_config
from simipu.data import crop_to_range, load_points, read_calib
from simipu.model import SimIPU
from simipu.ops import ball_query, ball_query_naive, furthest_point_sample
from simipu.pipeline import CAFFE_BGR_MEAN, PretrainDataset, denormalize_image, normalize_image
from simipu.pointnet import PointEncoder

NOTES = Path(__file__).resolve().parents[1] / "docs" / "method_notes.md"


def _parity_rows():
    """(key, value) of every 'equal' row of the release-parity table that names a config key."""
    rows = []
    for line in NOTES.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[4].startswith("equal"):
            continue
        key, value = re.fullmatch(r"`([a-z_.]+)`|—", cells[2]), re.fullmatch(r"`(.*)`.*", cells[3])
        if key and key.group(1):
            rows.append((key.group(1), yaml.safe_load(value.group(1))))
    return rows


def _get(cfg, dotted):
    node = cfg.to_dict()
    for part in dotted.split("."):
        node = node[part]
    return node


def test_parity_table_lists_the_released_fields():
    keys = [k for k, _ in _parity_rows()]
    assert len(keys) >= 40 and len(set(keys)) >= 38
    for must in ("model.point.dilated_group", "model.point.use_xyz", "data.img_norm", "data.sync_flip",
                 "data.velodyne_dir", "model.image_bn_eps", "model.point.fps_mods", "train.precision"):
        assert must in keys


@pytest.mark.parametrize("key,value", _parity_rows(), ids=lambda x: x if isinstance(x, str) else "")
def test_kitti_preset_holds_the_released_value(key, value):
    ours = _get(load_config("kitti"), key)
    if isinstance(value, float) or isinstance(ours, float):
        assert np.allclose(ours, value, rtol=0, atol=1e-12)
    else:
        assert ours == value


def test_kitti_encoder_is_the_released_point_branch():
    cfg = load_config("kitti").model
    enc = PointEncoder(cfg.point)
    assert [sa.min_radii for sa in enc.sa_layers] == [(0.0, 0.2, 0.4), (0.0, 0.4, 0.8), (0.0, 1.6, 3.2)]
    first = enc.sa_layers[0].mlps[0]
    assert first[0].in_channels == 1  # use_xyz=False: reflectance only enters layer 1
    for sa in enc.sa_layers:
        for mlp in sa.mlps:
            convs, bns = mlp[0::3], mlp[1::3]
            assert all(c.bias is not None for c in convs)
            assert all((bn.eps, bn.momentum) == (1e-3, 0.1) for bn in bns)
        assert (sa.aggregation[1].eps, sa.aggregation[1].momentum) == (1e-5, 0.1)  # BN1d default, as released


def test_point_convs_start_as_mmcv_conv_modules_do():
    """kaiming normal, fan_out, ReLU gain (std = sqrt(2 / C_out) for a 1×1 conv), bias 0."""
    torch.manual_seed(0)
    enc = PointEncoder(load_config("kitti").model.point)
    conv = enc.sa_layers[2].mlps[2][6]  # 256 -> 512, 1×1: 131072 weights
    assert conv.out_channels == 512 and not conv.bias.any()
    assert conv.weight.std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.02)
    agg = enc.sa_layers[2].aggregation[0]
    assert agg.weight.std().item() == pytest.approx((2 / 1024) ** 0.5, rel=0.02)


def test_kitti_image_encoder_uses_the_released_batchnorm():
    model = SimIPU(load_config("kitti", ["model.image_backbone=resnet18"]).model)
    bns = [m for m in model.image_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 20 and all((bn.eps, bn.momentum) == (1e-3, 0.01) for bn in bns)


def test_caffe_bgr_normalisation_is_the_released_img_norm_cfg():
    rgb = np.array([[[255, 0, 10], [0, 128, 255]]], dtype=np.uint8)  # (1, 2, 3)
    out = normalize_image(rgb, "caffe_bgr")
    np.testing.assert_allclose(out[0, 0], [10 - 103.530, 0 - 116.280, 255 - 123.675], rtol=0, atol=1e-4)
    np.testing.assert_allclose(out[0, 1], np.array([255, 128, 0]) - CAFFE_BGR_MEAN, rtol=0, atol=1e-4)
    for mode in ("caffe_bgr", "imagenet_rgb"):
        assert np.array_equal(denormalize_image(normalize_image(rgb, mode).transpose(2, 0, 1), mode), rgb)
    with pytest.raises(ValueError, match="caffe_bgr"):
        normalize_image(rgb, "bgr")


def _one_frame_root(make_frame, colour=(255, 0, 0)):
    root = make_frame("000000", n=3000)
    Image.new("RGB", (1242, 375), colour).save(root / "training/image_2/000000.png")
    (root / "ImageSets").mkdir()
    (root / "ImageSets/train.txt").write_text("000000\n")
    return root


def _kitti_data(root, **kw):
    overrides = [f"data.root={root}", "data.splits=[train]",
                 "data.img_scale_range=[[320, 97], [320, 97]]"] + [f"data.{k}={v}" for k, v in kw.items()]
    return load_config("kitti", overrides).data


def test_kitti_pipeline_feeds_caffe_bgr_pixels(make_frame):
    root = _one_frame_root(make_frame, colour=(255, 0, 0))  # pure red
    sample = PretrainDataset(_kitti_data(root))[0]
    h, w = sample["image_hw"]
    pixels = sample["image"][:, :h, :w].reshape(3, -1)
    np.testing.assert_allclose(pixels.mean(1), [0 - 103.530, 0 - 116.280, 255 - 123.675], atol=1e-3)


def test_camera_view_cloud_comes_from_velodyne_reduced_or_an_fov_crop(make_frame):
    root = _one_frame_root(make_frame)
    calib = read_calib(root / "training/calib/000000.txt")
    beside = np.array([[5.0, 30.0, -1.0, 0.5]] * 600, dtype=np.float32)  # in the point range, 80° off the axis
    points = np.concatenate([load_points(root / "training/velodyne/000000.bin"), beside])
    points.tofile(root / "training/velodyne/000000.bin")

    ds = PretrainDataset(_kitti_data(root))  # no velodyne_reduced: crop on the fly
    assert "cropped to the image_2 field of view on the fly" in ds.describe_points()
    from simipu.geometry import in_image, project_points
    uv, depth = project_points(ds[0]["points_a"][:, :3].astype(np.float64), calib.lidar2img)
    assert in_image(uv, depth, (375, 1242)).all()

    reduced = root / "training/velodyne_reduced"
    reduced.mkdir()
    points[:3000].tofile(reduced / "000000.bin")  # as mmdetection3d's converter writes: in-view points only
    ds = PretrainDataset(_kitti_data(root))
    assert ds.frames.velodyne_dir == "velodyne_reduced" and "velodyne_reduced" in ds.describe_points()
    assert not ds.crop_fov  # already the camera view: no second crop

    whole = PretrainDataset(_kitti_data(root, velodyne_dir="velodyne", fov_only="false"))
    assert "whole scans" in whole.describe_points()
    assert (whole[0]["points_a"][:, 1] == 30.0).any()  # the points beside the car come back


def test_view_b_flips_exactly_when_the_image_flips(make_frame):
    root = _one_frame_root(make_frame)
    ds = PretrainDataset(_kitti_data(root))
    calib = read_calib(root / "training/calib/000000.txt").lidar2img
    flips = []
    for epoch in range(24):
        ds.set_epoch(epoch)
        s = ds[0]
        img_aug = s["lidar2img"].astype(np.float64) @ np.linalg.inv(calib)
        image_flipped = img_aug[0, 0] < 0
        points_flipped = np.linalg.det(s["T_ab"][:3, :3].astype(np.float64)) < 0
        assert image_flipped == points_flipped
        flips.append(image_flipped)
    assert 0 < sum(flips) < len(flips)  # both cases occurred


def test_dilated_balls_on_a_real_frame_follow_the_kernel_rule(kitti_real):
    """Layer 1 of `kitti` on a real frame: every centre's shell at r = 0.4 is the kernel's, index for index."""
    pts = crop_to_range(load_points(kitti_real / "training/velodyne/000134.bin"), (0, -40, -3, 70.4, 40, 1))
    xyz = torch.from_numpy(pts[:16384, :3]).unsqueeze(0).contiguous()
    centres = xyz[:, furthest_point_sample(xyz, 1024)[0]]
    dilated = ball_query(xyz, centres, 0.4, 32, min_radius=0.2)
    assert torch.equal(dilated, ball_query_naive(xyz, centres, 0.4, 32, min_radius=0.2))
    plain = ball_query(xyz, centres, 0.4, 32)
    differ = (dilated != plain).any(-1).float().mean().item()
    assert differ > 0.3  # the shells really differ from the plain balls on real data
