"""Triton kernels for furthest point sampling and ball query: the GPU paths of ``simipu.ops``.

On CUDA the vectorised torch FPS launches about seven small kernels per picked centre (the ``kitti``
encoder picks about 7 000 per view), so the GPU mostly waits for launches. Here one Triton program
runs a whole cloud's FPS loop, as the CUDA op of mmcv / PointNet++ does (one block per cloud), keeping
the running minimum squared distance on chip: in registers when the cloud fits one block (up to
``FPS_ON_CHIP`` = 16384 points), otherwise block by block with the running minimum in global memory.
Ball query runs one program per (cloud, block of centres), scanning the points in index order.

Both kernels compute squared distances in float32 with one fixed summation order,
``d0*d0 + d1*d1 + ...`` over the coordinates in order, with no fused multiply-add
(``enable_fp_fusion=False``), and break argmax ties towards the smallest index, so they return
index for index what ``furthest_point_sample_naive`` and ``ball_query_naive`` return.

Triton compiles the kernels for CUDA tensors. With ``TRITON_INTERPRET=1`` in the environment *before*
Triton is first imported, they run in Triton's interpreter instead (numpy, on CPU tensors; slow: for
tests, not for training); ``INTERPRET`` records which mode this process got. ``available()`` says
whether Triton imports (it ships with the Linux CUDA build of torch).
"""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - the CPU-only build of torch on macOS / Windows
    triton = tl = None

# read when triton.language was imported: its own helpers (tl.zeros, tl.argmax, ...) are interpreted
# or compiled for the whole process, so the mode cannot change per call
INTERPRET = triton is not None and triton.knobs.runtime.interpret

FPS_ON_CHIP = 16384   # clouds up to this many points keep their running minimum in registers
FPS_BLOCK = 4096      # points per block for larger clouds
BQ_BLOCK_S = 32       # ball query: centres per program
BQ_BLOCK_N = 512      # ball query: points per step of the scan


def available() -> bool:
    """True when Triton imports (then CUDA tensors take the Triton kernels)."""
    return triton is not None


if triton is not None:

    @triton.jit
    def _squared_distances(cloud, far, idx, valid, N, D, BLOCK: tl.constexpr):
        """(BLOCK,) float32 squared distances from points ``idx`` of a (D, N) cloud to its point ``far``,
        summed in coordinate order: d0*d0 + d1*d1 + ..."""
        d2 = tl.zeros([BLOCK], dtype=tl.float32)
        for d in range(D):
            diff = tl.load(cloud + d * N + idx, mask=valid, other=0.0) - tl.load(cloud + d * N + far)
            d2 = d2 + diff * diff
        return d2

    @triton.jit(do_not_specialize=["npoint", "start"])
    def _fps_kernel(points_ptr, out_ptr, dist_ptr, N, D, npoint, start,
                    BLOCK: tl.constexpr, ONE_BLOCK: tl.constexpr):
        """One program per cloud. points (B, D, N) float32, out (B, npoint) int64, dist (B, N) scratch."""
        b = tl.program_id(0).to(tl.int64)
        cloud = points_ptr + b * D * N
        offs = tl.arange(0, BLOCK)
        far = start
        tl.store(out_ptr + b * npoint, far.to(tl.int64))
        if ONE_BLOCK:  # the whole cloud's running minimum lives in registers
            valid = offs < N
            min_d2 = tl.where(valid, float("inf"), -1.0)  # padding lanes stay below any distance
            for i in range(1, npoint):
                d2 = _squared_distances(cloud, far, offs, valid, N, D, BLOCK)
                min_d2 = tl.minimum(min_d2, tl.where(valid, d2, -1.0))
                far = tl.argmax(min_d2, axis=0, tie_break_left=True)  # first maximum, as torch.argmax
                tl.store(out_ptr + b * npoint + i, far.to(tl.int64))
        else:  # blocks of BLOCK points; the running minimum goes through dist_ptr (initialised to inf)
            dist = dist_ptr + b * N
            for i in range(1, npoint):
                best = -2.0
                best_idx = 0
                for n0 in range(0, N, BLOCK):
                    idx = n0 + offs
                    valid = idx < N
                    d2 = _squared_distances(cloud, far, idx, valid, N, D, BLOCK)
                    min_d2 = tl.minimum(tl.load(dist + idx, mask=valid, other=-1.0), tl.where(valid, d2, -1.0))
                    tl.store(dist + idx, min_d2, mask=valid)
                    block_best = tl.max(min_d2, axis=0)
                    block_idx = tl.argmax(min_d2, axis=0, tie_break_left=True) + n0
                    take = block_best > best  # strict: an earlier block keeps a tie
                    best_idx = tl.where(take, block_idx, best_idx)
                    best = tl.where(take, block_best, best)
                far = best_idx
                tl.store(out_ptr + b * npoint + i, far.to(tl.int64))

    @triton.jit
    def _ball_query_kernel(xyz_ptr, centers_ptr, out_ptr, N, S, K, r2_min, r2_max,
                           BLOCK_S: tl.constexpr, BLOCK_N: tl.constexpr):
        """Program (b, block of centres). xyz (B, 3, N), centers (B, S, 3) float32; out (B, S, K) int64
        pre-filled with N (= empty slot). Kept: d2 == 0 or r2_min <= d2 < r2_max, first K in index order."""
        b = tl.program_id(0).to(tl.int64)
        s = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
        s_valid = s < S
        row = centers_ptr + (b * S + s) * 3
        cx = tl.load(row, mask=s_valid, other=0.0)
        cy = tl.load(row + 1, mask=s_valid, other=0.0)
        cz = tl.load(row + 2, mask=s_valid, other=0.0)
        out_row = out_ptr + (b * S + s) * K
        cloud = xyz_ptr + b * 3 * N
        count = tl.where(s_valid, 0, K)  # padding centres count as full
        n0 = 0
        while (n0 < N) & (tl.min(count, axis=0) < K):  # stop once every centre has K neighbours
            n = n0 + tl.arange(0, BLOCK_N)
            n_valid = n < N
            dx = cx[:, None] - tl.load(cloud + n, mask=n_valid, other=0.0)[None, :]
            dy = cy[:, None] - tl.load(cloud + N + n, mask=n_valid, other=0.0)[None, :]
            dz = cz[:, None] - tl.load(cloud + 2 * N + n, mask=n_valid, other=0.0)[None, :]
            d2 = dx * dx + dy * dy + dz * dz  # (BLOCK_S, BLOCK_N)
            keep = ((d2 == 0) | ((d2 >= r2_min) & (d2 < r2_max))) & n_valid[None, :] & s_valid[:, None]
            keep_i = keep.to(tl.int32)
            rank = count[:, None] + tl.cumsum(keep_i, axis=1) - 1  # slot of each kept point
            n_2d = n[None, :] + tl.zeros([BLOCK_S, BLOCK_N], dtype=tl.int32)
            tl.store(out_row[:, None] + rank, n_2d.to(tl.int64), mask=keep & (rank < K))
            count += tl.sum(keep_i, axis=1)
            n0 += BLOCK_N


