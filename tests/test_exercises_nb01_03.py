"""The checkers of notebooks 01-03 pass the reference solutions and fail plausible wrong answers."""
import numpy as np

from simipu.exercises import nb01


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
