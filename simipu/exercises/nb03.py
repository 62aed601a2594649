"""Exercises of notebook 03 (set abstraction): furthest point sampling, and dilated ball query from its definition."""
from __future__ import annotations

import torch

from . import check
from ..ops import ball_query, furthest_point_sample


def _fps_reference(xyz, npoint, start):
    return furthest_point_sample(xyz[None], npoint, start)[0]


def _fps_variant(keep_nearest=True, ignore_start=False):
    def fps(xyz, npoint, start):
        nearest = torch.full((len(xyz),), float("inf"))
        far, out = (0 if ignore_start else start), []
        for _ in range(npoint):
            out.append(far)
            d = ((xyz - xyz[far]) ** 2).sum(-1)
            nearest = torch.minimum(nearest, d) if keep_nearest else torch.where(nearest == 0, nearest, d)
            far = int(nearest.argmax())
        return torch.tensor(out)
    return fps


def check_fps(student_fn, seed: int = 0):
    """``student_fn(xyz (N, 3) float tensor, npoint, start) -> (npoint,) int64 indices``, first = ``start``."""
    g = torch.Generator().manual_seed(seed)
    cases = [(torch.rand(n, 3, generator=g) * torch.tensor([70.0, 80.0, 4.0]), s, start)
             for n, s, start in ((50, 10, 0), (300, 64, 7), (1000, 128, 999), (2000, 500, 3))]
    return check(student_fn, _fps_reference, cases, name="furthest_point_sample", atol=0,
                 mistakes=[("you measure each point's distance to the LAST centre only; 'furthest' means furthest "
                            "from ALL centres so far, i.e. from the nearest of them.",
                            _fps_variant(keep_nearest=False)),
                           ("the first index must be `start`.", _fps_variant(ignore_start=True))],
                 hint="What single number per point, kept from one pick to the next, tells how far the point "
                      "is from the set of centres picked so far?")


def _ball_reference(xyz, centers, radius, nsample, min_radius):
    return ball_query(xyz[None], centers[None], radius, nsample, min_radius=min_radius)[0]


def _ball_variant(closed=False, drop_centre=False, nearest_first=False, pad_zero=False, plain=False):
    def ball(xyz, centers, radius, nsample, min_radius):
        out = torch.zeros(len(centers), nsample, dtype=torch.long)
        for s, c in enumerate(centers):
            d2 = ((xyz - c) ** 2).sum(-1)
            outer = d2 <= radius ** 2 if closed else d2 < radius ** 2
            inner = d2 >= (0.0 if plain else min_radius ** 2)
            keep = outer & inner if drop_centre else (d2 == 0) | (outer & inner)
            inside = torch.nonzero(keep).flatten()
            if nearest_first:
                inside = inside[torch.argsort(d2[inside], stable=True)]
            inside = inside[:nsample]
            if len(inside):
                out[s, : len(inside)] = inside
                out[s, len(inside):] = 0 if pad_zero else inside[0]
        return out
    return ball


def _ball_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, s, r, r0, k in ((200, 10, 0.2, 0.0, 8), (1000, 50, 0.2, 0.1, 16), (500, 20, 0.3, 0.15, 64),
                           (300, 30, 0.05, 0.0, 4)):
        xyz = torch.rand(n, 3, generator=g)
        centers = xyz[torch.randperm(n, generator=g)[:s]]
        cases.append((xyz, centers, r, k, r0))
    # an integer grid: many points sit exactly on the inner and outer spheres (d = 1 and d = 2)
    grid = torch.stack(torch.meshgrid(*(torch.arange(5.0),) * 3, indexing="ij"), -1).reshape(-1, 3)
    cases.append((grid, grid[torch.tensor([62, 31, 0])], 2.0, 40, 1.0))
    return cases


def check_dilated_ball_query(student_fn, seed: int = 0):
    """``student_fn(xyz (N, 3), centers (S, 3), radius, nsample, min_radius) -> (S, nsample) int64``.

    Keeps the points with ``d² == 0 or min_radius² <= d² < radius²``: the first ``nsample`` in index order,
    the empty slots repeating the first index kept.
    """
    return check(student_fn, _ball_reference, _ball_cases(seed), name="dilated_ball_query", atol=0,
                 mistakes=[("a point exactly at distance `radius` is outside (strictly less than r); at `min_radius` "
                            "it is inside.", _ball_variant(closed=True)),
                           ("the centre itself (d = 0) must stay in every group, even when min_radius > 0: the "
                            "rule keeps d² == 0 as well as the shell.", _ball_variant(drop_centre=True)),
                           ("you ignore min_radius: a dilated group keeps only the shell min_radius <= d < radius "
                            "(and the centre).", _ball_variant(plain=True)),
                           ("the group takes the FIRST points in index order, not the nearest ones.",
                            _ball_variant(nearest_first=True)),
                           ("empty slots repeat the first index kept, not 0.", _ball_variant(pad_zero=True))],
                 hint="Go back to the definition: which squared distances are kept, in which order are they "
                      "taken, and what fills a group that has fewer than nsample members?")


__all__ = ["check_fps", "check_dilated_ball_query"]