def _launch_options(device: torch.device, num_warps: int) -> dict:
    if triton is None:
        raise RuntimeError("Triton is not installed: simipu.ops.triton_ops needs it "
                           "(it ships with the Linux CUDA build of torch)")
    if device.type != "cuda" and not INTERPRET:
        raise ValueError(f"Triton kernels run on CUDA tensors, got a tensor on {device} (CPU tensors run in "
                         f"Triton's interpreter: set TRITON_INTERPRET=1 before Python imports triton)")
    # no fused multiply-add: every product and sum is rounded to float32 as in the references
    return dict(num_warps=num_warps, enable_fp_fusion=False)


def furthest_point_sample_triton(points: torch.Tensor, npoint: int, start: int = 0,
                                 on_chip: int = FPS_ON_CHIP, block: int = FPS_BLOCK) -> torch.Tensor:
    """Furthest point sampling (PointNet++ §3.2), one Triton program per cloud.

    Args:
        points: (B, N, D) float, CUDA (or CPU under ``TRITON_INTERPRET=1``); D = 3 for D-FPS, 3 + C for
            F-FPS over ``[xyz, features]``. Distances are computed in float32.
        npoint: number of centres S (1 <= S <= N); checked by the caller (``furthest_point_sample``).
        start: index of the first centre.
        on_chip: largest N whose running minimum is kept in registers (a power of two).
        block: points per block above that.
    Returns:
        (B, S) int64 indices; equal to ``furthest_point_sample_naive(points.float(), S, start)``.
    """
    B, N, D = points.shape
    one_block = N <= on_chip
    BLOCK = triton.next_power_of_2(N) if one_block else block
    options = _launch_options(points.device, num_warps=max(4, min(16, BLOCK // 1024)))
    coords = points.detach().float().transpose(1, 2).contiguous()  # (B, D, N): coalesced loads per coordinate
    out = torch.empty(B, npoint, dtype=torch.long, device=points.device)
    dist = coords.new_full((B, N) if not one_block else (1,), float("inf"))
    _fps_kernel[(B,)](coords, out, dist, N, D, npoint, start, BLOCK=BLOCK, ONE_BLOCK=one_block, **options)
    return out


def ball_query_triton(xyz: torch.Tensor, centers: torch.Tensor, nsample: int,
                      r2_min: float, r2_max: float) -> torch.Tensor:
    """Ball query with the release kernel's rule, in Triton; returns empty slots as N.

    Args:
        xyz: (B, N, 3) points, CUDA (or CPU under ``TRITON_INTERPRET=1``).
        centers: (B, S, 3) ball centres on the same device.
        nsample: K, neighbours kept per centre.
        r2_min, r2_max: float32 squared radii (``simipu.ops.grouping._squared_radii``); a point is kept
            when ``d2 == 0 or r2_min <= d2 < r2_max``, ``d2 = dx*dx + dy*dy + dz*dz`` of ``centre - point``.
    Returns:
        (B, S, K) int64: the first K kept indices of each centre in index order, N in unfilled slots
        (the caller pads them with the first neighbour, as ``ball_query_naive``).
    """
    B, N, _ = xyz.shape
    S = centers.shape[1]
    options = _launch_options(xyz.device, num_warps=4)
    coords = xyz.detach().float().transpose(1, 2).contiguous()  # (B, 3, N)
    ctr = centers.detach().float().contiguous()
    out = torch.full((B, S, nsample), N, dtype=torch.long, device=xyz.device)
    grid = (B, triton.cdiv(S, BQ_BLOCK_S))
    _ball_query_kernel[grid](coords, ctr, out, N, S, nsample, r2_min, r2_max, BLOCK_S=BQ_BLOCK_S, BLOCK_N=BQ_BLOCK_N,
               **options)
    return out
