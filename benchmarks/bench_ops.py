"""Benchmark the sampling/grouping ops and the point encoder against the plain references.

Run:  python benchmarks/bench_ops.py [--quick] [--no-train]

Prints one markdown table: operation, naive reference time, project path time, ratio, the peak memory
of each (peak RSS growth of a fresh subprocess per measurement, so torch's allocations are counted) and
the performance issue's target. The last rows (Hungarian matching, data pipeline, `tiny` training step)
come from ``bench_train.py``, run as a child process.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import torch

from _machine import cpu_model
from simipu import pointnet
from simipu.config import PointEncoderConfig
from simipu.ops import (ball_query, ball_query_naive, feature_furthest_point_sample,
                        furthest_point_sample, furthest_point_sample_naive)
from simipu.pointnet import PointEncoder

B, N = 4, 16384


def kitti_like_cloud(b=B, n=N, seed=0):
    """Uniform points in the KITTI crop [0, -40, -3, 70.4, 40, 1] plus a reflectance: (b, n, 4)."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(b, n, 3, generator=g) * torch.tensor([70.4, 80.0, 4.0]) + torch.tensor([0.0, -40, -3])
    return torch.cat([xyz, torch.rand(b, n, 1, generator=g)], dim=-1)


def make_case(name: str):
    """Return (callable for the reference path, callable for the project path)."""
    points = kitti_like_cloud()
    xyz = points[..., :3].contiguous()
    if name == "dfps":
        return (lambda: furthest_point_sample_naive(xyz, 4096), lambda: furthest_point_sample(xyz, 4096))
    if name == "ball_query":
        centers = torch.gather(xyz, 1, furthest_point_sample(xyz, 4096)[..., None].expand(-1, -1, 3))
        return (lambda: ball_query_naive(xyz, centers, 0.8, 32), lambda: ball_query(xyz, centers, 0.8, 32))
    if name == "ball_query_dilated":  # layer 1, scale 3 of the kitti encoder: the shell 0.4 <= d < 0.8
        centers = torch.gather(xyz, 1, furthest_point_sample(xyz, 4096)[..., None].expand(-1, -1, 3))
        return (lambda: ball_query_naive(xyz, centers, 0.8, 64, min_radius=0.4),
                lambda: ball_query(xyz, centers, 0.8, 64, min_radius=0.4))
    if name == "ffps":  # layer 2 of the kitti encoder ("FS"): F-FPS over 4096 points with 128 features
        x4096, feat = xyz[:, :4096].contiguous(), torch.randn(B, 4096, 128)
        cat = torch.cat([x4096, feat], dim=-1)
        return (lambda: furthest_point_sample_naive(cat, 1024),
                lambda: feature_furthest_point_sample(x4096, feat, 1024))
    encoder = PointEncoder(PointEncoderConfig())
    if name in ("encoder_nograd", "encoder_grad"):
        encoder.train(name == "encoder_grad")

        def run():
            if name == "encoder_nograd":
                with torch.no_grad():
                    return encoder(points)
            encoder.zero_grad()
            _, features = encoder(points)
            (features ** 2).mean().backward()

        def reference():  # group first, then the shared MLPs as 1×1 conv modules on (B, C, S, K) copies
            with mock.patch.object(pointnet.SetAbstractionMSG, "_scale_features",
                                   pointnet.SetAbstractionMSG._scale_features_textbook):
                return run()
        return reference, run
    raise ValueError(f"unknown case {name!r}")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(name: str, path: str, repeats: int) -> dict:
    """In this (fresh) process: best time of ``repeats`` runs and the peak RSS growth in MB."""
    naive, fast = make_case(name)
    fn = naive if path == "naive" else fast
    base = rss_mb()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB -> MB on Linux
    return {"time": min(times), "mem": max(0.0, peak - base)}


def run_child(name: str, path: str, repeats: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, path, str(repeats),
                          "--threads", str(torch.get_num_threads())],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"machine: {os.cpu_count()} cores, {cpu_model()}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; load average {load}")


CASES = [  # (name, label, target); every case has a reference path
    ("dfps", "D-FPS, B=4, 16384 -> 4096", "≥ 30×"),
    ("ball_query", "ball query, B=4, 4096 centres / 16384 points, r=0.8, k=32", "≥ 30×, O(B·S·k) memory"),
    ("ball_query_dilated", "dilated ball query, B=4, 4096 centres / 16384 points, 0.4 <= d < 0.8, k=64",
     "≥ 30×"),
    ("ffps", "F-FPS, B=4, 4096 points x (3+128) -> 1024 (the F-FPS half of kitti's FS layer)", ""),
    ("encoder_nograd", "PointEncoder kitti forward, B=4, 16384 points, eval, no_grad "
                       "(reference: group, then conv modules)", "≤ 3 s"),
    ("encoder_grad", "PointEncoder kitti forward+backward, B=4, 16384 points, train "
                     "(reference: group, then conv modules)", ""),
]


def seconds(t: float | None) -> str:
    return "—" if t is None else f"{t * 1000:.1f} ms" if t < 0.1 else f"{t:.3f} s"


def train_rows(quick: bool) -> tuple[list, float]:
    """bench_train.py's rows (matching, pipeline, training step) from a child process, and its peak RSS."""
    cmd = [sys.executable, str(Path(__file__).with_name("bench_train.py")), "--json",
           "--threads", str(torch.get_num_threads())] + (["--quick"] if quick else [])
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    return out["rows"], out["peak_rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each project path, not three")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-train", action="store_true", help="skip bench_train.py's rows")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        name, path, repeats = args.child
        print(json.dumps(measure(name, path, int(repeats))))
        return
    repeats = 1 if args.quick else 3
    print(machine() + "\n")
    print("| operation | naive reference | project path | ratio | peak memory (naive / project) | target |")
    print("|---|---:|---:|---:|---:|---|")
    for name, label, target in CASES:
        fast = run_child(name, "fast", repeats)
        # the plain loops run once (seconds each); the encoder reference gets the same repeats as ours
        naive = run_child(name, "naive", repeats if name.startswith("encoder") else 1)
        print(f"| {label} | {seconds(naive['time'])} | {seconds(fast['time'])} | "
              f"{naive['time'] / fast['time']:.1f}× | {naive['mem']:.0f} MB / {fast['mem']:.0f} MB | {target} |",
              flush=True)
    if args.no_train:
        return
    rows, peak = train_rows(args.quick)
    for label, ref, ours, target in rows:
        ratio = f"{ref / ours:.1f}×" if ref else "—"
        print(f"| {label} | {seconds(ref)} | {seconds(ours)} | {ratio} | — | {target} |")
    print(f"\npeak RSS of the process that ran the last {len(rows)} rows (incl. the `tiny` model): {peak:.0f} MB")


if __name__ == "__main__":
    main()
