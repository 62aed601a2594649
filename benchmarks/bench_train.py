"""Benchmark matching, the data pipeline and the training step (the other half of bench_ops.py).

Run:  python benchmarks/bench_train.py [--quick]   (``python benchmarks/bench_ops.py`` also runs it, in one table)

Prints one markdown table. Each row names the project's path, a plain reference measured in the same
run where one exists (the ratio is what to compare: these machines are noisy), and the target from the
performance issue. Peak RSS of the whole process is reported at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from _machine import cpu_model
from simipu.config import load_config
from simipu.matching import greedy_match, hungarian_match, match_views
from simipu.model import SimIPU
from simipu.pipeline import PretrainDataset, collate
from simipu.train import build_optimizers

ROOT = Path(__file__).resolve().parents[1]


def timeit(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def hungarian_rows(repeat: int):
    rng = np.random.default_rng(0)
    a = rng.uniform([0, -40, -3], [70.4, 40, 1], size=(1024, 3))
    b = a[rng.permutation(1024)] + rng.normal(scale=0.05, size=(1024, 3))
    t_h = timeit(lambda: hungarian_match(a, b), repeat)
    # reference: the same solver on a cost matrix built by broadcasting an (N, M, 3) difference
    t_ref = timeit(lambda: linear_sum_assignment(np.linalg.norm(a[:, None] - b[None], axis=-1)), repeat)
    t_g = timeit(lambda: greedy_match(a, b), repeat)
    return [("Hungarian 1024×1024 (cdist + scipy linear_sum_assignment), per sample; reference: broadcast "
             "cost matrix", t_ref, t_h, "≤ 60 ms"),
            ("greedy 1024×1024 (released code's ablation), per sample", None, t_g, "")]


def pipeline_row(samples: int):
    cfg = load_config("kitti", [f"data.root={ROOT / 'data_samples'}", "data.splits=[trainval]",
                                "data.num_workers=0"])
    ds = PretrainDataset(cfg.data)
    ds[0]
    t0 = time.perf_counter()
    for i in range(samples):
        ds[i % len(ds)]
    dt = (time.perf_counter() - t0) / samples
    return ("data pipeline, kitti preset (load, crop, sample 16384, view, resize ≤2400×720, flip, pad), "
            f"per sample → {1 / dt:.1f} samples/s per worker", None, dt, "≥ 20 samples/s")


def train_step_rows(steps: int):
    cfg = load_config("tiny", [f"data.root={ROOT / 'data_samples'}", "data.num_workers=0"])
    ds = PretrainDataset(cfg.data)
    batches = [collate([ds[2 * i], ds[2 * i + 1]]) for i in range(3)]
    model = SimIPU(cfg.model)
    optimizers = build_optimizers(model, cfg)
    match_time = []

    def step(i=[0]):
        batch = batches[i[0] % len(batches)]
        i[0] += 1
        out = model(batch)
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        out["loss"].backward()
        for o in optimizers:
            o.step()

    t_step = timeit(step, steps)
    # matching alone, on the locations the encoder produced for the same batch
    with torch.no_grad():
        b = batches[0]
        l_a, _ = model.point_encoder(b["points_a"])
        l_b, _ = model.point_encoder(b["points_b"])
    t_match = timeit(lambda: match_views(l_a, l_b, b["T_ab"], "hungarian"), steps)
    return [("`tiny` training step, batch 2 (forward + backward + 3 optimisers)", None, t_step, "≤ 1.0 s"),
            (f"matching inside that step ({100 * t_match / t_step:.1f} % of it)", None, t_match, "≤ 10 %")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print the rows as JSON (for bench_ops.py's table)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    repeat = 2 if a.quick else 5
    rows = hungarian_rows(repeat) + [pipeline_row(8 if a.quick else 32)] + train_step_rows(repeat)
    if a.json:
        print(json.dumps({"rows": rows, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {a.threads} threads, CPU only\n")
    print("| operation | reference | simipu | ratio | target |")
    print("|---|---|---|---|---|")
    for name, ref, ours, target in rows:
        ref_s = f"{ref * 1000:.1f} ms" if ref else "—"
        ratio = f"{ref / ours:.1f}×" if ref else "—"
        print(f"| {name} | {ref_s} | {ours * 1000:.1f} ms | {ratio} | {target} |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
