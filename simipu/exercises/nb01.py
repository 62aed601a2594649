"""Exercises of notebook 01 (data and calibration): build ``lidar2img`` and project points by hand."""
from __future__ import annotations

import numpy as np

from . import check
from ..data import Calib
from ..geometry import project_points


def _rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A random 3×3 rotation of at most ``max_angle`` radians (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    a = rng.uniform(-max_angle, max_angle)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def random_calib(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KITTI-like ``(P2 (3, 4), R0_rect (3, 3), Tr_velo_to_cam (3, 4))`` with random perturbations."""
    f = rng.uniform(600, 800)
    P2 = np.array([[f, 0, rng.uniform(550, 650), rng.uniform(-50, 50)],
                   [0, f, rng.uniform(150, 200), rng.uniform(-1, 1)],
                   [0, 0, 1, rng.uniform(-0.01, 0.01)]])
    R0 = _rotation(rng, 0.02)
    axes = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # velodyne (x fwd, y left, z up) -> camera
    Tr = np.concatenate([_rotation(rng, 0.05) @ axes, rng.normal(0, 0.3, (3, 1))], 1)
    return P2, R0, Tr


def _reference_lidar2img(P2, R0_rect, Tr_velo_to_cam):
    return Calib(P0=P2, P1=P2, P2=P2, P3=P2, R0_rect=R0_rect, Tr_velo_to_cam=Tr_velo_to_cam).lidar2img


def check_lidar2img(student_fn, seed: int = 0) -> bool:
    """``student_fn(P2 (3, 4), R0_rect (3, 3), Tr_velo_to_cam (3, 4)) -> (4, 4) lidar2img``."""
    rng = np.random.default_rng(seed)
    cases = [random_calib(rng) for _ in range(5)]
    return check(student_fn, _reference_lidar2img, cases, name="lidar2img", atol=1e-6,
                 hint="Pad each matrix to 4x4 (identity elsewhere) and multiply in the order the point "
                      "travels: velodyne -> camera 0 -> rectified -> image, i.e. P2 @ R0_rect @ Tr_velo_to_cam.")


def _cases_projection(rng: np.random.Generator, n_cases: int = 5):
    cases = []
    for _ in range(n_cases):
        lidar2img = _reference_lidar2img(*random_calib(rng))
        xyz = np.stack([rng.uniform(2, 60, 200), rng.uniform(-20, 20, 200), rng.uniform(-2, 1, 200)], 1)
        cases.append((xyz, lidar2img))
    return cases


def _compare_projection(got, want, xyz, lidar2img) -> bool:
    """Same depth everywhere, same pixels for the points in front of the camera."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        print("  expected a tuple (uv (N, 2), depth (N,))")
        return False
    uv, depth = (np.asarray(x, dtype=np.float64) for x in got)
    if uv.shape != want[0].shape or depth.shape != want[1].shape:
        print(f"  shapes: got uv {uv.shape}, depth {depth.shape}; expected {want[0].shape}, {want[1].shape}")
        return False
    front = want[1] > 1e-6
    return bool(np.allclose(depth, want[1], atol=1e-6) and np.allclose(uv[front], want[0][front], atol=1e-4))


def check_project_points(student_fn, seed: int = 0) -> bool:
    """``student_fn(xyz (N, 3), lidar2img (4, 4)) -> (uv (N, 2), depth (N,))``, numpy."""
    rng = np.random.default_rng(seed)
    return check(student_fn, project_points, _cases_projection(rng), name="project_points",
                 compare=_compare_projection,
                 hint="Append a 1 to each point, multiply by lidar2img (x_h @ lidar2img.T), take depth = "
                      "third coordinate and divide the first two by it.")


__all__ = ["check_lidar2img", "check_project_points", "random_calib"]
