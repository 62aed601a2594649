"""The checkers of notebooks 04-06 pass the reference solutions and fail plausible wrong answers."""
import numpy as np
import torch
import torch.nn.functional as F

from simipu.exercises.nb04 import check_cost_matrix, check_greedy_match
from simipu.exercises.nb05 import check_feature_coords, check_wrong_match_share
from simipu.exercises.nb06 import check_info_nce, check_top1


def _cost(l_a, l_b, T):
    a = l_a @ T[:3, :3].T + T[:3, 3]
    return np.linalg.norm(a[:, None] - l_b[None], axis=-1)


def test_cost_matrix_checker_wants_view_a_moved_into_view_b():
    assert check_cost_matrix(_cost)
    assert not check_cost_matrix(lambda l_a, l_b, T: np.linalg.norm(l_a[:, None] - l_b[None], axis=-1))
    assert not check_cost_matrix(lambda l_a, l_b, T: _cost(l_a, l_b, T) ** 2)  # squared distances


def _greedy(a, b, order=None):
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    rows, cols = [], []
    for i in range(min(cost.shape)):
        j = int(np.argmin(cost[i]))
        rows.append(i)
        cols.append(j)
        cost[:, j] = np.inf
    return np.array(rows), np.array(cols)


def test_greedy_checker_rejects_nearest_neighbour_with_reuse():
    assert check_greedy_match(_greedy)

    def nearest_with_reuse(a, b):  # every a takes its nearest b, even one already taken
        cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
        n = min(cost.shape)
        return np.arange(n), cost[:n].argmin(1)
    assert not check_greedy_match(nearest_with_reuse)


def test_feature_coords_checker_wants_the_cell_centre_convention():
    assert check_feature_coords(lambda uv, s: uv / s - 0.5)
    assert not check_feature_coords(lambda uv, s: uv / s)  # forgets that cell centres sit at (j + 0.5)·s


def test_wrong_match_share_checker_wants_floor_not_round():
    def share(img, uv, ids, rnd=np.floor):
        col = np.clip(rnd(uv[:, 0]).astype(int), 0, img.shape[1] - 1)
        row = np.clip(rnd(uv[:, 1]).astype(int), 0, img.shape[0] - 1)
        return float((img[row, col] != ids).mean())
    assert check_wrong_match_share(share)
    assert not check_wrong_match_share(lambda img, uv, ids: share(img, uv, ids, np.round))


def _info_nce(q, k, t):
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / t
    return F.cross_entropy(logits, torch.arange(len(q)))


def test_info_nce_checker_needs_normalisation_and_temperature():
    assert check_info_nce(_info_nce)
    assert not check_info_nce(lambda q, k, t: F.cross_entropy(q @ k.T / t, torch.arange(len(q))))
    assert not check_info_nce(lambda q, k, t: _info_nce(q, k, 1.0))


def test_top1_checker_counts_the_diagonal_of_cosine_similarities():
    def top1(q, k, t, norm=True):
        if norm:
            q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        return float(((q @ k.T).argmax(1) == torch.arange(len(q))).float().mean())
    assert check_top1(top1)
    assert not check_top1(lambda q, k, t: top1(q, k, t, norm=False))  # raw dot products
