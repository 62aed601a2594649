"""Ball query and grouping: the local regions of a set abstraction layer (PointNet++, Qi et al. 2017, §3.2).

``ball_query`` returns, for every centre, the first ``nsample`` points (in index order) that lie within
``radius`` of it, padded by repeating the first one found; a centre with no neighbour gets index 0
(as the CUDA op of mmcv / PointNet++). Distances are compared as ``d² <= r² (1 + 1e-6)``, so a centre
that is a point of the cloud is always its own neighbour.

On the CPU the candidates come from ``scipy.spatial.cKDTree`` (a slightly larger radius), then the exact
float32 test above keeps the same set the brute-force reference keeps. Elsewhere a chunked torch path
masks distances and takes the ``nsample`` smallest indices with ``topk``. Memory is
O(B·S·nsample + chunk) instead of the O(B·S·N) of ``ball_query_naive``.
"""
from __future__ import annotations

import numpy as np
import torch

try:
    from scipy.spatial import cKDTree
except ImportError:  # pragma: no cover
    cKDTree = None

_REL_TOL = 1e-6           # relative slack on r² so that round-off never drops a boundary point
_CHUNK_ELEMENTS = 1 << 24  # torch path: at most this many (centre, point) pairs in memory at once


def _check(xyz: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int) -> None:
    if xyz.dim() != 3 or xyz.shape[-1] != 3 or centers.dim() != 3 or centers.shape[-1] != 3:
        raise ValueError(f"xyz and centers must be (B, N, 3) and (B, S, 3), got "
                         f"{tuple(xyz.shape)} and {tuple(centers.shape)}")
    if xyz.shape[0] != centers.shape[0]:
        raise ValueError(f"batch sizes differ: xyz {xyz.shape[0]}, centers {centers.shape[0]}")
    if radius <= 0 or nsample < 1:
        raise ValueError(f"radius must be > 0 and nsample >= 1, got {radius}, {nsample}")


def _square_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance with one fixed summation order, shared by every path: (..., 3) -> (...)."""
    d = a - b
    return d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]


def _pad_with_first(idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace invalid slots of (..., K) ``idx`` by the first valid index of the row (0 if none)."""
    first = torch.where(valid[..., :1], idx[..., :1], torch.zeros_like(idx[..., :1]))
    return torch.where(valid, idx, first)


def ball_query_naive(xyz: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int) -> torch.Tensor:
    """Reference ball query: mark all N points of every centre, sort, keep the first ``nsample``.

    Args:
        xyz: (B, N, 3) points.
        centers: (B, S, 3) ball centres.
        radius: ball radius r.
        nsample: K, neighbours kept per centre.
    Returns:
        (B, S, K) int64 indices into ``xyz``.
    """
    _check(xyz, centers, radius, nsample)
    N = xyz.shape[1]
    out = []
    for points, ctr in zip(xyz.detach(), centers.detach()):  # one cloud at a time: (S, N) memory
        d2 = _square_distance(ctr[:, None, :], points[None, :, :])  # (S, N)
        idx = torch.arange(N, device=xyz.device).expand_as(d2).clone()
        idx[d2 > radius * radius * (1 + _REL_TOL)] = N
        idx = idx.sort(dim=-1).values[:, :nsample]  # (S, K) in index order, N = empty
        if idx.shape[1] < nsample:
            idx = torch.cat([idx, idx.new_full((idx.shape[0], nsample - idx.shape[1]), N)], dim=1)
        out.append(_pad_with_first(idx, idx < N))
    return torch.stack(out)


def _ball_query_torch(xyz, centers, radius, nsample):
    """Chunked over centres: mask (B, s, N), then the K smallest in-ball indices via ``topk``."""
    B, N, _ = xyz.shape
    S = centers.shape[1]
    K = min(nsample, N)
    arange = torch.arange(N, device=xyz.device)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, B * N))
    parts = []
    for s0 in range(0, S, chunk):
        d2 = _square_distance(centers[:, s0:s0 + chunk, None, :], xyz[:, None, :, :])  # (B, s, N)
        key = torch.where(d2 <= radius * radius * (1 + _REL_TOL), arange, N)
        parts.append(key.topk(K, dim=-1, largest=False, sorted=True).values)  # (B, s, K)
    idx = torch.cat(parts, dim=1)
    if K < nsample:
        idx = torch.cat([idx, idx.new_full((B, S, nsample - K), N)], dim=-1)
    return _pad_with_first(idx, idx < N)


def _ball_query_kdtree(xyz, centers, radius, nsample):
    """CPU: cKDTree candidates per cloud, exact float32 filter, first K per centre in index order."""
    B, N, _ = xyz.shape
    S = centers.shape[1]
    r2 = radius * radius * (1 + _REL_TOL)
    out = torch.full((B, S, nsample), N, dtype=torch.long)
    for b in range(B):
        points, ctr = xyz[b].numpy(), centers[b].numpy()
        cand = cKDTree(points).query_ball_point(ctr, radius * (1 + 1e-4) + 1e-6,
                                                workers=torch.get_num_threads(),
                                                return_sorted=True)
        lens = np.fromiter((len(c) for c in cand), dtype=np.int64, count=S)
        if lens.sum() == 0:
            continue
        col = torch.from_numpy(np.concatenate([c for c in cand if c]).astype(np.int64))  # sorted per row
        row = torch.from_numpy(np.repeat(np.arange(S), lens))
        keep = _square_distance(centers[b][row], xyz[b][col]) <= r2
        row, col = row[keep], col[keep]
        # rank of each kept candidate within its row (rows are contiguous, columns ascending)
        counts = torch.bincount(row, minlength=S)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(row)) - starts[row]
        take = rank < nsample
        out[b, row[take], rank[take]] = col[take]
    return _pad_with_first(out, out < N)


def ball_query(xyz: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int) -> torch.Tensor:
    """First ``nsample`` points within ``radius`` of each centre, in index order (PointNet++ §3.2).

    Args:
        xyz: (B, N, 3) points.
        centers: (B, S, 3) ball centres (usually points of ``xyz`` picked by FPS).
        radius: ball radius r (same units as xyz, metres for LiDAR).
        nsample: K, neighbours kept per centre; missing slots repeat the first neighbour.
    Returns:
        (B, S, K) int64 indices into ``xyz``; equal to ``ball_query_naive``.
    """
    _check(xyz, centers, radius, nsample)
    xyz, centers = xyz.detach(), centers.detach()
    if xyz.device.type == "cpu" and cKDTree is not None:
        return _ball_query_kdtree(xyz.float(), centers.float(), radius, nsample)
    return _ball_query_torch(xyz, centers, radius, nsample)


def group_points(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather per-point rows into local groups (differentiable w.r.t. ``features``).

    Args:
        features: (B, N, C) per-point values (xyz or features).
        idx: (B, S, K) int64 indices into dim 1 of ``features``.
    Returns:
        (B, S, K, C) grouped values.
    """
    B, S, K = idx.shape
    C = features.shape[-1]
    flat = idx.reshape(B, S * K, 1).expand(-1, -1, C)
    return features.gather(1, flat).reshape(B, S, K, C)  # (B, S, K, C)
