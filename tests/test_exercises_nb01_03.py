"""The checkers of notebooks 01-03 pass the reference solutions and fail plausible wrong answers."""
import numpy as np
import torch

from simipu.exercises import nb01, nb02, nb03


def _pad(m):
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out


def test_lidar2img_checker_passes_the_chain_in_travel_order():
    assert nb01.check_lidar2img(lambda P2, R0, Tr: _pad(P2) @ _pad(R0) @ _pad(Tr))


def test_lidar2img_checker_fails_the_chain_without_rectification():
    assert not nb01.check_lidar2img(lambda P2, R0, Tr: _pad(P2) @ _pad(Tr))


def test_lidar2img_checker_fails_swapped_order():
    assert not nb01.check_lidar2img(lambda P2, R0, Tr: _pad(P2) @ _pad(Tr) @ _pad(R0))


def _project(xyz, lidar2img):
    hom = np.c_[xyz, np.ones(len(xyz))] @ lidar2img.T
    return hom[:, :2] / hom[:, 2:3], hom[:, 2]


def test_projection_checker_passes_the_homogeneous_division():
    assert nb01.check_project_points(_project)


def test_projection_checker_fails_a_missing_division_by_depth():
    assert not nb01.check_project_points(lambda xyz, l2i: (_project(xyz, l2i)[0] * _project(xyz, l2i)[1][:, None],
                                                           _project(xyz, l2i)[1]))


def test_projection_checker_fails_a_transposed_matrix():
    assert not nb01.check_project_points(lambda xyz, l2i: _project(xyz, l2i.T))



def _inverse(xyz_b, angle, scale, translation, center, flip_y, forget_center=False):
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    F = np.diag([1, -1 if flip_y else 1, 1])
    centre = np.zeros(3) if forget_center else center
    return ((xyz_b @ F.T - translation) / scale - centre) @ R + centre


def test_view_inverse_checker_passes_the_steps_undone_in_reverse():
    assert nb02.check_view_inverse(_inverse)


def test_view_inverse_checker_fails_an_inverse_about_the_origin():
    assert not nb02.check_view_inverse(lambda *a: _inverse(*a, forget_center=True))


def test_view_inverse_checker_fails_when_the_flip_is_ignored():
    assert not nb02.check_view_inverse(lambda x, a, s, t, c, f: _inverse(x, a, s, t, c, False))


def test_flip_aug_checker_passes_the_offset_in_the_depth_column():
    def flip(W):
        M = np.eye(4)
        M[0, 0], M[0, 2] = -1.0, W
        return M
    assert nb02.check_flip_img_aug(flip)


def test_flip_aug_checker_fails_the_offset_in_the_last_column_and_w_minus_one():
    def last_column(W):
        M = np.eye(4)
        M[0, 0], M[0, 3] = -1.0, W
        return M

    def w_minus_one(W):
        M = np.eye(4)
        M[0, 0], M[0, 2] = -1.0, W - 1
        return M
    assert not nb02.check_flip_img_aug(last_column)
    assert not nb02.check_flip_img_aug(w_minus_one)


def _fps(xyz, npoint, start, keep_nearest=True):
    nearest = torch.full((len(xyz),), float("inf"))
    out, far = [start], start
    for _ in range(npoint - 1):
        d = ((xyz - xyz[far]) ** 2).sum(-1)
        nearest = torch.minimum(nearest, d) if keep_nearest else torch.where(nearest == 0, nearest, d)
        far = int(nearest.argmax())
        out.append(far)
    return torch.tensor(out)


def test_fps_checker_passes_the_nearest_centre_loop():
    assert nb03.check_fps(_fps)


def test_fps_checker_fails_distances_to_the_last_centre_only():
    assert not nb03.check_fps(lambda x, n, s: _fps(x, n, s, keep_nearest=False))


def test_fps_checker_fails_a_sampler_that_ignores_start():
    assert not nb03.check_fps(lambda x, n, s: _fps(x, n, 0))


def _ball(xyz, centers, r, k, nearest_first=False, pad_zero=False):
    out = torch.empty(len(centers), k, dtype=torch.long)
    for s, c in enumerate(centers):
        d2 = ((xyz - c) ** 2).sum(-1)
        inside = torch.nonzero(d2 <= r * r).flatten()
        if nearest_first:
            inside = inside[torch.argsort(d2[inside])]
        inside = inside[:k]
        out[s, : len(inside)] = inside
        out[s, len(inside):] = 0 if pad_zero else inside[0]
    return out


def test_ball_query_checker_passes_first_k_in_index_order_padded_with_the_first():
    assert nb03.check_ball_query(_ball)


def test_ball_query_checker_fails_nearest_first_and_zero_padding():
    assert not nb03.check_ball_query(lambda *a: _ball(*a, nearest_first=True))
    assert not nb03.check_ball_query(lambda *a: _ball(*a, pad_zero=True))
