"""Projection onto the image and bilinear feature sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from simipu.data import load_points, read_calib
from simipu.geometry import in_image, pixels_to_grid, project_points, sample_features, sample_image

FRAMES = [("training", "000134", (370, 1224)), ("testing", "000002", (375, 1242))]


@pytest.mark.parametrize("split_dir, frame_id, image_hw", FRAMES)
def test_fov_cropped_kitti_cloud_projects_inside_image(kitti_real, split_dir, frame_id, image_hw):
    calib = read_calib(kitti_real / split_dir / "calib" / f"{frame_id}.txt")
    xyz = load_points(kitti_real / split_dir / "velodyne" / f"{frame_id}.bin")[:, :3]
    uv, depth = project_points(xyz.astype(np.float64), calib.lidar2img)
    assert uv.shape == (len(xyz), 2) and depth.shape == (len(xyz),)
    assert in_image(uv, depth, image_hw).all()
    assert (depth > 1.0).all()


def test_projection_equals_a_hand_computation_from_the_calib_numbers(kitti_real):
    """testing/000002: Tr_velo_to_cam, then R0_rect, then P2, then divide by depth — written out by hand."""
    calib = read_calib(kitti_real / "testing/calib/000002.txt")
    xyz = load_points(kitti_real / "testing/velodyne/000002.bin")[:50, :3].astype(np.float64)
    xyz = np.vstack([[[20.0, 1.5, -0.8]], xyz])
    uv, depth = project_points(xyz, calib.lidar2img)
    for (x, y, z), (u_got, v_got), d_got in zip(xyz, uv, depth):
        # Tr_velo_to_cam (3x4) of testing/000002
        cx = 7.533745e-03 * x + -9.999714e-01 * y + -6.166020e-04 * z + -4.069766e-03
        cy = 1.480249e-02 * x + 7.280733e-04 * y + -9.998902e-01 * z + -7.631618e-02
        cz = 9.998621e-01 * x + 7.523790e-03 * y + 1.480755e-02 * z + -2.717806e-01
        # R0_rect (3x3)
        rx = 9.999239e-01 * cx + 9.837760e-03 * cy + -7.445048e-03 * cz
        ry = -9.869795e-03 * cx + 9.999421e-01 * cy + -4.278459e-03 * cz
        rz = 7.402527e-03 * cx + 4.351614e-03 * cy + 9.999631e-01 * cz
        # P2 (3x4)
        a = 7.215377e+02 * rx + 0.0 * ry + 6.095593e+02 * rz + 4.485728e+01
        b = 0.0 * rx + 7.215377e+02 * ry + 1.728540e+02 * rz + 2.163791e-01
        c = 0.0 * rx + 0.0 * ry + 1.0 * rz + 2.745884e-03
        assert abs(u_got - a / c) < 1e-3 and abs(v_got - b / c) < 1e-3 and abs(d_got - c) < 1e-6
    # the literal point (20, 1.5, -0.8) lands left of the principal point (it is left of the car)
    assert uv[0, 0] < 609.5 and 0 < uv[0, 1] < 375


def test_project_points_torch_and_batched_match_numpy(kitti_real):
    calib = read_calib(kitti_real / "testing/calib/000002.txt")
    rng = np.random.default_rng(0)
    xyz = rng.uniform([5, -10, -2], [50, 10, 1], (2, 100, 3))
    M = np.stack([calib.lidar2img, calib.lidar2img * 2.0])
    uv_np, d_np = project_points(xyz, M)
    uv_t, d_t = project_points(torch.from_numpy(xyz), torch.from_numpy(M))
    assert isinstance(uv_t, torch.Tensor) and uv_t.shape == (2, 100, 2) and d_t.shape == (2, 100)
    np.testing.assert_allclose(uv_t.numpy(), uv_np, rtol=1e-12)
    for b in range(2):
        uv_b, d_b = project_points(xyz[b], M[b])
        np.testing.assert_allclose(uv_np[b], uv_b, rtol=1e-12)
        np.testing.assert_allclose(d_np[b], d_b, rtol=1e-12)


def test_in_image_rejects_points_behind_camera_and_on_far_edges():
    uv = np.array([[0.0, 0.0], [9.99, 4.99], [10.0, 1.0], [1.0, 5.0], [-0.01, 1.0], [3.0, 3.0]])
    depth = np.array([1.0, 1.0, 1.0, 1.0, 1.0, -2.0])
    np.testing.assert_array_equal(in_image(uv, depth, (5, 10)), [True, True, False, False, False, False])
    batched = in_image(torch.tensor(uv[None].repeat(2, 0)), torch.ones(2, 6), torch.tensor([[5, 10], [6, 11]]))
    np.testing.assert_array_equal(batched.numpy(), [[1, 1, 0, 0, 0, 1], [1, 1, 1, 1, 0, 1]])


@pytest.mark.parametrize("stride", [32, 4])
def test_sampling_a_linear_ramp_returns_the_ramp_at_subpixel_positions(stride):
    """Feature cell (j, i) holds 3·i − 2·j + 5; a point at pixel u sits at feature x = u/s − 0.5."""
    B, C, h, w = 2, 3, 7, 11
    jj, ii = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    ramp = 3 * ii - 2 * jj + 5
    feat = torch.stack([ramp, 2 * ramp, -ramp])[None].repeat(B, 1, 1, 1)            # (B, C, h, w)
    g = torch.Generator().manual_seed(0)
    lo, hi = stride / 2, (torch.tensor([w - 1, h - 1]) + 0.5) * stride                 # first/last cell centres
    uv = lo + torch.rand(B, 50, 2, generator=g, dtype=torch.float64) * (hi - lo)
    got = sample_features(feat, uv, stride=stride)                                     # (B, N, C)
    x = uv[..., 0] / stride - 0.5
    y = uv[..., 1] / stride - 0.5
    expected = 3 * x - 2 * y + 5
    assert got.shape == (B, 50, C)
    torch.testing.assert_close(got[..., 0], expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(got[..., 2], -expected, rtol=0, atol=1e-9)


def test_cell_centres_sample_their_own_cell_and_outside_points_get_zeros():
    feat = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    j, i = torch.tensor([0, 2, 1]), torch.tensor([0, 3, 2])
    uv = torch.stack([i * 32 + 16.0, j * 32 + 16.0], -1)[None]                          # cell centres
    np.testing.assert_allclose(sample_features(feat, uv)[0, :, 0].numpy(), feat[0, 0, j, i].numpy(), atol=1e-5)
    far = torch.tensor([[[-100.0, 10.0], [10.0, 500.0]]])
    assert (sample_features(feat, far) == 0).all()
    # a point in the padded area, outside the valid image, is zeroed when image_hw is given
    inside_pad = torch.tensor([[[100.0, 50.0]]])
    assert sample_features(feat, inside_pad)[0, 0, 0] != 0
    assert sample_features(feat, inside_pad, image_hw=torch.tensor([[40, 90]]))[0, 0, 0] == 0


def test_pixels_to_grid_maps_first_and_last_cell_centres_to_minus_and_plus_one():
    grid = pixels_to_grid(torch.tensor([[16.0, 16.0], [32 * 10 + 16.0, 32 * 6 + 16.0]]), (7, 11), 32)
    torch.testing.assert_close(grid, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))


def test_sample_features_rejects_unbatched_uv():
    with pytest.raises(ValueError, match=r"\(B=1, N, 2\)"):
        sample_features(torch.zeros(1, 2, 3, 4), torch.zeros(5, 2))


def test_sample_image_equals_sample_features_at_stride_one_inside_the_image():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (9, 13, 3))
    uv = rng.uniform([0.5, 0.5], [12.5, 8.5], (40, 2))                   # between first and last pixel centres
    feat = torch.from_numpy(img.transpose(2, 0, 1))[None]                # (1, 3, 9, 13)
    expected = sample_features(feat, torch.from_numpy(uv)[None], stride=1)[0].numpy()
    np.testing.assert_allclose(sample_image(img, uv), expected, atol=1e-9)
    np.testing.assert_allclose(sample_image(img, np.array([[3.5, 2.5]])), img[2:3, 3], atol=1e-12)
