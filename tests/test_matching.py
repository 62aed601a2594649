import itertools

import numpy as np
import pytest
import torch

from simipu.matching import (apply_affine, greedy_match, hungarian_match, match_stats,
                             match_views, pairwise_distance)


def total_cost(a, b, rows, cols):
    return float(np.linalg.norm(np.asarray(a)[rows] - np.asarray(b)[cols], axis=1).sum())


def random_view_transform(rng):
    """A 4×4 affine like the views of simipu.views: rotation about z, scale, translation, flip."""
    theta = rng.uniform(-np.pi / 2, np.pi / 2)
    c, s = np.cos(theta), np.sin(theta)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    F = np.diag([1.0, -1.0 if rng.random() < 0.5 else 1.0, 1.0])
    T = np.eye(4)
    T[:3, :3] = rng.uniform(0.75, 1.25) * R @ F
    T[:3, 3] = rng.normal(0, 2.0, 3)
    return T


@pytest.mark.parametrize("seed", range(10))
def test_hungarian_cost_never_exceeds_greedy(seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 10, (40, 3))
    b = rng.uniform(0, 10, (rng.integers(30, 50), 3))  # N ≠ M too
    h, g = hungarian_match(a, b), greedy_match(a, b)
    assert len(h[0]) == len(g[0]) == min(len(a), len(b))
    assert total_cost(a, b, *h) <= total_cost(a, b, *g) + 1e-9


@pytest.mark.parametrize("n", [1, 3, 5, 7, 8])
def test_hungarian_equals_brute_force_on_small_sets(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    cost = pairwise_distance(a, b)
    best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
    rows, cols = hungarian_match(a, b)
    assert total_cost(a, b, rows, cols) == pytest.approx(best, abs=1e-9)


def test_hungarian_can_be_strictly_better_than_greedy():
    # a0 grabs b0 greedily (0.9 < 1.0) and leaves a1 the far b1.
    a = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    b = np.array([[0.9, 0, 0], [-1.0, 0, 0]])
    assert total_cost(a, b, *hungarian_match(a, b)) < total_cost(a, b, *greedy_match(a, b))


def test_greedy_takes_nearest_free_b_for_each_a_in_order():
    a = np.array([[0.0, 0, 0], [0.1, 0, 0], [5.0, 0, 0]])
    b = np.array([[0.05, 0, 0], [4.0, 0, 0], [0.3, 0, 0]])
    rows, cols = greedy_match(a, b)
    assert rows.tolist() == [0, 1, 2]
    assert cols.tolist() == [0, 2, 1]  # a1's nearest (b0) is taken, so it takes b2


def test_outputs_are_int64_numpy_and_pairs_are_one_to_one():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 3)), rng.normal(size=(9, 3))
    for match in (hungarian_match, greedy_match):
        rows, cols = match(a, b)
        assert isinstance(rows, np.ndarray) and rows.dtype == np.int64 and cols.dtype == np.int64
        assert len(rows) == 9 and len(set(rows)) == 9 and len(set(cols)) == 9


def test_torch_and_numpy_inputs_give_the_same_matching():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    for match in (hungarian_match, greedy_match):
        r_np, c_np = match(a, b)
        r_t, c_t = match(torch.from_numpy(a).float(), torch.from_numpy(b).float())
        assert np.array_equal(r_np, r_t) and np.array_equal(c_np, c_t)


@pytest.mark.parametrize("method", ["hungarian", "greedy"])
def test_matching_recovers_identity_for_a_transformed_permuted_copy(method):
    rng = np.random.default_rng(7)
    B, N = 3, 200
    l_a = rng.uniform([0, -40, -3], [70, 40, 1], (B, N, 3))
    T_ab = np.stack([random_view_transform(rng) for _ in range(B)])
    perms = [rng.permutation(N) for _ in range(B)]
    l_b = np.stack([apply_affine(l_a[i], T_ab[i])[perms[i]] for i in range(B)])
    matches = match_views(torch.from_numpy(l_a), torch.from_numpy(l_b), torch.from_numpy(T_ab),
                          method=method)
    for (rows, cols), perm in zip(matches, perms):
        assert np.array_equal(perm[cols], rows)  # b[cols[k]] is a[perm[cols[k]]] = a[rows[k]]
    stats = match_stats(l_a, l_b, T_ab, matches)
    assert stats["match_dist"] < 1e-6
    assert stats["match_lt_0.1"] == 1.0 and stats["match_lt_0.5"] == 1.0


def test_match_stats_measures_distances_in_view_b_frame():
    l_a = np.zeros((1, 4, 3))
    T = np.eye(4)[None].copy()
    T[0, :3, :3] *= 2.0  # a scale must not change the distances below: l_a is the origin
    l_b = np.array([[[0.05, 0, 0], [0, 0.3, 0], [0, 0, 1.0], [0, 0, -0.05]]])
    matches = [(np.arange(4), np.arange(4))]
    stats = match_stats(l_a, l_b, T, matches)
    assert stats["match_dist"] == pytest.approx((0.05 + 0.3 + 1.0 + 0.05) / 4)
    assert stats["match_lt_0.1"] == pytest.approx(0.5)
    assert stats["match_lt_0.5"] == pytest.approx(0.75)


def test_match_stats_without_pairs_are_zero_not_nan():
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    stats = match_stats(np.zeros((1, 0, 3)), np.zeros((1, 0, 3)), np.eye(4)[None], [empty])
    assert all(v == 0.0 for v in stats.values())


@pytest.mark.parametrize("a_shape, b_shape", [((5, 2), (5, 3)), ((5,), (5, 3)),
                                              ((5, 3), (2, 5, 3)), ((5, 3), (5, 4))])
def test_bad_point_shapes_raise_value_error(a_shape, b_shape):
    for match in (hungarian_match, greedy_match):
        with pytest.raises(ValueError, match=r"\(N, 3\)"):
            match(np.zeros(a_shape), np.zeros(b_shape))


def test_match_views_rejects_bad_shapes_and_methods():
    l = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match="T_ab"):
        match_views(l, l, np.eye(4))  # unbatched T
    with pytest.raises(ValueError, match="l_a"):
        match_views(l[0], l, np.stack([np.eye(4)] * 2))
    with pytest.raises(ValueError, match="batch sizes"):
        match_views(l, l[:1], np.stack([np.eye(4)] * 2))
    with pytest.raises(ValueError, match="hungarian"):
        match_views(l, l, np.stack([np.eye(4)] * 2), method="nearest")
