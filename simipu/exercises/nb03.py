"""Exercises of notebook 03 (set abstraction): furthest point sampling and ball query on one cloud."""
from __future__ import annotations

import torch

from . import check
from ..ops import ball_query, furthest_point_sample


def _fps_reference(xyz, npoint, start):
    return furthest_point_sample(xyz[None], npoint, start)[0]


def check_fps(student_fn, seed: int = 0) -> bool:
    """``student_fn(xyz (N, 3) float tensor, npoint, start) -> (npoint,) int64 indices``, first = ``start``."""
    g = torch.Generator().manual_seed(seed)
    cases = [(torch.rand(n, 3, generator=g) * torch.tensor([70.0, 80.0, 4.0]), s, start)
             for n, s, start in ((50, 10, 0), (300, 64, 7), (1000, 128, 999), (2000, 500, 3))]
    return check(student_fn, _fps_reference, cases, name="furthest_point_sample", atol=0,
                 hint="Keep, for every point, its distance to the NEAREST centre picked so far "
                      "(update with a minimum after each pick); the next centre is the argmax of that.")


def _ball_reference(xyz, centers, radius, nsample):
    return ball_query(xyz[None], centers[None], radius, nsample)[0]


def check_ball_query(student_fn, seed: int = 0) -> bool:
    """``student_fn(xyz (N, 3), centers (S, 3), radius, nsample) -> (S, nsample) int64``.

    The first ``nsample`` points within ``radius`` in index order; empty slots repeat the first found.
    """
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, s, r, k in ((200, 10, 0.2, 8), (1000, 50, 0.1, 16), (500, 20, 0.3, 64), (300, 30, 0.05, 4)):
        xyz = torch.rand(n, 3, generator=g)
        centers = xyz[torch.randperm(n, generator=g)[:s]]
        cases.append((xyz, centers, r, k))
    return check(student_fn, _ball_reference, cases, name="ball_query", atol=0,
                 hint="Per centre: indices with squared distance <= r^2, in increasing index order, the first "
                      "nsample of them; fill the missing slots with the first index found (the centre itself "
                      "is always in its own ball).")


__all__ = ["check_fps", "check_ball_query"]
