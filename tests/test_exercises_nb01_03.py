"""The checkers of notebooks 01-03 pass the reference solutions and name the mistakes of wrong ones."""
import numpy as np
import torch

from conftest import KITTI_P2
from exercise_helpers import fails
from simipu.exercises import nb01, nb02, nb03


def _centre(P):
    return -np.linalg.inv(P[:, :3]) @ P[:, 3]


def test_camera_centre_checker_passes_minus_k_inverse_times_the_last_column():
    assert nb01.check_camera_centre(_centre)


def test_camera_2_of_kitti_sits_six_centimetres_left_of_camera_0():
    c = nb01.camera_centre_reference(np.array(KITTI_P2))
    assert np.allclose(c, [-0.0598, 0.0, -0.0027], atol=5e-4)


def test_camera_centre_checker_names_the_sign_and_the_principal_point():
    fails(nb01.check_camera_centre, lambda P: -_centre(P), "FAIL camera_centre", "sign")
    fails(nb01.check_camera_centre, lambda P: np.array([P[0, 3] / P[0, 0], 0, 0]), "expected", "got")
    fails(nb01.check_camera_centre, lambda P: -P[:, 3] / P[0, 0], "principal point")


def _visible(xyz, l2i, H, W):
    hom = np.c_[xyz, np.ones(len(xyz))] @ l2i.T
    d = hom[:, 2]
    uv = hom[:, :2] / np.where(d > 0, d, 1)[:, None]
    return (d > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)


def test_visible_checker_passes_depth_and_half_open_bounds():
    assert nb01.check_visible(_visible)


def test_visible_checker_catches_points_behind_the_camera_and_the_closed_border():
    def no_depth(xyz, l2i, H, W):
        hom = np.c_[xyz, np.ones(len(xyz))] @ l2i.T
        uv = hom[:, :2] / hom[:, 2:3]
        return (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    fails(nb01.check_visible, no_depth, "BEHIND")

    def closed(xyz, l2i, H, W):
        hom = np.c_[xyz, np.ones(len(xyz))] @ l2i.T
        uv, d = hom[:, :2] / hom[:, 2:3], hom[:, 2]
        return (d > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= W) & (uv[:, 1] >= 0) & (uv[:, 1] <= H)
    fails(nb01.check_visible, closed, "u = W")


def _inverse(xyz_b, angle, scale, translation, center, flip_y, about_origin=False, flip_first=False):
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    F = np.diag([1, -1 if flip_y else 1, 1])
    centre = np.zeros(3) if about_origin else center
    y = xyz_b @ F if flip_first else xyz_b
    x = (y - centre - translation) / scale @ R + centre
    return x if flip_first else x @ F


def test_flip_then_rotate_inverse_undoes_the_view():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3))
    for flip in (False, True):
        args = (0.7, 1.2, np.array([0.3, -0.2, 0.1]), np.array([35.2, 0, -1.0]), flip)
        assert np.allclose(nb02.flip_then_rotate_inverse(nb02.flip_then_rotate(x, *args), *args), x)


def test_view_inverse_checker_passes_the_steps_undone_in_reverse():
    assert nb02.check_view_inverse(_inverse)


def test_view_inverse_checker_names_the_centre_and_the_order_of_the_flip():
    fails(nb02.check_view_inverse, lambda *a: _inverse(*a, about_origin=True), "centre c")
    fails(nb02.check_view_inverse, lambda *a: _inverse(*a, flip_first=True), "LAST step")


def test_flip_aug_checker_passes_the_offset_in_the_depth_column():
    def aug(W):
        m = np.eye(4)
        m[0, 0], m[0, 2] = -1, W
        return m
    assert nb02.check_flip_img_aug(aug)


def test_flip_aug_checker_names_the_last_column_and_w_minus_one():
    def aug(W, col=2, off=0):
        m = np.eye(4)
        m[0, 0], m[0, col] = -1, W + off
        return m
    fails(nb02.check_flip_img_aug, lambda W: aug(W, col=3), "last column")
    fails(nb02.check_flip_img_aug, lambda W: aug(W, off=-1), "W - 1")


def _fps(xyz, npoint, start, keep_nearest=True):
    nearest = torch.full((len(xyz),), float("inf"))
    far, out = start, [start]
    for _ in range(npoint - 1):
        d = ((xyz - xyz[far]) ** 2).sum(-1)
        nearest = torch.minimum(nearest, d) if keep_nearest else torch.where(nearest == 0, nearest, d)
        far = int(nearest.argmax())
        out.append(far)
    return torch.tensor(out)


def test_fps_checker_passes_the_nearest_centre_loop():
    assert nb03.check_fps(_fps)


def test_fps_checker_names_distances_to_the_last_centre_and_the_start():
    fails(nb03.check_fps, lambda x, n, s: _fps(x, n, s, keep_nearest=False), "LAST centre")
    fails(nb03.check_fps, lambda x, n, s: _fps(x, n, 0), "start")


def _ball(xyz, centers, r, k, r0, closed=False, drop_centre=False):
    out = torch.zeros(len(centers), k, dtype=torch.long)
    for s, c in enumerate(centers):
        d2 = ((xyz - c) ** 2).sum(-1)
        shell = (d2 >= r0 * r0) & ((d2 <= r * r) if closed else (d2 < r * r))
        inside = torch.nonzero(shell if drop_centre else shell | (d2 == 0)).flatten()[:k]
        if len(inside):
            out[s, : len(inside)] = inside
            out[s, len(inside):] = inside[0]
    return out


def test_dilated_ball_query_checker_passes_the_definition():
    assert nb03.check_dilated_ball_query(_ball)


def test_dilated_ball_query_checker_names_the_strict_outer_bound_and_the_centre():
    fails(nb03.check_dilated_ball_query, lambda *a: _ball(*a, closed=True), "strictly less")
    fails(nb03.check_dilated_ball_query, lambda *a: _ball(*a, drop_centre=True), "centre itself")
    fails(nb03.check_dilated_ball_query, lambda x, c, r, k, r0: _ball(x, c, r, k, 0.0), "min_radius")
