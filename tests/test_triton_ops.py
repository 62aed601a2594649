"""The Triton kernels (simipu.ops.triton_ops) return index for index what the plain references return.

Triton fixes when ``triton.language`` is first imported whether kernels are compiled or interpreted. With
CUDA the kernel tests run compiled on the GPU. Without it they run on CPU tensors in Triton's
interpreter, in a child pytest started with ``TRITON_INTERPRET=1`` (``test_interpreter_child_*``), so
the rest of the suite never runs in interpreter mode. Clouds whose float32 sums are exact (small
integers) make the comparison independent of summation order and full of exact ties.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from simipu.data import load_points
from simipu.ops import (ball_query, ball_query_naive, furthest_point_sample, furthest_point_sample_naive,
                        grouping, sample_points_by_mode, sampling)

ROOT = Path(__file__).resolve().parents[1]
HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"
ON_GPU = HAS_TRITON and torch.cuda.is_available() and not INTERPRETER
DEVICE = "cuda" if ON_GPU else "cpu"
kernel = pytest.mark.skipif(not (ON_GPU or (INTERPRETER and HAS_TRITON)),
                            reason="no CUDA: run on CPU tensors by test_interpreter_child_* in a child process")
parent_only = pytest.mark.skipif(INTERPRETER, reason="checks the compiled (not interpreted) setup")


@pytest.fixture
def triton_backend(monkeypatch):
    """Send simipu.ops' FPS and ball query to the Triton kernels (on CPU tensors: the interpreter)."""
    monkeypatch.setattr(sampling, "fps_backend", lambda points: "triton")
    monkeypatch.setattr(grouping, "ball_query_backend", lambda xyz: "triton")


def _fps_triton(points, npoint, start=0, **kw):
    from simipu.ops.triton_ops import furthest_point_sample_triton
    return furthest_point_sample_triton(points.to(DEVICE), npoint, start, **kw).cpu()


def _grid_cloud(extra_dims=0, seed=0):
    """(1, 85, 3 + extra_dims): a 5×5×3 integer grid, 10 of its points repeated, small integer features."""
    g = torch.stack(torch.meshgrid(torch.arange(5.0), torch.arange(5.0), torch.arange(3.0), indexing="ij"), -1)
    g = g.reshape(1, -1, 3)
    g = torch.cat([g, g[:, 20:30]], dim=1)
    feats = torch.from_numpy(np.random.default_rng(seed).integers(0, 4, (1, g.shape[1], extra_dims))).float()
    return torch.cat([g, feats], dim=-1)


# "blocked": tiny blocks, so the running minimum goes through global memory block by block
MODES = {"on_chip": {}, "blocked": dict(on_chip=32, block=32)}


@kernel
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("D,start", [(3, 0), (4, 37)])
def test_fps_kernel_equals_the_reference_on_random_clouds(mode, D, start):
    points = torch.randn(2, 150, D, generator=torch.Generator().manual_seed(D)) * 10
    expected = furthest_point_sample_naive(points, 24, start)
    assert torch.equal(_fps_triton(points, 24, start, **MODES[mode]), expected)


@kernel
@pytest.mark.parametrize("mode", MODES)
def test_fps_kernel_breaks_ties_towards_the_smallest_index_with_duplicate_points(mode):
    cloud = _grid_cloud()
    for start in (0, 7, 84):  # 84 is a repeat of point 29
        assert torch.equal(_fps_triton(cloud, 60, start, **MODES[mode]),
                           furthest_point_sample_naive(cloud, 60, start)), start
    same = torch.ones(1, 40, 3)  # every distance is 0: after the start, argmax takes index 0 every time
    assert _fps_triton(same, 5, 9, **MODES[mode]).tolist() == [[9, 0, 0, 0, 0]]


@kernel
@pytest.mark.parametrize("mode", MODES)
def test_fps_kernel_serves_f_fps_over_xyz_and_features(mode):
    cloud = _grid_cloud(extra_dims=16)  # D = 19
    assert torch.equal(_fps_triton(cloud, 40, 3, **MODES[mode]), furthest_point_sample_naive(cloud, 40, 3))


