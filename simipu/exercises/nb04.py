"""Exercises of notebook 04 (Hungarian matching): the cost matrix of Eq. 3 and the greedy assignment."""
from __future__ import annotations

import numpy as np

from . import check
from ..matching import apply_affine, greedy_match, pairwise_distance
from ..views import ViewTransform


def _reference_cost(l_a, l_b, T_ab):
    return pairwise_distance(apply_affine(np.asarray(l_a, dtype=np.float64), T_ab), l_b)


def _cases_cost(rng: np.random.Generator, n_cases: int = 4):
    cases = []
    for _ in range(n_cases):
        n, m = rng.integers(5, 40, 2)
        T = ViewTransform.random(rng, center=(35.2, 0.0, -1.0), flip_prob=0.5).matrix
        cases.append((rng.uniform(-20, 60, (n, 3)), rng.uniform(-20, 60, (m, 3)), T))
    return cases


def check_cost_matrix(student_fn, seed: int = 0) -> bool:
    """``student_fn(l_a (N, 3), l_b (M, 3), T_ab (4, 4)) -> (N, M)`` distances ‖T(l_a[i]) − l_b[j]‖ (Eq. 3)."""
    rng = np.random.default_rng(seed)
    return check(student_fn, _reference_cost, _cases_cost(rng), name="cost_matrix", atol=1e-6,
                 hint="First bring view a into view b's frame: T(x) = T_ab[:3, :3] @ x + T_ab[:3, 3] "
                      "(for row vectors: l_a @ R.T + t); then take all pairwise L2 distances with "
                      "broadcasting, (N, 1, 3) - (1, M, 3).")


def _cases_greedy(rng: np.random.Generator, n_cases: int = 5):
    cases = []
    for _ in range(n_cases):
        n, m = rng.integers(3, 30, 2)
        cases.append((rng.uniform(0, 10, (n, 3)), rng.uniform(0, 10, (m, 3))))
    return cases


def check_greedy_match(student_fn, seed: int = 0) -> bool:
    """``student_fn(a (N, 3), b (M, 3)) -> (rows, cols)``: a in index order takes its nearest free b."""
    rng = np.random.default_rng(seed)
    return check(student_fn, greedy_match, _cases_greedy(rng), name="greedy_match",
                 compare=lambda got, want, *args: (len(got) == 2 and np.array_equal(np.asarray(got[0]), want[0])
                                                   and np.array_equal(np.asarray(got[1]), want[1])),
                 hint="Loop i over range(min(N, M)); take j = argmin of row i among the b's not taken yet "
                      "(set column j of the cost matrix to inf once taken); return int arrays rows, cols.")


__all__ = ["check_cost_matrix", "check_greedy_match"]
