"""Furthest point sampling: D-FPS (PointNet++), F-FPS and the fused "FS" mode (3DSSD).

D-FPS (Qi et al., "PointNet++", NeurIPS 2017, §3.2) picks ``npoint`` centres one at a time, each the
point furthest (in squared Euclidean distance) from the centres already picked. F-FPS (Yang et al.,
"3DSSD", CVPR 2020, §3.1) runs the same loop on the concatenation ``[xyz, features]``, so that
foreground points with distinctive features survive; "FS" runs both over the same points and
concatenates them: ``npoint`` F-FPS indices, then ``npoint`` D-FPS indices, so it returns ``2·npoint``
(mmdetection3d's ``FS_Sampler`` in ``mmdet3d/ops/furthest_point_sample/points_sampler.py`` of the
released SimIPU code; the two halves may share points). All functions return int64 indices into the
input cloud and never carry gradients.

``furthest_point_sample`` dispatches (``fps_backend``): on CUDA to the Triton kernel of
``simipu.ops.triton_ops`` (one program per cloud) when Triton imports, on the CPU (3 to 8 coordinates)
to the bucket-KD-tree "QuickFPS" of the ``fpsample`` package, elsewhere to a batch-vectorised torch loop.
The Triton kernel and the torch loop return exactly the indices of ``furthest_point_sample_naive``
(with many coordinates, F-FPS, torch's ``sum`` in the reference adds in a vector-width-dependent order
while the kernel adds in coordinate order, so there too a float32 near-tie could part them; the tests
use clouds whose sums are exact). QuickFPS computes the same float32 squared distances in another order,
so at a *near-tie* (two candidates whose running minimum distances differ by float32
round-off, about 1e-7 relative) it may pick the other one, and from there on the sequences differ; both
are valid furthest-point sequences. On clouds without near-ties (tests: random clouds of a few
thousand points) the indices are equal; on 16384-point samples of the two real KITTI frames, 16384 →
4096, they were equal in 4 of 6 draws and diverged after 1872 and 3166 picks in the other two. Exact
ties, between identical points (repeats that pad a small cloud up to ``num_points``), are broken
differently too: the plain loop and the torch loop take the smallest index, QuickFPS may not.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

try:  # the field's own fast CPU FPS; optional so the torch path still works without it
    import fpsample
except ImportError:  # pragma: no cover
    fpsample = None

_KD_HEIGHT = 6  # fpsample "kdline" tree height: 2**6 buckets, fastest for 16384 -> 4096 on our CPU


def _check(points: torch.Tensor, npoint: int, start: int) -> None:
    if points.dim() != 3:
        raise ValueError(f"points must be (B, N, D), got shape {tuple(points.shape)}")
    n = points.shape[1]
    if not 1 <= npoint <= n:
        raise ValueError(f"npoint must be in [1, N={n}], got {npoint}")
    if not 0 <= start < n:
        raise ValueError(f"start must be in [0, N={n}), got {start}")


def furthest_point_sample_naive(points: torch.Tensor, npoint: int, start: int = 0) -> torch.Tensor:
    """Plain reference FPS: a loop over the batch and over the ``npoint`` picks.

    Args:
        points: (B, N, D) float; D = 3 (xyz) for D-FPS, 3 + C for F-FPS.
        npoint: number of centres S to pick (1 <= S <= N).
        start: index of the first centre.
    Returns:
        (B, S) int64 indices, ``idx[:, 0] == start``.
    """
    _check(points, npoint, start)
    points = points.detach()
    out = torch.empty(points.shape[0], npoint, dtype=torch.long, device=points.device)
    for b, cloud in enumerate(points):
        min_d2 = torch.full(cloud.shape[:1], float("inf"), device=points.device)
        far = start
        for i in range(npoint):
            out[b, i] = far
            min_d2 = torch.minimum(min_d2, ((cloud - cloud[far]) ** 2).sum(-1))
            far = int(min_d2.argmax())
    return out


def _fps_torch(points: torch.Tensor, npoint: int, start: int) -> torch.Tensor:
    """Batch-vectorised FPS: one (B, N) tensor op per pick, on any device."""
    B, N, D = points.shape
    out = torch.empty(B, npoint, dtype=torch.long, device=points.device)
    min_d2 = torch.full((B, N), float("inf"), device=points.device, dtype=points.dtype)
    far = torch.full((B,), start, dtype=torch.long, device=points.device)
    batch = torch.arange(B, device=points.device)
    for i in range(npoint):
        out[:, i] = far
        centre = points[batch, far].unsqueeze(1)  # (B, 1, D)
        min_d2 = torch.minimum(min_d2, ((points - centre) ** 2).sum(-1))  # (B, N)
        far = min_d2.argmax(-1)
    return out


def _kd_order(cloud: np.ndarray, height: int) -> np.ndarray:
    """An order of ``cloud`` (N, D) float32 that fpsample's KD-tree build leaves in place.

    fpsample builds its tree by splitting each range at the float32 mean of its widest coordinate
    (Hoare partition, in place) and then reads ``start_idx`` in the *reordered* array. When every node's
    range is already sorted along its split coordinate, the partitions swap nothing, so ``start_idx``
    means the index we pass. We build that order here; the caller still checks the first pick.
    """
    coords = np.ascontiguousarray(cloud.T)  # (D, N), kept in the order being built: fast row slices
    order = np.arange(len(cloud))
    stack = [(0, len(cloud), 0)]
    while stack:
        left, right, depth = stack.pop()
        count = right - left
        if depth == height or count <= 1:
            continue
        part = coords[:, left:right]
        dim = int(np.argmax(part.max(1) - part.min(1)))  # first widest coordinate
        perm = np.argsort(part[dim])  # any non-decreasing order makes the partition swap nothing
        coords[:, left:right], order[left:right] = part[:, perm], order[left:right][perm]
        values = coords[dim, left:right]
        mean = np.cumsum(values, dtype=np.float32)[-1] / np.float32(count)  # sequential float32 sum
        split = min(max(int(np.searchsorted(values, mean, side="left")), 1), count - 1)
        stack += [(left, left + split, depth + 1), (left + split, right, depth + 1)]
    return order


def _fps_fpsample(points: torch.Tensor, npoint: int, start: int) -> torch.Tensor:
    """FPS per cloud with fpsample's bucket KD-tree (QuickFPS), its start checked; the same sequence as the
    plain loop except after a float32 near-tie (module docstring)."""
    out = []
    for cloud in points.detach().to(torch.float32).numpy():
        height = min(_KD_HEIGHT, int(np.log2(len(cloud))))
        order = _kd_order(cloud, height)
        ordered = np.ascontiguousarray(cloud[order])
        where = int(np.flatnonzero(order == start)[0])
        idx = fpsample.bucket_fps_kdline_sampling(ordered, npoint, h=height, start_idx=where)
        idx = order[idx.astype(np.int64)]
        if idx[0] != start:  # the tree reordered our start after all: fall back to the plain exact loop
            idx = fpsample.fps_sampling(cloud, npoint, start_idx=start).astype(np.int64)
        out.append(torch.from_numpy(idx))
    return torch.stack(out)


def furthest_point_sample(points: torch.Tensor, npoint: int, start: int = 0) -> torch.Tensor:
    """Furthest point sampling (PointNet++ §3.2), fast on the CPU and (with Triton) on CUDA.

    Args:
        points: (B, N, D) float; xyz (D = 3) for D-FPS, or ``[xyz, features]`` for F-FPS.
        npoint: number of centres S (1 <= S <= N).
        start: index of the first centre (the same for every cloud of the batch).
    Returns:
        (B, S) int64 indices into dim 1 of ``points``: a furthest-point sequence; equal to
        ``furthest_point_sample_naive`` except after a float32 near-tie on the CPU (module docstring).
    """
    _check(points, npoint, start)
    points = points.detach()
    backend = fps_backend(points)
    if backend == "triton":
        from .triton_ops import furthest_point_sample_triton
        return furthest_point_sample_triton(points, npoint, start)
    if backend == "fpsample":
        return _fps_fpsample(points, npoint, start)
    if backend == "loop":
        return furthest_point_sample_naive(points, npoint, start)
    return _fps_torch(points, npoint, start)


def fps_backend(points: torch.Tensor) -> str:
    """The path ``furthest_point_sample`` takes for ``points`` (B, N, D).

    ``"triton"`` on CUDA when Triton imports (``simipu.ops.triton_ops``: one program per cloud);
    ``"fpsample"`` on the CPU for 2 to 8 coordinates; ``"loop"`` (the plain per-cloud loop) on the CPU
    for more (F-FPS: one (N, D) cloud stays in cache, where a batched op streams through memory at
    every pick); ``"torch"`` (the batch-vectorised loop) otherwise.
    """
    _, N, D = points.shape
    if points.device.type == "cuda":
        from .triton_ops import available  # imports triton: only asked for CUDA tensors
        if available():
            return "triton"
    if points.device.type == "cpu":
        return "fpsample" if fpsample is not None and 2 <= D <= 8 and N >= 4 else "loop"
    return "torch"


def feature_furthest_point_sample(xyz: torch.Tensor, features: torch.Tensor | None, npoint: int,
                                  start: int = 0) -> torch.Tensor:
    """F-FPS (3DSSD §3.1): FPS on the squared distance over the concatenation ``[xyz, features]``.

    Args:
        xyz: (B, N, 3) point locations.
        features: (B, N, C) point features, or None (then plain D-FPS).
        npoint: number of centres S.
        start: index of the first centre.
    Returns:
        (B, S) int64 indices.
    """
    if features is None:
        return furthest_point_sample(xyz, npoint, start)
    return furthest_point_sample(torch.cat([xyz, features], dim=-1).detach(), npoint, start)


def sample_points_by_mode(xyz: torch.Tensor, features: torch.Tensor | None,
                          num_points: int | Sequence[int], fps_mods: Sequence[str] = ("D-FPS",),
                          sample_ranges: Sequence[int] = (-1,)) -> torch.Tensor:
    """Sample centres range by range with 3DSSD's modes (mmdetection3d's ``Points_Sampler``).

    The cloud is cut into consecutive index ranges of the given lengths (``-1``: the rest), e.g.
    ``sample_ranges=(512, -1)`` with ``fps_mods=("F-FPS", "D-FPS")`` and ``num_points=(512, 512)``
    takes 512 centres by F-FPS among the first 512 points and 512 by D-FPS among the others.
    Modes: ``"D-FPS"`` (xyz), ``"F-FPS"`` (xyz + features), ``"FS"`` (``npoint`` by F-FPS *and*
    ``npoint`` by D-FPS over the same range, concatenated: it contributes ``2·npoint`` indices, and
    the two halves may share points), as ``Points_Sampler`` / ``FS_Sampler`` of the released code.

    Args:
        xyz: (B, N, 3) point locations.
        features: (B, N, C) point features or None.
        num_points: an int, or one int per range.
        fps_mods: one mode per range.
        sample_ranges: one range length per range; ``-1`` means up to the end.
    Returns:
        (B, total) int64 indices into the whole cloud, ``total = sum(num_points)`` plus one more
        ``npoint`` for every "FS" range (see :func:`num_sampled`).
    """
    counts = [num_points] if isinstance(num_points, int) else list(num_points)
    if not len(counts) == len(fps_mods) == len(sample_ranges):
        raise ValueError(f"num_points {counts}, fps_mods {list(fps_mods)} and sample_ranges "
                         f"{list(sample_ranges)} must have the same length")
    N = xyz.shape[1]
    indices, first = [], 0
    for npoint, mode, length in zip(counts, fps_mods, sample_ranges):
        last = N if length == -1 else first + length
        if not first < last <= N:
            raise ValueError(f"sample range {length} starting at point {first} does not fit N={N}")
        part_xyz = xyz[:, first:last]
        part_feat = None if features is None else features[:, first:last]
        if mode == "D-FPS":
            idx = furthest_point_sample(part_xyz, npoint)
        elif mode == "F-FPS":
            idx = feature_furthest_point_sample(part_xyz, part_feat, npoint)
        elif mode == "FS":  # FS_Sampler: F-FPS and D-FPS over the same points, 2·npoint indices
            idx = torch.cat([feature_furthest_point_sample(part_xyz, part_feat, npoint),
                             furthest_point_sample(part_xyz, npoint)], dim=1)
        else:
            raise ValueError(f"unknown FPS mode {mode!r}; expected 'D-FPS', 'F-FPS' or 'FS'")
        indices.append(idx + first)
        first = last
    return torch.cat(indices, dim=1)


def num_sampled(num_points: int | Sequence[int], fps_mods: Sequence[str] = ("D-FPS",)) -> int:
    """How many centres :func:`sample_points_by_mode` returns: ``npoint`` per range, ``2·npoint`` for "FS"."""
    counts = [num_points] if isinstance(num_points, int) else list(num_points)
    return sum(n * (2 if mode == "FS" else 1) for n, mode in zip(counts, fps_mods))
