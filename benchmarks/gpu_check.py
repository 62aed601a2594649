"""GPU acceptance check for full-scale pre-training: one table, for the first run on a GPU machine.

Run:  python benchmarks/gpu_check.py [--data-root DIR]        # full form, CUDA (estimated ≤ 10 min on one GPU)
      python benchmarks/gpu_check.py --device cpu --small     # the same checks, small, on the CPU (the tests run it)

Rows of the table:
  1. furthest point sampling (D-FPS 16384 → 4096, F-FPS over 3 + 128 coordinates) and ball query
     (4096 centres in 16384 points, the dilated shell 0.4–0.8 m, k = 64): the Triton kernels
     (``simipu.ops.triton_ops``) against the batch-vectorised torch path, time and index equality,
     and equality with the plain CPU references;
  2. the ``kitti`` training step at batch 4 in fp32 (the released precision) and bf16 autocast: median step
     time and peak memory, each from its own child process (``simipu.train.pretrain``, 50 steps);
  3. bf16 loss parity: the two 50-step loss curves (same seed, same batches) compared;
  4. Hungarian matching's share of the fp32 step (``simipu.model.match_views`` timed inside the run);
  5. a 2-process ``torchrun`` run (``simipu.train.launch``), resumed, with the per-rank parameter hash.

``--small`` shrinks every size (1024 points for the ops, the ``tiny`` preset with small images, 5 steps)
so the whole script runs on a CPU in a few minutes. Without CUDA the Triton kernels run in Triton's
interpreter (numpy): their indices are checked, their times are not speed figures, and the table says so.
The training data defaults to the shipped synthetic ``data_samples/`` (timing does not need real frames);
``--data-root`` points the ``kitti`` rows at a KITTI root (``ImageSets/train.txt`` and ``test.txt``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SMALL_IMAGES = "data.img_scale_range=[[160, 48], [192, 58]]"  # --small: bf16 convolutions are slow on CPUs
PARITY_TOLERANCE = 0.02  # bf16 vs fp32: mean loss of the last 10 steps within 2 % (bf16 keeps 8 mantissa bits)
WARMUP_STEPS = 3         # steps left out of the step-time median (allocator, cuDNN autotuning, first batch)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda when available)")
    p.add_argument("--small", action="store_true", help="small sizes: runs on a CPU in minutes")
    p.add_argument("--data-root", default=None, help="KITTI root for the training rows (default: data_samples/)")
    p.add_argument("--steps", type=int, default=None, help="training steps per precision (default 50, --small 5)")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary directory)")
    p.add_argument("--train-run", default=None, help=argparse.SUPPRESS)  # child process: one training run
    a = p.parse_args(argv)
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    a.steps = a.steps or (5 if a.small else 50)
    return a


def sizes(small: bool) -> dict:
    if small:
        return dict(B=2, N=1024, S=256, ffps_n=256, ffps_s=64, ffps_c=16, centres=256)
    return dict(B=4, N=16384, S=4096, ffps_n=4096, ffps_s=1024, ffps_c=128, centres=4096)


# ---------------------------------------------------------------------------------------------- ops rows

def _timed(fn, device: str, repeat: int) -> tuple[float, object]:
    """(median seconds of ``repeat`` calls after one warm-up call, the last result)."""
    out = fn()
    times = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _first_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    if a.shape == b.shape and torch.equal(a.cpu(), b.cpu()):
        return "equal"
    diff = (a.cpu() != b.cpu()).reshape(a.shape[0], -1).any(0).nonzero()
    return f"differ from position {int(diff[0])}" if len(diff) else "differ in shape"


def ops_rows(args, triton_mode: str) -> list[tuple[str, str, str, str]]:
    from bench_ops import kitti_like_cloud
    from simipu.ops import ball_query_naive, furthest_point_sample_naive
    from simipu.ops.grouping import _ball_query_torch, _pad_with_first, _squared_radii
    from simipu.ops.sampling import _fps_torch

    z = sizes(args.small)
    B, N, S = z["B"], z["N"], z["S"]
    dev = args.device
    xyz = kitti_like_cloud(B, N)[..., :3].contiguous()
    g = torch.Generator().manual_seed(1)
    ffps_pts = torch.cat([xyz[:, :z["ffps_n"]], torch.randn(B, z["ffps_n"], z["ffps_c"], generator=g)], -1)
    if args.small:  # the smoke test: on a 1/8 grid every squared distance is exact in float32 whatever the
        xyz, ffps_pts = (torch.round(t * 8) / 8 for t in (xyz, ffps_pts))  # summation order, so index equality
        #                tests the algorithm (ties included), not rounding; the full size keeps real floats
    r0, r, k = 0.4, 0.8, 64
    r2 = _squared_radii(r, r0)
    cases = [
        (f"D-FPS, B={B}, {N} → {S}", xyz, S,
         lambda p: _fps_torch(p, S, 0), lambda p: furthest_point_sample_naive(p, S)),
        (f"F-FPS, B={B}, {z['ffps_n']} × (3+{z['ffps_c']}) → {z['ffps_s']}", ffps_pts, z["ffps_s"],
         lambda p: _fps_torch(p, z["ffps_s"], 0), lambda p: furthest_point_sample_naive(p, z["ffps_s"])),
    ]
    repeat = 1 if args.small or triton_mode != "compiled" else 3
    rows, centre_idx = [], None
    for label, pts, npoint, torch_fn, ref_fn in cases:
        p_dev = pts.to(dev)
        t_torch, idx_torch = _timed(lambda: torch_fn(p_dev), dev, repeat)
        idx_ref = ref_fn(pts)
        centre_idx = idx_ref if centre_idx is None else centre_idx
        rows.append(_triton_row(label, dev, triton_mode, repeat, t_torch, idx_torch, idx_ref,
                                lambda: _fps_triton(p_dev, npoint)))
    centres = torch.gather(xyz, 1, centre_idx[:, :z["centres"], None].expand(-1, -1, 3))
    x_dev, c_dev = xyz.to(dev), centres.to(dev)
    t_torch, bq_torch = _timed(lambda: _ball_query_torch(x_dev, c_dev, r, k, r0), dev, repeat)
    bq_ref = ball_query_naive(xyz, centres, r, k, r0)

    def bq_triton():
        idx = _ball_query_triton(x_dev, c_dev, k, *r2)
        return _pad_with_first(idx, idx < N)
    rows.append(_triton_row(f"ball query, B={B}, {z['centres']} centres / {N} points, shell {r0}–{r} m, k={k}",
                            dev, triton_mode, repeat, t_torch, bq_torch, bq_ref, bq_triton))
    return rows


def _fps_triton(points, npoint):
    from simipu.ops.triton_ops import furthest_point_sample_triton
    return furthest_point_sample_triton(points, npoint, 0)


def _ball_query_triton(xyz, centers, k, r2_min, r2_max):
    from simipu.ops.triton_ops import ball_query_triton
    return ball_query_triton(xyz, centers, k, r2_min, r2_max)


def _triton_row(label, dev, triton_mode, repeat, t_torch, idx_torch, idx_ref, triton_fn):
    torch_eq = _first_difference(idx_torch, idx_ref)
    if triton_mode.startswith("n/a"):
        return (label, f"torch {t_torch * 1e3:.1f} ms; Triton {triton_mode}",
                f"torch = CPU reference: {torch_eq}", "Triton = reference")
    t0 = time.perf_counter()
    idx_triton = triton_fn()  # first call: compiles (or interprets)
    if dev == "cuda":
        torch.cuda.synchronize()
    t_first = time.perf_counter() - t0
    if triton_mode == "compiled":
        t_triton, idx_triton = _timed(triton_fn, dev, repeat)
        timing = (f"torch {t_torch * 1e3:.1f} ms; Triton {t_triton * 1e3:.1f} ms ({t_torch / t_triton:.0f}×; "
                  f"first call with compilation {t_first:.1f} s)")
    else:
        timing = f"torch {t_torch * 1e3:.1f} ms; Triton {t_first:.1f} s in the interpreter (not a speed figure)"
    return (label, timing, f"Triton = reference: {_first_difference(idx_triton, idx_ref)}; "
            f"Triton = torch: {_first_difference(idx_triton, idx_torch)}", "Triton = reference")


# ------------------------------------------------------------------------------------------ training rows

def train_overrides(args, out: Path, precision: str) -> tuple[str, list[str]]:
    """Preset and overrides of one training run (full: ``kitti`` at batch 4; small: ``tiny``)."""
    root = args.data_root or str(ROOT / "data_samples")
    over = [f"data.root={root}", f"train.out={out}", f"train.max_steps={args.steps}", f"train.precision={precision}",
            f"train.device={args.device}", "train.epochs=1000", "train.keep_last=1"]
    if args.data_root is None:
        over.append("data.splits=[train]")  # data_samples has no testing/ folder
    if args.small:
        return "tiny", over + [SMALL_IMAGES]
    return "kitti", over + ["train.batch_size=4"]


def train_run(args) -> None:
    """Child process: one training run; prints one JSON line with losses, step and matching times, peak memory."""
    from simipu import model as model_module
    from simipu.checkpoint import list_checkpoints, load_checkpoint
    from simipu.config import load_config
    from simipu.train import pretrain

    out = Path(args.out)
    preset, over = train_overrides(args, out, args.train_run)
    cfg = load_config(preset, over)
    match_s, real_match = [], model_module.match_views

    def timed_match(*a, **kw):  # the Hungarian step inside SimIPU._intra; waits for the GPU first
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = real_match(*a, **kw)
        match_s.append(time.perf_counter() - t0)
        return result

    model_module.match_views = timed_match
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    pretrain(cfg, progress=False)
    history = load_checkpoint(list_checkpoints(out)[-1])["history"]
    if args.device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batch = cfg.train.batch_size
    print(json.dumps(dict(preset=preset, batch=batch, losses=[r["loss"] for r in history],
                          step_s=[batch / r["samples_per_s"] for r in history], match_s=match_s,
                          peak_mb=peak_mb, image_backbone=cfg.model.image_backbone,
                          num_points=cfg.data.num_points)))


def run_training(args, out: Path, precision: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--train-run", precision, "--out", str(out / precision),
           "--device", args.device, "--steps", str(args.steps)] + (["--small"] if args.small else []) + \
          (["--data-root", args.data_root] if args.data_root else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"training run ({precision}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _after_warmup(values: list) -> list:
    return values[WARMUP_STEPS:] or values


def training_rows(args, out: Path) -> list[tuple[str, str, str, str]]:
    runs = {p: run_training(args, out, p) for p in ("fp32", "bf16")}
    first = runs["fp32"]
    what = (f"`{first['preset']}` step, batch {first['batch']}, {first['num_points']} points, "
            f"{first['image_backbone']}")
    memory = "peak CUDA memory allocated" if args.device == "cuda" else "peak RSS of the run's process"
    rows = []
    for precision, run in runs.items():
        steps = _after_warmup(run["step_s"])
        rows.append((f"{what}, {precision}", f"{statistics.median(steps):.3f} s per step (median of {len(steps)}); "
                     f"{memory} {run['peak_mb'] / 1024:.2f} GB", "—", "—"))
    a, b = runs["fp32"]["losses"], runs["bf16"]["losses"]
    last = min(10, len(a))
    mean_a, mean_b = statistics.mean(a[-last:]), statistics.mean(b[-last:])
    rel_last = abs(mean_b - mean_a) / abs(mean_a)
    rel_max = max(abs(x - y) / abs(x) for x, y in zip(a, b))
    rows.append((f"bf16 loss parity over {len(a)} steps (same seed and batches)",
                 f"last-{last} mean loss fp32 {mean_a:.4f}, bf16 {mean_b:.4f}: {100 * rel_last:.2f} % apart; "
                 f"largest single-step gap {100 * rel_max:.2f} %",
                 "pass" if rel_last <= PARITY_TOLERANCE else "FAIL", f"≤ {100 * PARITY_TOLERANCE:.0f} %"))
    steps, matches = _after_warmup(first["step_s"]), _after_warmup(first["match_s"])
    share = statistics.median(matches) / statistics.median(steps)
    rows.append(("Hungarian matching inside the fp32 step", f"{1e3 * statistics.median(matches):.1f} ms per step "
                 f"= {100 * share:.1f} %", "pass" if share <= 0.10 else "FAIL", "≤ 10 %"))
    return rows


def ddp_row(args, out: Path) -> tuple[str, str, str, str]:
    """Two processes under torchrun: k steps, then --resume to 2k; the ranks must hold identical weights."""
    from simipu.config import load_config
    from simipu.train import launch

    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    # NCCL needs one GPU per process: with one GPU both processes share it over gloo (which has no CUDA
    # all-gather, so SyncBatchNorm is off there); without a GPU they run on the CPU over gloo.
    if gpus >= 2:
        where, device, extra = "2 GPUs (NCCL)", "auto", []
    elif gpus == 1:
        where, device, extra = ("one GPU shared by both (gloo; SyncBN off: NCCL needs a GPU per process)", "cuda:0",
                                ["train.dist_backend=gloo", "model.sync_bn=false"])
    else:
        where, device, extra = "the CPU (gloo)", "cpu", []
    small = args.small or gpus == 0
    k = 2 if small else 5
    root = args.data_root or str(ROOT / "data_samples")
    over = [f"data.root={root}", f"train.out={out / 'ddp'}", "train.ckpt_every=1", "train.threads=1",
            f"train.device={device}", "train.epochs=1000", *extra]
    if args.data_root is None:
        over.append("data.splits=[train]")
    preset = "tiny" if small else "kitti"
    if small:
        over += [SMALL_IMAGES, "data.num_workers=0"]
    log = open(out / "torchrun.log", "w")
    launch(load_config(preset, over + [f"train.max_steps={k}"]), nproc=2, stream=log)
    launch(load_config(preset, over + [f"train.max_steps={2 * k}"]), nproc=2, resume=True, stream=log)
    log.close()
    summary = json.loads((out / "ddp" / "summary.json").read_text())
    resumed = "resumed from" in (out / "torchrun.log").read_text()
    hashes = summary["rank_param_sha256"]
    same = len(hashes) == 2 and hashes[0] == hashes[1]
    ok = same and resumed and summary["steps"] == 2 * k and summary["world_size"] == 2
    return (f"torchrun, 2 processes on {where}: `{preset}`, {k} steps, then --resume to {2 * k}",
            f"steps {summary['steps']}, world size {summary['world_size']}, resumed: {resumed}; "
            f"per-rank parameter sha256 {', '.join(h[:12] for h in hashes)}",
            "pass" if ok else "FAIL", "ranks identical after resume")


# ------------------------------------------------------------------------------------------------- main

def triton_mode(device: str) -> str:
    from simipu.ops import triton_ops
    if not triton_ops.available():
        return "n/a (triton not installed)"
    if device == "cuda":
        return "compiled"
    return "interpreter" if triton_ops.INTERPRET else "n/a (no CUDA)"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.train_run:
        return train_run(args)
    from _machine import cpu_model
    from simipu.train import usable_cores

    mode = triton_mode(args.device)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows = ops_rows(args, mode) + training_rows(args, out) + [ddp_row(args, out)]
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "no GPU used"
    print(f"\nmachine: {cpu_model()}, {usable_cores()} cores, {gpu}; torch {torch.__version__}; device {args.device}; "
          f"Triton: {mode}; {'--small' if args.small else 'full size'}; "
          f"{time.perf_counter() - t_start:.0f} s in all\n")
    print("| check | measured | result | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    if parse_args().device == "cpu":  # before anything imports triton: its kernels then run in the interpreter
        os.environ.setdefault("TRITON_INTERPRET", "1")
    main()
