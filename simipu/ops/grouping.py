"""Ball query and grouping: the local regions of a set abstraction layer (PointNet++, Qi et al. 2017, §3.2).

``ball_query`` returns, for every centre, the first ``nsample`` points (in index order) that it keeps,
padded by repeating the first one found; a centre with no neighbour gets index 0. A point at squared
distance ``d²`` (float32, ``dx·dx + dy·dy + dz·dz`` in that order) is kept when

    d² == 0  or  min_radius² <= d² < radius²

exactly the test of the ball-query CUDA kernel of the released code
(``mmdet3d/ops/ball_query/src/ball_query_cuda.cu`` in zhyever/SimIPU). ``min_radius > 0`` gives the
*dilated* groups of 3DSSD / ``PointNet2SAMSG`` (``dilated_group=True``): scale i > 0 of a layer keeps
the shell ``radii[i-1] <= d < radii[i]``, plus the centre itself (d² = 0).

On the CPU the candidates come from ``scipy.spatial.cKDTree`` (a slightly larger radius), then the exact
float32 test above keeps the same set the brute-force reference keeps. On CUDA a Triton kernel
(``simipu.ops.triton_ops``) scans the points in index order for a block of centres at a time, when Triton
imports. Elsewhere a chunked torch path masks distances and takes the ``nsample`` smallest indices with
``topk``. Memory is O(B·S·nsample + chunk) instead of the O(B·S·N) of ``ball_query_naive``.
"""
from __future__ import annotations

import numpy as np
import torch

try:
    from scipy.spatial import cKDTree
except ImportError:  # pragma: no cover
    cKDTree = None

_CHUNK_ELEMENTS = 1 << 24  # torch path: at most this many (centre, point) pairs in memory at once


def _check(xyz: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int, min_radius: float) -> None:
    if xyz.dim() != 3 or xyz.shape[-1] != 3 or centers.dim() != 3 or centers.shape[-1] != 3:
        raise ValueError(f"xyz and centers must be (B, N, 3) and (B, S, 3), got "
                         f"{tuple(xyz.shape)} and {tuple(centers.shape)}")
    if xyz.shape[0] != centers.shape[0]:
        raise ValueError(f"batch sizes differ: xyz {xyz.shape[0]}, centers {centers.shape[0]}")
    if not (radius > 0 and nsample >= 1 and 0 <= min_radius < radius):
        raise ValueError(f"need radius > 0, 0 <= min_radius < radius and nsample >= 1, got radius {radius}, "
                         f"min_radius {min_radius}, nsample {nsample}")


def _squared_radii(radius: float, min_radius: float) -> tuple[float, float]:
    """(min_radius², radius²) as the CUDA kernel forms them: float32 products of float32 radii."""
    r, r0 = np.float32(radius), np.float32(min_radius)
    return float(r0 * r0), float(r * r)


def _keep(d2: torch.Tensor, r2_min: float, r2_max: float) -> torch.Tensor:
    """The kernel's membership test on float32 squared distances: the centre, or inside the shell."""
    return (d2 == 0) | ((d2 >= r2_min) & (d2 < r2_max))


def _square_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance with one fixed summation order, shared by every path: (..., 3) -> (...)."""
    d = a - b
    return d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]


def _pad_with_first(idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace invalid slots of (..., K) ``idx`` by the first valid index of the row (0 if none)."""
    first = torch.where(valid[..., :1], idx[..., :1], torch.zeros_like(idx[..., :1]))
    return torch.where(valid, idx, first)


def ball_query_naive(xyz: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int,
                     min_radius: float = 0.0) -> torch.Tensor:
    """Reference ball query: mark all N points of every centre, sort, keep the first ``nsample``.

    Args:
        xyz: (B, N, 3) points.
        centers: (B, S, 3) ball centres.
        radius: outer radius r (exclusive).
        nsample: K, neighbours kept per centre.
        min_radius: inner radius r0 (inclusive); the centre itself (d² = 0) is always kept.
    Returns:
        (B, S, K) int64 indices into ``xyz``.
    """
    _check(xyz, centers, radius, nsample, min_radius)
    r2_min, r2_max = _squared_radii(radius, min_radius)
    xyz, centers = xyz.detach().float(), centers.detach().float()
    N = xyz.shape[1]
    out = []
    for points, ctr in zip(xyz, centers):  # one cloud at a time: (S, N) memory
        d2 = _square_distance(ctr[:, None, :], points[None, :, :])  # (S, N)
        idx = torch.arange(N, device=xyz.device).expand_as(d2).clone()
        idx[~_keep(d2, r2_min, r2_max)] = N
        idx = idx.sort(dim=-1).values[:, :nsample]  # (S, K) in index order, N = empty
        if idx.shape[1] < nsample:
            idx = torch.cat([idx, idx.new_full((idx.shape[0], nsample - idx.shape[1]), N)], dim=1)
        out.append(_pad_with_first(idx, idx < N))
    return torch.stack(out)


