"""Exercises of notebook 01 (data and calibration): where camera 2 sits, and which points a camera sees."""
from __future__ import annotations

import numpy as np

from . import check
from ..data import Calib
from ..geometry import in_image, project_points


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


def _lidar2img(P2, R0_rect, Tr_velo_to_cam):
    return Calib(P0=P2, P1=P2, P2=P2, P3=P2, R0_rect=R0_rect, Tr_velo_to_cam=Tr_velo_to_cam).lidar2img


def camera_centre_reference(P: np.ndarray) -> np.ndarray:
    """The centre C of a camera with 3x4 projection P = K [I | t]: P (C, 1) = 0, so C = -K^-1 P[:, 3]."""
    return -np.linalg.solve(P[:, :3], P[:, 3])


def _cases_centre(rng: np.random.Generator):
    cases = []
    for baseline in (0.06, -0.47, 0.54, 0.0):          # KITTI's P2, P3 and P1 sit near these offsets
        P2 = random_calib(rng)[0]
        K = P2[:, :3]
        t = np.array([baseline, rng.uniform(-0.01, 0.01), rng.uniform(-0.005, 0.005)])
        cases.append((np.concatenate([K, (K @ t)[:, None]], 1),))
    return cases


def check_camera_centre(student_fn, seed: int = 0):
    """``student_fn(P (3, 4)) -> (3,)``: the camera's centre in the rectified camera-0 frame, metres."""
    rng = np.random.default_rng(seed)
    return check(student_fn, camera_centre_reference, _cases_centre(rng), name="camera_centre", atol=1e-6,
                 mistakes=[("the sign: the centre C solves K (C + t) = 0, so C = -t, not t.",
                            lambda P: np.linalg.solve(P[:, :3], P[:, 3])),
                           ("P[:, 3] is K t, in pixels times metres: undo K (all of it, not just the focal "
                            "length), then mind the sign.", lambda P: -P[:, 3]),
                           ("dividing P[:, 3] by the focal length ignores the principal point in K: "
                            "P[0, 3] = f t_x + c_u t_z. Solve with the whole K.",
                            lambda P: -P[:, 3] / P[0, 0]),
                           ("dividing P[:, 3] by the focal length ignores the principal point in K, and the "
                            "sign is wrong too.", lambda P: P[:, 3] / P[0, 0])],
                 hint="A point X projects to P (X, 1) = K (X + t). Which X projects to (0, 0, 0), i.e. sits "
                      "at the camera's centre?")


def visible_reference(xyz, lidar2img, H, W):
    uv, depth = project_points(xyz, lidar2img)
    return in_image(uv, depth, (H, W))


def _cases_visible(rng: np.random.Generator, n_cases: int = 4):
    cases = []
    for _ in range(n_cases):
        lidar2img = _lidar2img(*random_calib(rng))
        n = 400
        xyz = np.stack([rng.uniform(-40, 60, n), rng.uniform(-40, 40, n), rng.uniform(-2, 1, n)], 1)
        # a few points exactly on the image borders u = 0 and u = W (pixel i covers [i, i + 1))
        H, W = 375, 1242
        inv = np.linalg.inv(lidar2img)
        for j, u in enumerate((0.0, float(W), 0.0, float(W))):
            d = 10.0 + j
            xyz[j] = (inv @ np.array([u * d, 100.0 * d, d, 1.0]))[:3]
        cases.append((xyz, lidar2img, H, W))
    return cases


def _visible_no_depth_test(xyz, lidar2img, H, W):
    hom = np.c_[xyz, np.ones(len(xyz))] @ lidar2img.T
    uv = hom[:, :2] / hom[:, 2:3]
    return (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)


def _visible_closed_border(xyz, lidar2img, H, W):
    hom = np.c_[xyz, np.ones(len(xyz))] @ lidar2img.T
    uv, d = hom[:, :2] / hom[:, 2:3], hom[:, 2]
    return (d > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= W) & (uv[:, 1] >= 0) & (uv[:, 1] <= H)


def _visible_swapped(xyz, lidar2img, H, W):
    hom = np.c_[xyz, np.ones(len(xyz))] @ lidar2img.T
    uv, d = hom[:, :2] / hom[:, 2:3], hom[:, 2]
    return (d > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < H) & (uv[:, 1] >= 0) & (uv[:, 1] < W)


def check_visible(student_fn, seed: int = 0):
    """``student_fn(xyz (N, 3), lidar2img (4, 4), H, W) -> (N,) bool``: the points the camera sees."""
    rng = np.random.default_rng(seed)
    return check(student_fn, visible_reference, _cases_visible(rng), name="visible", atol=0,
                 mistakes=[("points BEHIND the camera pass your test: with a negative depth the division mirrors "
                            "them into the image. What must be true of d?", _visible_no_depth_test),
                           ("a point at u = W is outside the image: pixel W - 1 covers [W - 1, W).",
                            _visible_closed_border),
                           ("u runs along the width W and v along the height H.", _visible_swapped)],
                 hint="Project, then ask three questions of each point: is it in front of the camera, is u "
                      "within the image's columns, is v within its rows? Mind where the last pixel ends.")


__all__ = ["check_camera_centre", "check_visible", "camera_centre_reference", "visible_reference", "random_calib"]