@kernel
def test_fs_and_ranged_sampling_through_the_triton_kernel_equal_the_plain_loop(monkeypatch, triton_backend):
    cloud = _grid_cloud(extra_dims=8).repeat(2, 1, 1)
    cloud[1] = cloud[1].flip(0)
    xyz, feats = cloud[..., :3], cloud[..., 3:]
    cases = [(16, ("FS",), (-1,)), ((12, 20), ("F-FPS", "D-FPS"), (40, -1))]
    got = [sample_points_by_mode(xyz.to(DEVICE), feats.to(DEVICE), *c).cpu() for c in cases]
    monkeypatch.setattr(sampling, "fps_backend", lambda points: "loop")  # the plain per-cloud loop
    want = [sample_points_by_mode(xyz, feats, *c) for c in cases]
    assert got[0].shape == (2, 32)  # FS: 16 by F-FPS, then 16 by D-FPS
    for g, w in zip(got, want):
        assert torch.equal(g, w)


@kernel
@pytest.mark.parametrize("radius,min_radius,nsample", [(0.5, 0.0, 8), (1.0, 0.5, 24), (0.05, 0.0, 4)])
def test_ball_query_kernel_equals_the_reference_plain_and_dilated(triton_backend, radius, min_radius, nsample):
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand(2, 700, 3, generator=g) * 4  # more points than one block of the scan
    centers = torch.cat([xyz[:, :38], torch.full((2, 2, 3), 50.0)], dim=1)  # two centres with no neighbour
    got = ball_query(xyz.to(DEVICE), centers.to(DEVICE), radius, nsample, min_radius).cpu()
    assert torch.equal(got, ball_query_naive(xyz, centers, radius, nsample, min_radius))
    assert (got[:, -2:] == 0).all()


@kernel
def test_ball_query_kernel_keeps_the_centre_the_inner_radius_and_drops_the_outer(triton_backend):
    cloud = _grid_cloud()[..., :3]  # integer grid: squared distances 0, 1, 2, 4, ... exactly
    centers = cloud[:, [0, 12, 29, 84]]
    got = ball_query(cloud.to(DEVICE), centers.to(DEVICE), 2.0, 40, min_radius=1.0).cpu()
    assert torch.equal(got, ball_query_naive(cloud, centers, 2.0, 40, min_radius=1.0))
    d2 = ((cloud[0, got[0, 1]] - centers[0, 1]) ** 2).sum(-1)
    assert set(d2.tolist()) <= {0.0, 1.0, 2.0, 3.0}  # d = 1 kept (inclusive), d = 2 dropped (strict)
    assert 4.0 not in d2.tolist() and 1.0 in d2.tolist()


@kernel
@pytest.mark.slow
def test_kernels_equal_the_references_on_a_real_16384_point_frame(kitti_real, triton_backend):
    pts = load_points(kitti_real / "training/velodyne/000134.bin")
    keep = np.random.default_rng(0).choice(len(pts), 16384, replace=False)
    cloud = torch.from_numpy(pts[keep]).unsqueeze(0)  # (1, 16384, 4): xyz, intensity
    xyz = cloud[..., :3]
    idx = furthest_point_sample(xyz.to(DEVICE), 4096).cpu()  # the kitti encoder's first layer
    assert torch.equal(idx, furthest_point_sample_naive(xyz, 4096))
    f_idx = furthest_point_sample(cloud.to(DEVICE), 1024, start=5).cpu()  # F-FPS over [xyz, intensity]
    assert torch.equal(f_idx, furthest_point_sample_naive(cloud, 1024, start=5))
    centers = xyz[:, idx[0, :1024]]
    for radius, min_radius, k in [(0.2, 0.0, 32), (0.8, 0.4, 64)]:
        got = ball_query(xyz.to(DEVICE), centers.to(DEVICE), radius, k, min_radius).cpu()
        assert torch.equal(got, ball_query_naive(xyz, centers, radius, k, min_radius))


