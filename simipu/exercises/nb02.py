"""Exercises of notebook 02 (view augmentation): invert a flip-then-rotate view, write the image-flip matrix."""
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


def _rotz(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def flip_then_rotate(xyz, angle, scale, translation, center, flip_y):
    """T'(x) = s R_z(θ) (F x - c) + c + t: flip FIRST, then rotate and scale about c, then translate (rows = points)."""
    F = np.diag([1.0, -1.0 if flip_y else 1.0, 1.0])
    return scale * (xyz @ F - center) @ _rotz(angle).T + center + translation


def flip_then_rotate_inverse(xyz_b, angle, scale, translation, center, flip_y):
    """The inverse of :func:`flip_then_rotate`: x = F (R_z(-θ) (y - c - t) / s + c)."""
    F = np.diag([1.0, -1.0 if flip_y else 1.0, 1.0])
    return (((xyz_b - center - translation) / scale) @ _rotz(angle) + center) @ F


def _inverse_variant(flip_first=False, plus_angle=False, about_origin=False, keep_t=False):
    """Plausible wrong inverses, to recognise a student's mistake (rows are points: x @ R means R^T x)."""
    def inverse(xyz_b, angle, scale, translation, center, flip_y):
        F = np.diag([1.0, -1.0 if flip_y else 1.0, 1.0])
        c = np.zeros(3) if about_origin else np.asarray(center)
        t = np.zeros(3) if keep_t else np.asarray(translation)
        R = _rotz(-angle if plus_angle else angle)
        y = xyz_b @ F if flip_first else xyz_b
        x = ((y - c - t) / scale) @ R + c
        return x if flip_first else x @ F
    return inverse


def check_view_inverse(student_fn, seed: int = 0):
    """``student_fn(xyz_b (N, 3), angle, scale, translation (3,), center (3,), flip_y) -> xyz_a (N, 3)``, the
    inverse of the flip-then-rotate view ``T'(x) = s R_z(θ) (F x - c) + c + t``."""
    return check(student_fn, flip_then_rotate_inverse, _inverse_cases(seed), name="view_inverse", atol=1e-6,
                 mistakes=[("you undo the flip first; T' flips FIRST, so the flip is the LAST step to undo.",
                            _inverse_variant(flip_first=True)),
                           ("you rotate by +θ: undoing a rotation by θ is a rotation by -θ (R^T).",
                            _inverse_variant(plus_angle=True)),
                           ("T' rotates and scales about the centre c, not about the origin.",
                            _inverse_variant(about_origin=True)),
                           ("the translation t is not undone.", _inverse_variant(keep_t=True))],
                 hint="Write T' as a chain of simple steps and undo them in reverse order; try your function on "
                      "flip_then_rotate(x, ...) for a few points before running the check.")


def _reference_flip_aug(W):
    return flip_image(np.zeros((2, W, 3), dtype=np.uint8))[1]


def _flip_variant(offset_column=2, offset=0):
    def aug(W):
        m = np.eye(4)
        m[0, 0] = -1.0
        m[0, offset_column] = W + offset
        return m
    return aug


def check_flip_img_aug(student_fn):
    """``student_fn(W: int) -> (4, 4) img_aug`` of a left-right flip acting on ``(u·d, v·d, d, 1)``."""
    return check(student_fn, _reference_flip_aug, [(W,) for W in (1242, 1224, 640, 33)], name="flip_img_aug",
                 atol=1e-9,
                 mistakes=[("the offset sits in the last column, where it is added to u*d unscaled; but u' = W - u "
                            "means u'*d = W*d - u*d. Which entry of the vector is d?", _flip_variant(3)),
                           ("W - 1 is the flip of pixel INDICES; here pixel i covers [i, i + 1), so the left edge "
                            "0 must go to W.", _flip_variant(2, -1)),
                           ("both mistakes: the offset must multiply d, and the edge 0 must go to W.",
                            _flip_variant(3, -1))],
                 hint="Write u' in terms of u, then multiply both sides by d: which row and columns of the "
                      "4x4 matrix produce u'*d from (u*d, v*d, d, 1)?")


__all__ = ["check_view_inverse", "check_flip_img_aug", "flip_then_rotate", "flip_then_rotate_inverse"]
