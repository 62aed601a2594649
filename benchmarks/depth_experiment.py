"""The paper's Table 3 (depth probe: scratch vs SimIPU) and Table 5 (ablations), small and reproducible.

The first round (3 seeds, fine-tuned probe only, not resumable). ``benchmarks/experiment.py`` is its successor:
frozen and fine-tuned probes, 8 paired seeds with intervals and Holm's correction, a dose-response sweep,
pre-training signals, every run cached and resumable. This script still reuses ``encoder_report`` and ``machine``.

Run:  python benchmarks/depth_experiment.py [--quick] [--out results] [--work runs/depth_experiment]

From nothing, on a CPU:
  1. synthetic KITTI-format frames (``simipu.synth.generate``, two processes), ImageSets written here:
     the first ``train_frames`` ids are ``train``, the rest ``val`` (held out from everything but evaluation);
  2. SimIPU pre-training, ``tiny`` preset, a fixed number of steps on ``train``, for the full method and
     the ablations of Table 5 (greedy matching, λ = 0, μ = 0), all from the same seed and budget;
  3. the depth probe (``simipu.depth.run_depth_probe``) from scratch and from each checkpoint, identical
     budget, the same seeds, evaluated on ``val``.
Writes ``OUT/depth_probe.{md,png,json}``: the table (mean ± std over seeds), paired differences to scratch,
pre-training diagnostics, every run's numbers, the command, wall time and machine. ``--quick`` runs the
same code path in CI-sized time (tests/test_depth_experiment.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from _machine import cpu_model
from simipu.checkpoint import list_checkpoints, load_checkpoint
from simipu.config import load_config
from simipu.depth import METRICS, make_config, run_depth_probe
from simipu.model import SimIPU
from simipu.train import pretrain, usable_cores

ROOT = Path(__file__).resolve().parents[1]
METRIC_NAMES = dict(abs_rel="abs-rel ↓", sq_rel="sq-rel ↓", rmse="RMSE ↓", rmse_log="RMSE-log ↓",
                    delta1="δ<1.25 ↑", delta2="δ<1.25² ↑", delta3="δ<1.25³ ↑")
LOWER_IS_BETTER = {"abs_rel", "sq_rel", "rmse", "rmse_log"}
# Pre-training runs: name -> (row label, overrides of the tiny preset, steps as a multiple of plan.pretrain_steps).
TABLE5_RUNS = {
    "simipu": ("SimIPU (Hungarian, λ=1, μ=1)", (), 1),
    "greedy": ("greedy matching", ("model.matching=greedy",), 1),
    "no_intra": ("w/o intra (λ=0, μ=1)", ("model.lambda_intra=0",), 1),
    "no_inter": ("w/o inter (λ=1, μ=0)", ("model.mu_inter=0",), 1),
}
# Not in the paper: is the budget too small, or the paper's image-branch lr (set for batch 32) too large at batch 2?
DIAGNOSTIC_RUNS = {
    "simipu_4x": ("SimIPU, 4× pre-training steps", (), 4),
    "simipu_lr003": ("SimIPU, image and head lr 0.003", ("optim.image_lr=0.003", "optim.head_lr=0.003"), 1),
}
PRETRAIN_RUNS = {**TABLE5_RUNS, **DIAGNOSTIC_RUNS}
MAIN_INITS = {"scratch": "scratch (random init)", **{k: v[0] for k, v in TABLE5_RUNS.items()}}
INITS = {**MAIN_INITS, **{k: v[0] for k, v in DIAGNOSTIC_RUNS.items()}}
HISTORY_KEYS = ("step", "loss_intra", "loss_inter", "intra_top1", "inter_top1", "match_dist", "match_lt_0.1")


@dataclass(frozen=True)
class Plan:
    train_frames: int
    val_frames: int
    pretrain_steps: int      # tiny preset, batch 2
    probe_steps: int         # resnet18, batch 4, 384×128
    seeds: tuple[int, ...]   # probe seeds (pre-training uses train.seed = 0)
    synth: dict = field(default_factory=dict)  # extra arguments of simipu.synth.generate
    pretrain: tuple[str, ...] = ()             # extra overrides of the tiny preset
    probe: dict = field(default_factory=dict)  # extra DepthProbeConfig values
    data_seed: int = 0


FULL = Plan(train_frames=200, val_frames=50, pretrain_steps=500, probe_steps=200, seeds=(0, 1, 2))
QUICK = Plan(train_frames=4, val_frames=2, pretrain_steps=2, probe_steps=2, seeds=(0,),
             synth=dict(image_size=(416, 128), beams=32, azimuth_step_deg=0.35),
             pretrain=("data.num_points=1024", "model.point.num_points=[256, 64, [32, 32]]",
                       "model.point.fps_sample_range_lists=[[-1], [-1], [32, -1]]"),
             probe=dict(image_size=(192, 64), batch_size=2))


def _synth_chunk(root: str, seed: int, first_id: int, frames: int, synth: dict) -> None:
    from simipu.synth import generate
    generate(root, frames=frames, seed=seed, split_val_every=0, progress=False, fov_only=True,
             first_id=first_id, existing="add", **synth)  # chunks share the root


def make_data(pool: ProcessPoolExecutor, root: Path, plan: Plan, chunks: int = 2) -> None:
    """Frames 0..n-1 in ``chunks`` jobs; ImageSets written afterwards (each ``generate`` rewrites them)."""
    n = plan.train_frames + plan.val_frames
    bounds = np.linspace(0, n, chunks + 1).astype(int)
    jobs = [pool.submit(_synth_chunk, str(root), plan.data_seed, int(a), int(b - a), plan.synth)
            for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    for job in jobs:
        job.result()
    ids = [f"{i:06d}" for i in range(n)]
    for name, split in (("train", ids[:plan.train_frames]), ("val", ids[plan.train_frames:]), ("trainval", ids)):
        (root / "ImageSets" / f"{name}.txt").write_text("".join(f + "\n" for f in split))


def encoder_report(cfg, ckpt: dict) -> dict:
    """How far pre-training moved the encoders from their initialisation (rebuilt from ``train.seed``).

    The frozen point-key head never changes, so its equality with the rebuilt one proves the rebuild.
    """
    torch.manual_seed(cfg.train.seed)
    init = SimIPU(cfg.model).state_dict()
    final = ckpt["model"]
    key_head = [k for k in init if k.startswith("point_key_head") and k.endswith(("weight", "bias"))]

    def rel_change(prefix):
        keys = [k for k in init if k.startswith(prefix) and init[k].is_floating_point() and init[k].dim() > 1]
        return float(np.mean([((final[k] - init[k]).norm() / init[k].norm()).item() for k in keys]))

    image_keys = [k for k in init if k.startswith("image_encoder")]
    return dict(init_rebuilt=all(torch.equal(init[k], final[k]) for k in key_head),
                image_encoder_unchanged=all(torch.equal(init[k], final[k]) for k in image_keys),
                image_rel_change=rel_change("image_encoder"), point_rel_change=rel_change("point_encoder"),
                stem_norm_init=float(init["image_encoder.conv1.weight"].norm()),
                stem_norm_final=float(final["image_encoder.conv1.weight"].norm()))


def run_pretraining(name: str, data: Path, work: Path, plan: Plan, threads: int) -> dict:
    out = work / "pretrain" / name
    shutil.rmtree(out, ignore_errors=True)
    _, overrides, factor = PRETRAIN_RUNS[name]
    cfg = load_config("tiny", [f"data.root={data}", "data.splits=[train]", "data.num_workers=0",
                               f"train.max_steps={factor * plan.pretrain_steps}", "train.epochs=100000",
                               "train.seed=0", f"train.out={out}", f"train.threads={threads}", "train.device=cpu",
                               "train.keep_last=1", *plan.pretrain, *overrides])
    summary = pretrain(cfg, progress=False)
    last = cfg.model.point.num_points[-1]
    points = sum(last) if isinstance(last, tuple) else last
    ckpt_path = list_checkpoints(out)[-1]
    ckpt = load_checkpoint(ckpt_path)
    history = {k: [round(row[k], 5) for row in ckpt["history"]] for k in HISTORY_KEYS}  # columns, for the plot
    return dict(overrides=[*plan.pretrain, *overrides], config=cfg.to_dict(), points_per_frame=points,
                checkpoint=str(ckpt_path), summary=summary, history=history, encoder=encoder_report(cfg, ckpt),
                chance_intra=1.0 / (cfg.train.batch_size * points),  # keys of L_intra: matched pairs of the batch
                chance_inter=1.0 / max(summary["last10_mean"]["inter_valid"], 1.0))


def run_probe(init_name: str, init: str, seed: int, data: Path, work: Path, plan: Plan) -> dict:
    out, t0 = work / "probes" / init_name / f"seed{seed}", time.perf_counter()
    metrics = run_depth_probe(data, init=init, out=out, arch="resnet18", steps=plan.probe_steps, seed=seed,
                              device="cpu", progress=False, **plan.probe)
    record = json.loads((out / "run.json").read_text())
    return dict(init=init_name, seed=seed, metrics=metrics, losses=[round(x, 5) for x in record["losses"]],
                seconds_per_step=record["seconds_per_step"], wall_seconds=time.perf_counter() - t0)


def _by_seed(probes: list[dict], name: str, k: str) -> np.ndarray:
    return np.array([p["metrics"][k] for p in sorted(probes, key=lambda p: p["seed"]) if p["init"] == name])


def paired(probes: list[dict], name: str, ref: str, k: str) -> dict:
    """Mean and std over seeds of ``name − ref`` (same probe seed) and the paired t-test's p-value."""
    x, y = _by_seed(probes, name, k), _by_seed(probes, ref, k)
    d = x - y
    p = float(stats.ttest_rel(x, y).pvalue) if len(d) > 1 and d.std() > 0 else float("nan")
    return dict(mean=float(d.mean()), std=float(d.std(ddof=1)) if len(d) > 1 else 0.0, p=p)


