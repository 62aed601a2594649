"""Exercises of notebook 05 (projection and point-to-pixel): the feature-grid convention and wrong matches."""
from __future__ import annotations

import numpy as np

from . import check
from ..viz.matches import wrong_matches


def _reference_feature_coords(uv, stride):
    return np.asarray(uv, dtype=np.float64) / stride - 0.5


def check_feature_coords(student_fn, seed: int = 0) -> bool:
    """``student_fn(uv (N, 2), stride) -> (N, 2)`` feature-grid coordinates: cell j's centre is at u = (j + 0.5)·s."""
    rng = np.random.default_rng(seed)
    cases = [(rng.uniform(0, 1242, (50, 2)), int(s)) for s in (32, 16, 8, 4)]
    return check(student_fn, _reference_feature_coords, cases, name="feature_coords", atol=1e-9,
                 hint="Pixel i covers [i, i+1) and cell j covers pixels [j*s, (j+1)*s), so cell j's centre "
                      "u = (j + 0.5)*s must map to x = j: x = u/s - 0.5.")


def _reference_wrong_share(instance_img, uv, point_ids):
    return float(wrong_matches(instance_img, uv, point_ids).mean())


def _cases_wrong(rng: np.random.Generator, n_cases: int = 4):
    cases = []
    for _ in range(n_cases):
        H, W = rng.integers(20, 60, 2)
        img = np.zeros((H, W), dtype=np.int64)
        for k in range(1, 5):  # a few rectangles of objects
            r0, c0 = rng.integers(0, H - 5), rng.integers(0, W - 5)
            img[r0:r0 + rng.integers(3, 15), c0:c0 + rng.integers(3, 15)] = k
        uv = np.column_stack([rng.uniform(0, W, 300), rng.uniform(0, H, 300)])
        ids = img[np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)].copy()
        flip = rng.random(300) < 0.2
        ids[flip] = rng.integers(0, 5, flip.sum())
        cases.append((img, uv, ids))
    return cases


def check_wrong_match_share(student_fn, seed: int = 0) -> bool:
    """``student_fn(instance_img (H, W), uv (N, 2), point_ids (N,)) -> float`` share of points whose pixel
    shows another instance."""
    rng = np.random.default_rng(seed)
    return check(student_fn, _reference_wrong_share, _cases_wrong(rng), name="wrong_match_share", atol=1e-9,
                 hint="The pixel under uv is (row, col) = (floor(v), floor(u)) — not round(): pixel i covers "
                      "[i, i+1). Compare instance_img[row, col] with point_ids and average the mismatches.")


__all__ = ["check_feature_coords", "check_wrong_match_share"]