def _ball_query_torch(xyz, centers, radius, nsample, min_radius=0.0):
    """Chunked over centres: mask (B, s, N), then the K smallest in-ball indices via ``topk``."""
    r2_min, r2_max = _squared_radii(radius, min_radius)
    xyz, centers = xyz.float(), centers.float()
    B, N, _ = xyz.shape
    S = centers.shape[1]
    K = min(nsample, N)
    arange = torch.arange(N, device=xyz.device)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, B * N))
    parts = []
    for s0 in range(0, S, chunk):
        d2 = _square_distance(centers[:, s0:s0 + chunk, None, :], xyz[:, None, :, :])  # (B, s, N)
        key = torch.where(_keep(d2, r2_min, r2_max), arange, N)
        parts.append(key.topk(K, dim=-1, largest=False, sorted=True).values)  # (B, s, K)
    idx = torch.cat(parts, dim=1)
    if K < nsample:
        idx = torch.cat([idx, idx.new_full((B, S, nsample - K), N)], dim=-1)
    return _pad_with_first(idx, idx < N)


def _ball_query_kdtree(xyz, centers, radius, nsample, min_radius=0.0):
    """CPU: cKDTree candidates per cloud, exact float32 filter, first K per centre in index order."""
    B, N, _ = xyz.shape
    S = centers.shape[1]
    r2_min, r2_max = _squared_radii(radius, min_radius)
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
        keep = _keep(_square_distance(centers[b][row], xyz[b][col]), r2_min, r2_max)
        row, col = row[keep], col[keep]
        # rank of each kept candidate within its row (rows are contiguous, columns ascending)
        counts = torch.bincount(row, minlength=S)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(row)) - starts[row]
        take = rank < nsample
        out[b, row[take], rank[take]] = col[take]
    return _pad_with_first(out, out < N)


def ball_query(xyz: torch.Tensor, centers: torch.Tensor, radius: float, nsample: int,
               min_radius: float = 0.0) -> torch.Tensor:
    """First ``nsample`` points of each centre's ball (or shell), in index order (PointNet++ §3.2).

    Keeps ``d² == 0 or min_radius² <= d² < radius²`` (module docstring): ``min_radius = 0`` is the
    plain ball, ``min_radius = radii[i-1]`` the dilated group of scale i (3DSSD).

    Args:
        xyz: (B, N, 3) points.
        centers: (B, S, 3) ball centres (usually points of ``xyz`` picked by FPS).
        radius: outer radius r, exclusive (same units as xyz, metres for LiDAR).
        nsample: K, neighbours kept per centre; missing slots repeat the first neighbour.
        min_radius: inner radius r0, inclusive, 0 <= r0 < r.
    Returns:
        (B, S, K) int64 indices into ``xyz``; equal to ``ball_query_naive``.
    """
    _check(xyz, centers, radius, nsample, min_radius)
    xyz, centers = xyz.detach(), centers.detach()
    backend = ball_query_backend(xyz)
    if backend == "triton":
        from .triton_ops import ball_query_triton
        idx = ball_query_triton(xyz, centers, nsample, *_squared_radii(radius, min_radius))
        return _pad_with_first(idx, idx < xyz.shape[1])
    if backend == "kdtree":
        return _ball_query_kdtree(xyz.float(), centers.float(), radius, nsample, min_radius)
    return _ball_query_torch(xyz, centers, radius, nsample, min_radius)


def ball_query_backend(xyz: torch.Tensor) -> str:
    """The path ``ball_query`` takes for points ``xyz`` (B, N, 3): ``"triton"`` on CUDA when Triton
    imports (``simipu.ops.triton_ops``), ``"kdtree"`` on the CPU, ``"torch"`` (chunked masks) otherwise."""
    if xyz.device.type == "cuda":
        from .triton_ops import available  # imports triton: only asked for CUDA tensors
        if available():
            return "triton"
    if xyz.device.type == "cpu" and cKDTree is not None:
        return "kdtree"
    return "torch"


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
