"""Exercises of notebook 02 (view augmentation): invert the view transform T, write the image-flip matrix."""
from __future__ import annotations

import math

import numpy as np

from . import check
from ..views import ViewTransform, flip_image


def _reference_inverse(xyz_b, angle, scale, translation, center, flip_y):
    return ViewTransform(angle, scale, np.asarray(translation), np.asarray(center), flip_y).inverse(xyz_b)



def _inverse_cases(seed: int):
    rng = np.random.default_rng(seed)
    cases = []
    for flip in (False, True, False, True):
        T = ViewTransform.random(rng, (-math.pi / 2, math.pi / 2), (0.75, 1.25), (0.5, 0.5, 0.2),
                                 (35.2, 0.0, -1.0), flip_prob=float(flip))
        xyz_b = rng.uniform([0, -40, -3], [70, 40, 1], (100, 3))
        cases.append((xyz_b, T.angle, T.scale, T.translation, T.center, T.flip_y))
    return cases


def check_view_inverse(student_fn, seed: int = 0) -> bool:
    """``student_fn(xyz_b (N, 3), angle, scale, translation (3,), center (3,), flip_y) -> xyz_a (N, 3)``."""
    return check(student_fn, _reference_inverse, _inverse_cases(seed), name="view_inverse", atol=1e-6,
                 hint="Undo the steps of T(x) = F (s (R_z(θ) (x - c) + c) + t) in reverse order: flip y again "
                      "(F is its own inverse), subtract t, divide by s, subtract c, rotate by -θ, add c.")


def _reference_flip_aug(W):
    return flip_image(np.zeros((2, W, 3), dtype=np.uint8))[1]


def check_flip_img_aug(student_fn) -> bool:
    """``student_fn(W: int) -> (4, 4) img_aug`` of a left-right flip acting on ``(u·d, v·d, d, 1)``."""
    return check(student_fn, _reference_flip_aug, [(W,) for W in (1242, 1224, 640, 33)], name="flip_img_aug",
                 atol=1e-9,
                 hint="u' = W - u, v' = v. The matrix acts on (u*d, v*d, d, 1), so the offset W multiplies "
                      "d: it goes in column 2 of row 0, not in the last column.")


__all__ = ["check_view_inverse", "check_flip_img_aug"]
