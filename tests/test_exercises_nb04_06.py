"""The checkers of notebooks 04-06 pass the reference solutions and name the mistakes of wrong ones."""
import numpy as np
import torch
import torch.nn.functional as F

from exercise_helpers import fails
from simipu.exercises import nb04, nb05, nb06


def _cost(l_a, l_b, T):
    a = l_a @ T[:3, :3].T + T[:3, 3]
    return np.linalg.norm(a[:, None] - l_b[None], axis=-1)


def test_cost_matrix_checker_wants_view_a_moved_into_view_b():
    assert nb04.check_cost_matrix(_cost)
    fails(nb04.check_cost_matrix, lambda a, b, T: _cost(a, b, T) ** 2, "SQUARED")
    fails(nb04.check_cost_matrix, lambda a, b, T: _cost(a, b, T).T, "shape")


def _greedy(a, b):
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    rows, cols = [], []
    for i in range(min(cost.shape)):
        j = int(np.argmin(cost[i]))
        rows.append(i)
        cols.append(j)
        cost[:, j] = np.inf
    return np.array(rows), np.array(cols)


def test_greedy_checker_rejects_nearest_neighbour_with_reuse():
    assert nb04.check_greedy_match(_greedy)

    def reuse(a, b):
        cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
        n = min(cost.shape)
        return np.arange(n), cost[:n].argmin(1)
    fails(nb04.check_greedy_match, reuse, "used twice")


def _trap(n):
    a = np.zeros((n, 3))
    b = np.zeros((n, 3))
    a[:, 0] = np.arange(n)
    b[:-1, 0] = np.arange(1, n)          # row i's nearest free b is row i+1's exact partner
    b[-1, 0] = -1.01                     # ... and the last row gets the far leftover
    return a, b


def test_greedy_trap_checker_accepts_a_chain_of_stolen_partners_and_rejects_a_copy():
    assert nb04.greedy_over_hungarian(*_trap(10)) > 3
    assert nb04.check_greedy_trap(_trap)
    fails(nb04.check_greedy_trap, lambda n: (np.eye(n, 3), np.eye(n, 3)), "1.00 x Hungarian")


def _detector(project_fn):
    """A property test: a flip sends u to W - u, a resize scales u, points behind the camera stay behind."""
    from simipu.views import flip_image
    rng = np.random.default_rng(0)
    lidar2img = np.array([[600.0, -700, 0, 0], [200, 0, -700, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    xyz = np.c_[rng.uniform(5, 50, 50), rng.uniform(-10, 10, 50), rng.uniform(-2, 1, 50)]
    xyz[:5, 0] *= -1                                                      # behind the camera
    uv0, d0 = project_fn(xyz, lidar2img, np.eye(4))
    hom = np.c_[xyz, np.ones(len(xyz))] @ lidar2img.T
    if not (np.allclose(d0, hom[:, 2]) and np.allclose(uv0[d0 > 0], hom[d0 > 0, :2] / hom[d0 > 0, 2:3])):
        return False
    W = 1242
    uv1, _ = project_fn(xyz, lidar2img, flip_image(np.zeros((2, W, 3), np.uint8))[1])
    resize = np.diag([0.5, 0.25, 1.0, 1.0])
    uv2, _ = project_fn(xyz, lidar2img, resize)
    front = d0 > 0
    return bool(np.allclose(uv1[front, 0], W - uv0[front, 0]) and np.allclose(uv2[front], uv0[front] * [0.5, 0.25]))


def test_projection_test_checker_needs_a_test_that_catches_every_planted_bug():
    assert nb05.check_projection_test(_detector)
    fails(nb05.check_projection_test, lambda fn: True, "planted bug")
    fails(nb05.check_projection_test, lambda fn: False, "CORRECT")


def test_wrong_match_share_checker_wants_floor_not_round():
    def share(img, uv, ids, rnd=np.floor):
        col = np.clip(rnd(uv[:, 0]).astype(int), 0, img.shape[1] - 1)
        row = np.clip(rnd(uv[:, 1]).astype(int), 0, img.shape[0] - 1)
        return float(np.mean(img[row, col] != ids))
    assert nb05.check_wrong_match_share(share)
    fails(nb05.check_wrong_match_share, lambda *a: share(*a, rnd=np.round), "floor(u)")


def _grad(q, k, tau):
    S = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T
    return (torch.softmax(S / tau, 1) - torch.eye(len(q))) / (tau * len(q))


def test_similarity_grad_checker_passes_softmax_minus_identity_over_p_tau():
    assert nb06.check_similarity_grad(_grad)


def test_similarity_grad_checker_names_the_missing_temperature_and_mean():
    fails(nb06.check_similarity_grad, lambda q, k, t: _grad(q, k, t) * t, "1/τ")
    fails(nb06.check_similarity_grad, lambda q, k, t: _grad(q, k, t) * len(q), "MEAN")
    fails(nb06.check_similarity_grad, lambda q, k, t: -_grad(q, k, t), "sign")


def test_top1_checker_counts_the_diagonal_of_cosine_similarities():
    def top1(q, k, t, normalise=True):
        a, b = (F.normalize(q, dim=1), F.normalize(k, dim=1)) if normalise else (q, k)
        return float(((a @ b.T).argmax(1) == torch.arange(len(q))).float().mean())
    assert nb06.check_top1(top1)
    fails(nb06.check_top1, lambda q, k, t: top1(q, k, t, normalise=False), "COSINE")