def summarise(probes: list[dict]) -> dict:
    """Per initialisation and metric: mean, std (ddof=1) over seeds, paired differences to scratch and SimIPU."""
    table = {}
    for name in INITS:
        table[name] = {}
        for k in METRICS:
            x = _by_seed(probes, name, k)
            table[name][k] = dict(mean=float(x.mean()), std=float(x.std(ddof=1)) if len(x) > 1 else 0.0,
                                  n=len(x), vs_scratch=paired(probes, name, "scratch", k),
                                  vs_simipu=paired(probes, name, "simipu", k))
    return table


def machine() -> dict:
    return dict(cpu=cpu_model(), cores=usable_cores(), torch=torch.__version__,
                python=platform.python_version(), commit=source_commit())


def source_commit() -> str:
    """The git commit of the simipu package that ran (with '+dirty' for uncommitted changes), or 'unknown'."""
    import subprocess
    import simipu
    repo = Path(simipu.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "simipu", "benchmarks"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    table, names = result["table"], list(INITS)
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    colors = dict(zip(names, plt.cm.tab10(np.arange(len(names)))))
    for ax, k in ((axes[0, 0], "abs_rel"), (axes[0, 1], "delta1")):
        for i, n in enumerate(names):
            ax.errorbar(i, table[n][k]["mean"], yerr=table[n][k]["std"], fmt="s", color=colors[n], ms=9,
                        capsize=6, elinewidth=2)
            ys = [p["metrics"][k] for p in result["probes"] if p["init"] == n]  # every seed as a dot
            ax.scatter(i + 0.15 + np.zeros(len(ys)), ys, color="0.3", s=12, zorder=3)
        ax.axvline(len(MAIN_INITS) - 0.5, color="0.6", ls=":")
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set(xlim=(-0.5, len(names) - 0.5), ylabel=METRIC_NAMES[k],
               title=f"probe on val: {METRIC_NAMES[k]}, mean ± std (grey: seeds; right of : diagnostics)")
        ax.grid(alpha=0.3, axis="y")
    ax = axes[1, 0]
    for n in names:
        curves = np.array([p["losses"] for p in result["probes"] if p["init"] == n])  # (seeds, steps)
        k = max(1, min(10, curves.shape[1]))
        ax.plot(np.arange(k, curves.shape[1] + 1), np.convolve(curves.mean(0), np.ones(k) / k, mode="valid"),
                color=colors[n], label=n, lw=1)
    ax.set(xlabel="probe step", ylabel="scale-invariant loss",
           title="probe training loss (seed mean, 10-step moving mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    for n in PRETRAIN_RUNS:
        if n == "no_inter":  # its point branch is simipu's, step for step (L_inter never reaches it)
            continue
        h = result["pretrain"][n]["history"]
        for key, style in (("intra_top1", "-"), ("inter_top1", "--")):
            y = np.array(h[key])
            if not y.any():  # the branch is off (λ = 0)
                continue
            k = max(1, min(20, len(y)))
            ax.plot(h["step"][k - 1:], np.convolve(y, np.ones(k) / k, mode="valid"), style, color=colors[n],
                    label=f"{n} {key}", lw=1)
    pre = result["pretrain"]["simipu"]
    for chance, style in ((pre["chance_intra"], "-"), (pre["chance_inter"], "--")):
        ax.axhline(chance, color="0.5", ls=style, lw=0.8)
    ax.set(xlabel="pre-training step", ylabel="top-1 contrastive accuracy", yscale="log",
           title="pre-training top-1: intra (—), inter (--), grey = chance; no_inter = simipu's intra")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def verdict(d: dict, k: str) -> str:
    """'better' / 'worse' (paired t-test p < 0.05), 'no significant difference', or 'untested' (one seed)."""
    if np.isnan(d["p"]):
        return "untested (one seed or identical)"
    if d["p"] >= 0.05:
        return "no significant difference"
    return "better" if (d["mean"] < 0) == (k in LOWER_IS_BETTER) else "worse"


def _pm(c: dict) -> str:
    return f"{c['mean']:.3f} ± {c['std']:.3f}"


def _diff(d: dict) -> str:
    return f"{d['mean']:+.3f} ± {d['std']:.3f} (p = {d['p']:.2f})"


def _metric_table(t: dict, names) -> list[str]:
    return (["| initialisation | " + " | ".join(METRIC_NAMES[k] for k in METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
            + [f"| {INITS[n]} | " + " | ".join(_pm(t[n][k]) for k in METRICS) + " |" for n in names])


def _paired_table(t: dict, names, ref: str) -> list[str]:
    return ([f"| initialisation | Δ abs-rel vs {ref} | Δ δ<1.25 vs {ref} | verdict (abs-rel / δ<1.25) |",
             "|---|---|---|---|"]
            + [f"| {INITS[n]} | {_diff(t[n]['abs_rel'][f'vs_{ref}'])} | {_diff(t[n]['delta1'][f'vs_{ref}'])} | "
               f"{verdict(t[n]['abs_rel'][f'vs_{ref}'], 'abs_rel')} / "
               f"{verdict(t[n]['delta1'][f'vs_{ref}'], 'delta1')} |" for n in names])


def _pretrain_row(n: str, p: dict) -> str:
    s, e, mc = p["summary"]["last10_mean"], p["encoder"], p["config"]["model"]
    intra = ([f"{s['loss_intra']:.3f}", f"{s['intra_top1']:.3f} ({p['chance_intra']:.4f})", f"{s['match_dist']:.3f}",
              f"{s['match_lt_0.1']:.3f}", f"{s['match_lt_0.5']:.3f}"] if mc["lambda_intra"] > 0 else ["—"] * 5)
    inter = ([f"{s['loss_inter']:.3f}", f"{s['inter_top1']:.3f} ({p['chance_inter']:.4f})"]
             if mc["mu_inter"] > 0 else ["—"] * 2)
    cells = [n, str(p["summary"]["steps"]), f"{p['summary']['wall_seconds']:.0f}", intra[0], inter[0], intra[1],
             inter[1], *intra[2:], f"{e['image_rel_change']:.3f}",
             f"{e['stem_norm_init']:.2f} → {e['stem_norm_final']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def markdown(r: dict) -> str:
    t, plan, pre, m, sec = r["table"], r["plan"], r["pretrain"], r["machine"], r["stage_seconds"]
    c, pc = pre["simipu"]["config"], r["probe_config"]
    batch = c["train"]["batch_size"]
    synth = f", {plan['synth']}" if plan["synth"] else ""
    extra = f", {', '.join(plan['pretrain'])}" if plan["pretrain"] else ""
    lines = [
        "# Depth probe after SimIPU pre-training: small-scale Table 3 and Table 5", "",
        "Written by `benchmarks/depth_experiment.py` from the runs below; nothing here is edited by hand. "
        "Compare the rows with each other, not with the paper's numbers (KITTI Eigen split, full resolution, "
        "ResNet-50 pre-trained on Waymo).", "",
        f"- command: `{r['command']}`",
        f"- wall time: {r['wall_seconds'] / 60:.1f} min in {r['jobs']} worker processes × {r['threads_per_job']} "
        f"torch thread (synth {sec['synth'] / 60:.1f} min, then pre-training and probes "
        f"{sec['pretrain_and_probes'] / 60:.1f} min; summed job time: pre-training {sec['pretrain_jobs'] / 60:.1f} "
        f"min, probes {sec['probe_jobs'] / 60:.1f} min); load average at start {r['load_average']['start']:.1f}, "
        f"at end {r['load_average']['end']:.1f} (other jobs may have shared the CPU; every run is seeded and "
        "single-threaded, so this changes the time, not the numbers)",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, Python {m['python']}",
        f"- code: simipu and this script at git commit `{m.get('commit', 'unknown')}`",
        f"- data: {plan['train_frames']} train + {plan['val_frames']} held-out val synthetic frames "
        f"(`simipu.synth.generate`, seed {plan['data_seed']}, `fov_only=True`{synth}); val is used only to "
        "evaluate the probe",
        f"- pre-training: `tiny` preset (ResNet-18, {c['data']['num_points']} points, batch {batch}{extra}), "
        f"{plan['pretrain_steps']} steps = {batch * plan['pretrain_steps']} samples on train, seed 0, the same "
        "budget for every row of Tables 3 and 5",
        f"- probe: `run_depth_probe`, {pc['arch']}, {plan['probe_steps']} steps, batch {pc['batch_size']}, AdamW lr "
        f"{pc['lr']}, {pc['image_size'][0]}×{pc['image_size'][1]}, seeds {list(plan['seeds'])}; metrics on val, "
        "mean ± std over seeds",
        "", "## Table 3 (depth probe on held-out frames)", "", *_metric_table(t, MAIN_INITS), "",
        f"Paired by probe seed (same seed = same decoder init and batch order), n = {len(plan['seeds'])}; "
        "p from a paired t-test; 'better'/'worse' only when p < 0.05.", "", *_paired_table(t, TABLE5_RUNS, "scratch"),
        "", "## Table 5 (ablations, same pre-training budget, probed with the same seeds)", "",
        "Paper (Table 5, 3D detection): greedy < Hungarian; λ=0 < full; μ=0 = scratch < full.", "",
        *_paired_table(t, [n for n in TABLE5_RUNS if n != "simipu"], "simipu"),
        "", "## Diagnostic runs (not in the paper)", "", *_metric_table(t, DIAGNOSTIC_RUNS), "",
        *_paired_table(t, DIAGNOSTIC_RUNS, "scratch"), "", *_paired_table(t, DIAGNOSTIC_RUNS, "simipu"),
        "", "## Pre-training diagnostics (mean of the last 10 steps; `summary.json` of each run)", "",
        "| run | steps | wall s | L_intra | L_inter | intra top-1 (chance) | inter top-1 (chance) | match dist m | "
        "pairs < 0.1 m | pairs < 0.5 m | image encoder rel. change | stem ‖w‖ init → end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|", *[_pretrain_row(n, p) for n, p in pre.items()], "",
        "— = branch off (weight 0; matching is not run without L_intra). Chance = 1 / number of keys a query "
        "competes over (matched pairs of the batch for L_intra, projected points of the batch for L_inter). "
        "Relative change = mean over conv weights of ‖w_end − w_init‖ / ‖w_init‖, the initialisation rebuilt "
        "from the seed (rebuild checked against the frozen point-key head: "
        f"{all(p['encoder']['init_rebuilt'] for p in pre.values())}).",
        "", "## Reading", "", *reading(r), "", "![depth probe](depth_probe.png)", ""]
    return "\n".join(lines)


def _loss_window(r: dict, name: str, lo: int, hi: int | None) -> float:
    """Mean probe training loss of ``name`` over steps [lo, hi), all seeds."""
    return float(np.mean([p["losses"][lo:hi] for p in r["probes"] if p["init"] == name]))


def reading(r: dict) -> list[str]:
    """Sentences computed from the numbers: the verdicts, the μ = 0 check and what may explain them."""
    t, pre, plan = r["table"], r["pretrain"], r["plan"]
    a, d = t["simipu"]["abs_rel"]["vs_scratch"], t["simipu"]["delta1"]["vs_scratch"]
    v = {verdict(a, "abs_rel"), verdict(d, "delta1")}
    claim = ("SimIPU pre-training **helps** the depth probe here, as the paper claims" if v == {"better"} else
             "SimIPU pre-training **hurts** the depth probe here" if v == {"worse"} else
             "one seed only: no verdict" if "untested (one seed or identical)" in v else
             "SimIPU pre-training **does not measurably help** the depth probe at this scale")
    out = [f"- **Table 3 claim (pre-trained beats scratch).** {claim}: abs-rel {_pm(t['scratch']['abs_rel'])} "
           f"(scratch) vs {_pm(t['simipu']['abs_rel'])} (SimIPU), paired Δ {_diff(a)}; δ<1.25 paired Δ {_diff(d)}."]
    scratch = [p["metrics"]["abs_rel"] for p in r["probes"] if p["init"] == "scratch"]
    w = max(1, plan["probe_steps"] // 8)
    late, before = _loss_window(r, "scratch", -w, None), _loss_window(r, "scratch", -2 * w, -w)
    early = {n: _loss_window(r, n, 0, w) for n in ("scratch", "simipu")}
    gap = (early["simipu"] - early["scratch"]) / early["scratch"]
    out.append(f"- **The probe.** Scratch abs-rel spans {min(scratch):.3f}–{max(scratch):.3f} over seeds "
               f"({'wider than' if max(scratch) - min(scratch) > abs(a['mean']) else 'narrower than'} the mean "
               f"SimIPU − scratch difference). Its loss is {'still falling' if late < before else 'flat'} at the end "
               f"(mean of the last {w} steps {late:.2f} vs {before:.2f} the {w} before, scratch). First {w} steps: "
               f"scratch {early['scratch']:.2f}, SimIPU {early['simipu']:.2f}: "
               + ("the pre-trained encoder gives no head start." if abs(gap) < 0.05 else
                  f"the pre-trained encoder starts {'lower' if gap < 0 else 'higher'} ({gap:+.0%})."))
    e = pre["no_inter"]["encoder"]
    same = pre["no_inter"]["history"]["loss_intra"] == pre["simipu"]["history"]["loss_intra"]
    out.append(f"- **μ = 0.** SimIPU's image encoder is trained only by L_inter, so with μ = 0 it gets no gradient; "
               "here the encoder is not even run, so its BatchNorm statistics stay at their initial values too. "
               f"Checked: the μ = 0 checkpoint's image encoder is bit-identical to its initialisation: "
               f"{e['image_encoder_unchanged']}. That row is a random encoder like scratch; it differs from scratch "
               "only in the random draw (the pre-training seed instead of the probe seed), so its difference from "
               f"scratch is init noise: Δ abs-rel {_diff(t['no_inter']['abs_rel']['vs_scratch'])}. Conversely "
               f"L_inter never reaches the point branch (its point side is detached): L_intra of the μ = 0 run equals "
               f"the full run's at every step: {same}.")
    h, g = pre["simipu"]["summary"]["last10_mean"], pre["greedy"]["summary"]["last10_mean"]
    out.append(f"- **Matching.** At the end of pre-training, pairs closer than 0.1 m: Hungarian "
               f"{h['match_lt_0.1']:.2f}, greedy {g['match_lt_0.1']:.2f} (mean distance {h['match_dist']:.2f} vs "
               f"{g['match_dist']:.2f} m): the two views keep different points (sampling runs on a shuffled, "
               "transformed cloud), so a 'positive' pair is often not the same surface point. Greedy vs Hungarian "
               "on the probe: Δ abs-rel "
               f"{_diff(t['greedy']['abs_rel']['vs_simipu'])}.")
    p = pre["simipu"]
    out.append(f"- **What pre-training learned.** L_inter top-1 {h['inter_top1']:.3f} = "
               f"{h['inter_top1'] / p['chance_inter']:.0f}× chance, L_intra top-1 {h['intra_top1']:.3f} = "
               f"{h['intra_top1'] / p['chance_intra']:.0f}× chance. The image encoder moved by "
               f"{p['encoder']['image_rel_change']:.2f} of its initial norm on average; the stem conv's norm went "
               f"{p['encoder']['stem_norm_init']:.2f} → {p['encoder']['stem_norm_final']:.2f} (SGD lr 0.03 on "
               "BN-followed convs: the norm grows, and a larger norm shrinks the relative step the probe's AdamW "
               "takes on that layer).")
    for n, why in (("simipu_4x", "Budget"), ("simipu_lr003", "Image-branch learning rate")):
        q = pre[n]
        s = q["summary"]["last10_mean"]
        out.append(f"- **{why}** ({INITS[n]}, {q['summary']['steps']} steps): inter top-1 {s['inter_top1']:.3f}, "
                   f"stem norm {q['encoder']['stem_norm_final']:.2f}; probe vs scratch Δ abs-rel "
                   f"{_diff(t[n]['abs_rel']['vs_scratch'])} ({verdict(t[n]['abs_rel']['vs_scratch'], 'abs_rel')}), "
                   f"vs SimIPU {_diff(t[n]['abs_rel']['vs_simipu'])} "
                   f"({verdict(t[n]['abs_rel']['vs_simipu'], 'abs_rel')}).")
    (w_img, h_img) = p["config"]["data"]["img_scale_range"][1]
    out.append(f"- **Scale.** Pre-training saw {p['config']['train']['batch_size'] * plan['pretrain_steps']} samples "
               f"from {plan['train_frames']} frames; the paper's KITTI run sees ~100 epochs × ~15k frames (≈1.5M "
               f"samples) with ResNet-50 at up to 2400×720. Here the image is at most {w_img}×{h_img}, so the "
               f"stride-32 feature map L_inter trains has about {w_img / 32:.0f}×{h_img / 32:.1f} cells for "
               f"{p['points_per_frame']} points per frame.")
    return out


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized: a few frames, a few steps, one seed")
    ap.add_argument("--out", default=str(ROOT / "results"), help="folder for depth_probe.{md,png,json}")
    ap.add_argument("--work", default=str(ROOT / "runs" / "depth_experiment"), help="scratch folder (data, runs)")
    ap.add_argument("--jobs", type=int, default=usable_cores(), help="worker processes")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out, work = Path(args.out), Path(args.work)
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    t0, load_start = time.perf_counter(), os.getloadavg()[0]
    n_probes = len(INITS) * len(plan.seeds)
    pre, probes = {}, []

    def log(msg):
        print(f"[{(time.perf_counter() - t0) / 60:6.1f} min] {msg}", flush=True)

    # Independent jobs in single-threaded workers: more throughput than one job on all cores (small ops), and no
    # collapse when other processes take a core (a multi-threaded job then waits for its descheduled threads).
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(args.threads,)) as pool:
        log(f"1/3 synth: {plan.train_frames + plan.val_frames} frames into {data}")
        make_data(pool, data, plan, chunks=args.jobs)
        synth_seconds = time.perf_counter() - t0
        log(f"2/3 pre-training {list(PRETRAIN_RUNS)} ({plan.pretrain_steps} steps × factor); then 3/3 probes")
        longest_first = sorted(PRETRAIN_RUNS, key=lambda n: -PRETRAIN_RUNS[n][2])
        pending = {pool.submit(run_pretraining, name, data, work, plan, args.threads): name for name in longest_first}
        pending.update({pool.submit(run_probe, "scratch", "scratch", seed, data, work, plan): "probe"
                        for seed in plan.seeds})
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for job in done:
                name, result = pending.pop(job), job.result()
                if name == "probe":
                    probes.append(result)
                    log(f"3/3 probe {len(probes)}/{n_probes} {result['init']} seed {result['seed']}: " + ", ".join(
                        f"{k} {v:.3f}" for k, v in result["metrics"].items()))
                    continue
                pre[name], s = result, result["summary"]
                log(f"2/3 pre-training '{name}' done in {s['wall_seconds']:.0f} s: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in s["last10_mean"].items() if k != "inter_valid"))
                pending.update({pool.submit(run_probe, name, result["checkpoint"], seed, data, work, plan): "probe"
                                for seed in plan.seeds})
    order = list(INITS)
    probes.sort(key=lambda p: (order.index(p["init"]), p["seed"]))
    seconds = dict(synth=synth_seconds, pretrain_and_probes=time.perf_counter() - t0 - synth_seconds,
                   pretrain_jobs=sum(p["summary"]["wall_seconds"] for p in pre.values()),
                   probe_jobs=sum(p["wall_seconds"] for p in probes))
    result = dict(command="python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv]),
                  wall_seconds=time.perf_counter() - t0, stage_seconds=seconds, jobs=args.jobs,
                  threads_per_job=args.threads, machine=machine(),
                  load_average=dict(start=load_start, end=os.getloadavg()[0]), plan=asdict(plan),
                  probe_config=asdict(make_config(steps=plan.probe_steps, arch="resnet18", **plan.probe)),
                  table=summarise(probes), pretrain={k: pre[k] for k in PRETRAIN_RUNS}, probes=probes)
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / "depth_probe.png")
    result["wall_seconds"] = time.perf_counter() - t0
    (out / "depth_probe.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "depth_probe.md").write_text(markdown(result))
    log(f"wrote {out / 'depth_probe.md'}, .png, .json")
    return result


if __name__ == "__main__":
    main()
