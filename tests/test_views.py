"""The recorded 3D view transform and the projection-consistent image ops."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from simipu.data import load_image, load_points, read_calib
from simipu.geometry import in_image, project_points, sample_image
from simipu.views import ViewTransform, flip_image, make_view, pad_image, rescale_size, resize_image


def _random_transforms(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return [ViewTransform.random(rng, (-math.pi / 2, math.pi / 2), (0.75, 1.25), (1.0, 2.0, 0.5),
                                 (35.2, 0.0, -1.0), 0.5) for _ in range(n)]


def test_inverse_after_apply_is_identity_numpy_and_torch():
    xyz = np.random.default_rng(1).uniform(-50, 80, (2, 300, 3))         # e.g. downsampled locations (B, M, 3)
    for T in _random_transforms():
        np.testing.assert_allclose(T.inverse(T.apply(xyz)), xyz, atol=1e-10)
        np.testing.assert_allclose(T.apply(T.inverse(xyz)), xyz, atol=1e-10)
        t = torch.from_numpy(xyz)
        out = T.inverse(T.apply(t))
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
        torch.testing.assert_close(out, t, rtol=0, atol=1e-10)
        t32 = t.float()
        torch.testing.assert_close(T.inverse(T.apply(t32)), t32, rtol=0, atol=2e-4)


def test_pairwise_distances_scale_by_s():
    xyz = np.random.default_rng(2).normal(size=(50, 3)) * 10
    dist = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    for T in _random_transforms():
        y = T.apply(xyz)
        np.testing.assert_allclose(np.linalg.norm(y[:, None] - y[None], axis=-1), T.scale * dist, atol=1e-9)


def test_matrix_form_equals_apply_and_the_formula():
    xyz = np.random.default_rng(3).normal(size=(40, 3)) * 20
    for T in _random_transforms():
        hom = np.column_stack([xyz, np.ones(len(xyz))]) @ T.matrix.T
        np.testing.assert_allclose(hom[:, :3], T.apply(xyz), atol=1e-9)
        c, s = math.cos(T.angle), math.sin(T.angle)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        Fl = np.diag([1, -1 if T.flip_y else 1, 1])
        # the released order: rotate about c, scale about the origin, translate, flip
        formula = (Fl @ (T.scale * (R @ (xyz - T.center).T + T.center[:, None]) + T.translation[:, None])).T
        np.testing.assert_allclose(T.apply(xyz), formula, atol=1e-9)
        T.scale_about_center = True
        formula = (Fl @ (T.scale * R @ (xyz - T.center).T + T.center[:, None] + T.translation[:, None])).T
        np.testing.assert_allclose(T.apply(xyz), formula, atol=1e-9)
        np.testing.assert_allclose(T.inverse(T.apply(xyz)), xyz, atol=1e-9)


def test_flip_then_unflip_restores_points_and_flip_negates_y_about_the_centre():
    xyz = np.random.default_rng(4).normal(size=(30, 3))
    T = ViewTransform(flip_y=True, center=np.array([35.2, 0.0, -1.0]))
    np.testing.assert_allclose(T.apply(xyz), xyz * [1, -1, 1], atol=1e-12)
    np.testing.assert_allclose(T.apply(T.apply(xyz)), xyz, atol=1e-12)


def test_random_transform_draws_within_ranges_and_flips_about_half_the_time():
    Ts = _random_transforms(400)
    assert all(-math.pi / 2 <= T.angle <= math.pi / 2 and 0.75 <= T.scale <= 1.25 for T in Ts)
    assert 150 < sum(T.flip_y for T in Ts) < 250
    assert not any(ViewTransform.random(np.random.default_rng(i), translation_std=(0, 0, 0)).translation.any()
                   for i in range(5))


def test_make_view_transforms_xyz_keeps_reflectance_and_shuffles():
    cfg = SimpleNamespace(rot_range=(-math.pi / 2, math.pi / 2), scale_range=(0.75, 1.25),
                          translation_std=(0.0, 0.0, 0.0), center=(35.2, 0.0, -1.0), flip_prob=0.5)
    pts = np.random.default_rng(5).uniform(0, 70, (1000, 4)).astype(np.float32)
    pts_b, T = make_view(pts, np.random.default_rng(6), cfg)
    assert pts_b.shape == pts.shape and pts_b.dtype == np.float32
    back = T.inverse(pts_b[:, :3].astype(np.float64))
    order = np.argsort(pts_b[:, 3])
    np.testing.assert_allclose(back[order], pts[np.argsort(pts[:, 3]), :3], atol=1e-3)
    assert not np.array_equal(pts_b[:, 3], pts[:, 3])                   # shuffled
    np.testing.assert_array_equal(np.sort(pts_b[:, 3]), np.sort(pts[:, 3]))


# --- image ops -------------------------------------------------------------------------------------

def test_rescale_size_keeps_ratio_and_fits_the_target():
    assert rescale_size(1242, 375, (2400, 720)) == (2385, 720)
    assert rescale_size(1242, 375, (640, 192)) == (636, 192)
    assert rescale_size(375, 1242, (640, 192)) == (192, 636)


def test_random_resize_stays_within_the_scale_range():
    img = np.zeros((375, 1242, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(10):
        out, aug = resize_image(img, ((640, 192), (2400, 720)), rng)
        H, W = out.shape[:2]
        assert 192 <= H <= 720 and 630 <= W <= 2400 and abs(W / H - 1242 / 375) < 0.02
        assert aug[0, 0] == W / 1242 and aug[1, 1] == H / 375


@pytest.mark.parametrize("split_dir, frame_id", [("training", "000134"), ("testing", "000002")])
def test_projection_after_resize_and_flip_lands_on_the_same_image_content(kitti_real, split_dir, frame_id):
    d = kitti_real / split_dir
    img = load_image(d / "image_2" / f"{frame_id}.png")
    lidar2img = read_calib(d / "calib" / f"{frame_id}.txt").lidar2img
    xyz = load_points(d / "velodyne" / f"{frame_id}.bin")[::5, :3].astype(np.float64)
    uv0, _ = project_points(xyz, lidar2img)
    colours0 = sample_image(img, uv0)

    for scale in [(1600, 480), (900, 270)]:                      # up- and down-scaling
        out, aug = resize_image(img, scale)
        out, flip_aug = flip_image(out)
        out, pad_aug = pad_image(out, 32)
        assert out.shape[0] % 32 == 0 and out.shape[1] % 32 == 0
        M = pad_aug @ flip_aug @ aug @ lidar2img
        uv, depth = project_points(xyz, M)
        assert in_image(uv, depth, out.shape[:2]).all()
        err = np.abs(sample_image(out, uv) - colours0).mean()
        # the same with a projection that forgot the flip, and one that is off by 2 pixels
        err_noflip = np.abs(sample_image(out, project_points(xyz, aug @ lidar2img)[0]) - colours0).mean()
        err_shift = np.abs(sample_image(out, uv + 2.0) - colours0).mean()
        assert err < 6.0 and err < 0.3 * err_shift and err < 0.1 * err_noflip, (err, err_shift, err_noflip)

    flipped, flip_aug = flip_image(img)                       # a pure flip is exact
    uv, _ = project_points(xyz, flip_aug @ lidar2img)
    np.testing.assert_allclose(sample_image(flipped, uv), colours0, atol=1e-9)
    np.testing.assert_array_equal(flip_image(flipped)[0], img)
    np.testing.assert_array_equal(flip_aug @ flip_aug, np.eye(4))
