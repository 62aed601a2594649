"""Exercises of notebook 04 (Hungarian matching): the cost matrix of Eq. 3, greedy assignment, and a trap for greedy."""
from __future__ import annotations

import numpy as np

from . import check
from ..matching import apply_affine, greedy_match, hungarian_match, pairwise_distance
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


def check_cost_matrix(student_fn, seed: int = 0):
    """``student_fn(l_a (N, 3), l_b (M, 3), T_ab (4, 4)) -> (N, M)`` distances ‖T(l_a[i]) − l_b[j]‖ (Eq. 3)."""
    rng = np.random.default_rng(seed)
    return check(student_fn, _reference_cost, _cases_cost(rng), name="cost_matrix", atol=1e-6,
                 mistakes=[("you moved view b with T; T maps view a INTO view b's frame.",
                            lambda a, b, T: pairwise_distance(a, apply_affine(b, T))),
                           ("you moved view b with T^-1: that gives distances in view a's frame, 1/s times "
                            "those of Eq. 3.", lambda a, b, T: pairwise_distance(a, apply_affine(b, np.linalg.inv(T)))),
                           ("T_ab[:3, :3] acts on column vectors; for row vectors x (N, 3) it is x @ R.T, not x @ R.",
                            lambda a, b, T: pairwise_distance(a @ T[:3, :3] + T[:3, 3], b)),
                           ("these are SQUARED distances; Eq. 3 uses the Euclidean distance.",
                            lambda a, b, T: _reference_cost(a, b, T) ** 2)],
                 hint="Which frame are l_a and l_b in, and what does T_ab do to a point of view a?")


def _cases_greedy(rng: np.random.Generator, n_cases: int = 5):
    return [(rng.uniform(0, 10, (n, 3)), rng.uniform(0, 10, (m, 3))) for n, m in rng.integers(3, 30, (n_cases, 2))]


def _compare_pairs(got, want, *args):
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "expected a tuple (rows, cols) of two int arrays"
    rows, cols = (np.asarray(x) for x in got)
    if rows.shape != want[0].shape or cols.shape != want[1].shape:
        return f"expected rows and cols of shape {want[0].shape}, got {rows.shape} and {cols.shape}"
    if len(set(cols.tolist())) != len(cols):
        return "a b point is used twice: once taken, b_j is no longer free"
    if not np.array_equal(rows, want[0]) or not np.array_equal(cols, want[1]):
        k = int(np.argmax((rows != want[0]) | (cols != want[1])))
        return f"pair {k} differs: expected ({want[0][k]}, {want[1][k]}), got ({rows[k]}, {cols[k]})"
    return None


def check_greedy_match(student_fn, seed: int = 0):
    """``student_fn(a (N, 3), b (M, 3)) -> (rows, cols)``: a in index order takes its nearest free b."""
    rng = np.random.default_rng(seed)
    return check(student_fn, greedy_match, _cases_greedy(rng), name="greedy_match", compare=_compare_pairs,
                 hint="Visit the rows in index order; each takes the nearest b that nobody has taken yet.")


def greedy_over_hungarian(a, b) -> float:
    """Greedy's total distance divided by the Hungarian one (inf when Hungarian's is 0 and greedy's is not)."""
    cost = pairwise_distance(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    g, h = cost[greedy_match(a, b)].sum(), cost[hungarian_match(a, b)].sum()
    return float(g / h) if h > 0 else (float("inf") if g > 0 else 1.0)


def _compare_trap(got, want, n):
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "expected a tuple (a, b) of two (n, 3) arrays"
    a, b = (np.asarray(x, dtype=np.float64) for x in got)
    if a.shape != (n, 3) or b.shape != (n, 3):
        return f"expected two arrays of shape ({n}, 3), got {a.shape} and {b.shape}"
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return "the coordinates must be finite"
    ratio = greedy_over_hungarian(a, b)
    if ratio < want:
        return f"greedy's total is {ratio:.2f} x Hungarian's here; at least {want:g} x was asked"
    return None


def check_greedy_trap(student_fn, factor: float = 3.0):
    """``student_fn(n) -> (a (n, 3), b (n, 3))`` on which greedy's total distance is >= ``factor`` x Hungarian's."""
    return check(student_fn, lambda n: factor, [(n,) for n in (4, 10, 32)], name="greedy_trap",
                 compare=_compare_trap,
                 hint="Greedy's first rows take their nearest b even when a later row needs it more. Arrange "
                      "that the first row steals the second row's perfect partner, the second the third's, ... "
                      "and the last row is left with something far away.")


__all__ = ["check_cost_matrix", "check_greedy_match", "check_greedy_trap", "greedy_over_hungarian"]
