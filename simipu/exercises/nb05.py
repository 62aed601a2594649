"""Exercises of notebook 05 (projection and point-to-pixel): catch a planted projection bug, count wrong matches."""
from __future__ import annotations

import numpy as np

from . import check
from ..geometry import project_points
from ..viz.matches import wrong_matches


def project_to_network(xyz, lidar2img, img_aug):
    """The correct projection into the network-input image: ``(uv (N, 2), depth (N,))`` = proj(img_aug @ lidar2img)."""
    return project_points(np.asarray(xyz, dtype=np.float64), img_aug @ lidar2img)


def _wrong_order(xyz, lidar2img, img_aug):
    return project_points(np.asarray(xyz, dtype=np.float64), lidar2img @ img_aug)


def _swapped_uv(xyz, lidar2img, img_aug):
    uv, d = project_to_network(xyz, lidar2img, img_aug)
    return uv[:, ::-1].copy(), d


def _flip_off_by_one(xyz, lidar2img, img_aug):
    """Treats a flip as index reversal u' = W - 1 - u: one pixel off whenever the image was flipped."""
    uv, d = project_to_network(xyz, lidar2img, img_aug)
    if img_aug[0, 0] < 0:
        uv = uv.copy()
        uv[:, 0] -= 1.0
    return uv, d


def _no_img_aug(xyz, lidar2img, img_aug):
    """Forgets the image's resize and flip: right on the original image, wrong on the network's input."""
    return project_points(np.asarray(xyz, dtype=np.float64), lidar2img)


def _planted():
    return [(project_to_network, True), (_wrong_order, False), (_swapped_uv, False), (_flip_off_by_one, False),
            (_no_img_aug, False), (project_to_network, True)]


def check_projection_test(student_fn):
    """``student_fn(project_fn) -> bool``: True for a correct ``project_fn(xyz, lidar2img, img_aug)``, False for
    a buggy one. Run on the correct projection and on implementations with planted bugs."""
    answers = dict((id(fn), ok) for fn, ok in _planted())
    names = {id(fn): fn.__name__.strip("_").replace("_", " ") for fn, _ in _planted()}

    def compare(got, want, project_fn):
        if not isinstance(got, (bool, np.bool_)):
            return f"expected True or False, got {type(got).__name__}"
        if bool(got) == want:
            return None
        if want:
            return "your test rejects a CORRECT projection: check the test itself (conventions, tolerances)"
        return f"your test accepts a projection with a planted bug (it is the '{names[id(project_fn)]}' variant)"

    return check(student_fn, lambda fn: answers[id(fn)], [(fn,) for fn, _ in _planted()], name="projection_test",
                 compare=compare,
                 hint="Test properties you know must hold: where must a flip send a point at u? what does a "
                      "resize by (s_u, s_v) do to (u, v)? which points must come out behind the camera?")


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


def _share_rounded(instance_img, uv, point_ids):
    H, W = instance_img.shape
    col = np.clip(np.round(uv[:, 0]).astype(int), 0, W - 1)
    row = np.clip(np.round(uv[:, 1]).astype(int), 0, H - 1)
    return float(np.mean(instance_img[row, col] != point_ids))


def check_wrong_match_share(student_fn, seed: int = 0):
    """``student_fn(instance_img (H, W), uv (N, 2), point_ids (N,)) -> float`` share of points whose pixel
    shows another instance."""
    rng = np.random.default_rng(seed)
    return check(student_fn, _reference_wrong_share, _cases_wrong(rng), name="wrong_match_share", atol=1e-9,
                 mistakes=[("round(u) is the nearest integer, but pixel i covers [i, i + 1): the pixel under u is "
                            "floor(u).", _share_rounded)],
                 hint="Which pixel (row, column) is under the point (u, v), with pixel i covering [i, i + 1)?")


__all__ = ["check_projection_test", "check_wrong_match_share", "project_to_network"]