@parent_only
def test_dispatch_picks_triton_on_cuda_fpsample_or_the_loop_on_the_cpu_and_torch_otherwise(monkeypatch):
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():  # a CUDA tensor's metadata, without a GPU
        on_cuda = torch.empty(2, 1024, 3, device="cuda")
    expected = "triton" if HAS_TRITON else "torch"
    assert sampling.fps_backend(on_cuda) == expected and grouping.ball_query_backend(on_cuda) == expected
    assert sampling.fps_backend(torch.zeros(2, 1024, 3)) == "fpsample"
    assert sampling.fps_backend(torch.zeros(2, 1024, 3 + 128)) == "loop"
    assert grouping.ball_query_backend(torch.zeros(2, 1024, 3)) == "kdtree"
    assert sampling.fps_backend(torch.empty(2, 1024, 3, device="meta")) == "torch"
    if HAS_TRITON:
        from simipu.ops import triton_ops
        monkeypatch.setattr(triton_ops, "available", lambda: False)  # CUDA torch without Triton
        assert sampling.fps_backend(on_cuda) == "torch" and grouping.ball_query_backend(on_cuda) == "torch"


@parent_only
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_compiled_kernels_refuse_cpu_tensors_with_a_message():
    from simipu.ops.triton_ops import furthest_point_sample_triton
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        furthest_point_sample_triton(torch.zeros(1, 8, 3), 2)


@parent_only
@pytest.mark.slow
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_kernels_compile_for_an_ampere_gpu_without_fused_multiply_add():
    """Compiled for sm_80 with Triton's bundled ptxas (no GPU needed). A fused a*b + c rounds once, not
    twice, and would part the kernels from the references: the launch options forbid it."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from simipu.ops import triton_ops

    fps_sig = {"points_ptr": "*fp32", "out_ptr": "*i64", "dist_ptr": "*fp32", "N": "i32", "D": "i32",
               "npoint": "i32", "start": "i32", "BLOCK": "constexpr", "ONE_BLOCK": "constexpr"}
    ball_sig = {"xyz_ptr": "*fp32", "centers_ptr": "*fp32", "out_ptr": "*i64", "N": "i32", "S": "i32", "K": "i32",
                "r2_min": "fp32", "r2_max": "fp32", "BLOCK_S": "constexpr", "BLOCK_N": "constexpr"}
    builds = [(triton_ops._fps_kernel, fps_sig, dict(BLOCK=16384, ONE_BLOCK=True), 16),
              (triton_ops._fps_kernel, fps_sig, dict(BLOCK=triton_ops.FPS_BLOCK, ONE_BLOCK=False), 4),
              (triton_ops._ball_query_kernel, ball_sig,
               dict(BLOCK_S=triton_ops.BQ_BLOCK_S, BLOCK_N=triton_ops.BQ_BLOCK_N), 4)]
    for fusion in (False, True):
        for fn, sig, constexprs, warps in builds[:1] if fusion else builds:
            ptx = triton.compile(ASTSource(fn, signature=sig, constexprs=constexprs),
                                 target=GPUTarget("cuda", 80, 32),
                                 options=dict(num_warps=warps, enable_fp_fusion=fusion)).asm["ptx"]
            assert ("fma.rn.f32" in ptx) == fusion, (fn.__name__, constexprs, fusion)


def _run_child(select_slow: bool) -> str:
    cmd = [sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider",
           "-k", "kernel and not compile and not interpreter_child", "-m", "slow" if select_slow else "not slow"]
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # pytest's summary line, wherever it is (a warning printed at exit may follow it)
    summary = [line for line in proc.stdout.splitlines() if re.search(r"\d+ passed.* in [\d.]+s", line)]
    assert len(summary) == 1, out[-4000:]
    assert "skipped" not in summary[0] and "failed" not in summary[0], summary
    return summary[0]


@pytest.mark.skipif(ON_GPU or INTERPRETER or not HAS_TRITON, reason="the kernel tests run in this process")
def test_interpreter_child_passes_every_kernel_test():
    _run_child(select_slow=False)


@pytest.mark.slow
@pytest.mark.skipif(ON_GPU or INTERPRETER or not HAS_TRITON, reason="the kernel tests run in this process")
def test_interpreter_child_passes_the_real_frame_kernel_test(kitti_real):
    assert "1 passed" in _run_child(select_slow=True)
