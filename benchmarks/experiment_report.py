"""The report of ``benchmarks/experiment.py``: results/experiment.md and results/fig5_dose_response.png,
written from whatever ``results/runs/*.json`` exist; a missing run shows as "not yet run"."""
from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np

from depth_experiment import machine
from simipu.depth import METRICS
from simipu.stats import holm, mean_ci, paired_difference, per_seed_slope
from simipu.viz.experiment import plot_dose_response, plot_pretrain_signals

NAMES = dict(abs_rel="abs-rel ↓", sq_rel="sq-rel ↓", rmse="RMSE ↓", rmse_log="RMSE-log ↓",
             delta1="δ<1.25 ↑", delta2="δ<1.25² ↑", delta3="δ<1.25³ ↑")
MISSING = "not yet run"
LABELS = {"greedy": "greedy matching", "no_intra": "w/o intra (λ=0, μ=1)", "no_inter": "w/o inter (λ=1, μ=0)"}


def by_seed(exp, kind: str, encoder: str, metric: str) -> dict[int, float]:
    """{seed: metric} of the finished ``kind`` probes of ``encoder``."""
    seeds = exp.plan.frozen_seeds if kind == "frozen" else exp.plan.finetune_seeds
    out = {}
    for s in seeds:
        rec = exp.record(exp.probe(kind, encoder, s))
        if rec is not None:
            out[s] = rec["metrics"][metric]
    return out


def compare(exp, kind: str, encoder: str, ref: str, metric: str) -> dict | None:
    """Paired difference ``encoder − ref`` over the seeds both have (None when fewer than two)."""
    a, b = by_seed(exp, kind, encoder, metric), by_seed(exp, kind, ref, metric)
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    return paired_difference([a[s] for s in seeds], [b[s] for s in seeds])


def branch_off(overrides) -> list[str]:
    """Summary keys of a loss switched off by ``overrides`` (weight 0): shown as — rather than 0."""
    off = " ".join(overrides)
    return [*(("loss_intra", "intra_top1") if "lambda_intra=0" in off else ()),
            *(("loss_inter", "inter_top1") if "mu_inter=0" in off else ())]


def _num(x: float, digits: int = 3) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _mean_ci(values) -> str:
    if not values:
        return MISSING
    m, lo, hi = mean_ci(list(values))
    return f"{m:.3f} [{_num(lo)}, {_num(hi)}] (n={len(values)})"


def _diff(d: dict | None, p_holm: float | None = None) -> list[str]:
    if d is None:
        return [MISSING, "", ""]
    return [f"{d['mean']:+.3f} [{_num(d['ci_low'], 3)}, {_num(d['ci_high'], 3)}] (n={d['n']})", _p(d["p"]),
            _p(p_holm) if p_holm is not None else "(unadjusted)"]


def _p(p: float) -> str:
    return "—" if p is None or not math.isfinite(p) else (f"{p:.1e}" if p < 1e-3 else f"{p:.4f}")


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def comparisons(exp) -> list[tuple[str, str, str, str]]:
    """The RMSE family Holm corrects: (label, probe kind, encoder, reference)."""
    p = exp.plan
    fam = [(f"frozen: SimIPU {f}f/{s}s vs scratch", "frozen", f"simipu {f}f/{s}s", "scratch") for f, s in p.dose]
    fam.append((f"frozen: {exp.main} vs scratch with BN statistics of the train images", "frozen", exp.main,
                "scratch_bn"))
    fam.append((f"fine-tuned: {exp.main} vs scratch", "finetune", exp.main, "scratch"))
    budget = "{}f/{}s".format(*p.ablation_budget)
    fam += [(f"frozen: {n} vs SimIPU {budget}", "frozen", f"{n} {budget}", f"simipu {budget}") for n in
            ("greedy", "no_intra", "no_inter")]
    return fam


def probe_machines(exp, kind: str, *encoders: str) -> list[str]:
    """The CPU models the finished ``kind`` probes of ``encoders`` ran on (float rounding differs between CPUs)."""
    seeds = exp.plan.frozen_seeds if kind == "frozen" else exp.plan.finetune_seeds
    return sorted({rec["machine"]["cpu"] for e in encoders for s in seeds
                   if (rec := exp.record(exp.probe(kind, e, s))) is not None})


def verdict(d: dict | None, p_holm: float) -> str:
    """'lower (better)' / 'higher (worse)' RMSE when the Holm-corrected p < 0.05, else no significant difference."""
    if d is None:
        return MISSING
    text = f"Δ RMSE {d['mean']:+.3f} m [{_num(d['ci_low'])}, {_num(d['ci_high'])}], p = {_p(d['p'])}, Holm p = " \
           f"{_p(p_holm)}: "
    if not math.isfinite(p_holm) or p_holm >= 0.05:
        return text + "**no significant difference**"
    return text + ("**lower RMSE (better)**" if d["mean"] < 0 else "**higher RMSE (worse)**")


def dose_trend(exp) -> str:
    """Per-seed slope of frozen-probe RMSE on log2(pre-training steps), over the seeds done at every point."""
    runs = {s: by_seed(exp, "frozen", f"simipu {f}f/{s}s", "rmse") for f, s in exp.plan.dose}
    seeds = sorted(set.intersection(*(set(v) for v in runs.values())))
    done = [s for s in runs if runs[s]]
    if len(seeds) < 2 or len(done) < len(runs):
        return f"trend: {MISSING} ({len(done)} of {len(runs)} budgets probed)"
    steps = list(runs)
    t = per_seed_slope(np.log2(steps), [[runs[s][seed] for s in steps] for seed in seeds])
    return (f"RMSE changes by {t['mean']:+.3f} m per doubling of pre-training (frames and steps) "
            f"[{_num(t['ci_low'])}, {_num(t['ci_high'])}], p = {_p(t['p'])} (per-seed slopes, n = {t['n']}; "
            "not in the Holm family)")


def write_report(exp, command: str) -> None:
    """Write ``results/experiment.md`` and ``results/fig5_dose_response.png``."""
    p, res = exp.plan, exp.results
    planned = exp.planned()
    records = {r.key: exp.record(r) for r in planned}
    done = [r for r in planned if records[r.key] is not None]
    fam = comparisons(exp)
    diffs = {label: compare(exp, kind, e, ref, "rmse") for label, kind, e, ref in fam}
    adjusted = dict(zip(diffs, holm([d["p"] if d else float("nan") for d in diffs.values()])))
    m = machine()
    out = ["# Does SimIPU pre-training help? Frozen and fine-tuned depth probes, dose-response, Table 5", "",
           "Written by `benchmarks/experiment.py --parts report` from `results/runs/*.json` (one file per run); "
           "nothing here is edited by hand. Compare rows with each other, not with the paper's numbers.", "",
           f"- command: `{command}`; report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
           f"- code: git commit `{m['commit']}`; machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}",
           "- missing runs are made by `python benchmarks/experiment.py --cache DIR --parts "
           "pretrain,frozen,finetune,signals` (resumable; `--list` shows what is done), then `--parts report`",
           f"- runs done: {len(done)} of {len(planned)}; summed wall time of the done runs "
           f"{sum(records[r.key].get('wall_seconds', 0) for r in done) / 3600:.2f} h (one core each)",
           f"- data: {p.train_frames} train + {p.val_frames} held-out val synthetic frames (`fov_only`); "
           "val is used only to evaluate probes",
           f"- pre-training: `tiny` preset, batch 2, seed 0, one thread; budgets (frames, steps) {list(p.dose)}",
           f"- frozen probe: {p.frozen} {p.probe}, seeds {list(p.frozen_seeds)}; fine-tuned probe: {p.finetune} "
           f"{p.probe}, seeds {list(p.finetune_seeds)}; both with `caffe_bgr` images and BN eps 1e-3 as in "
           "pre-training; scratch = the image encoder pre-training starts from (seed-0 init)", "",
           "**Statistics.** Paired by probe seed (same decoder init, batch order and flips). Δ = mean over seeds of "
           "(row − reference) with its 95 % t-interval; p from the paired t-test; *p (Holm)* is Holm-corrected "
           f"over the {len(fam)} RMSE comparisons of the main, dose-response and ablation tables (comparisons "
           "without runs do not count). Other metrics are shown unadjusted.", "",
           "**Machines.** Runs are keyed by config and code, not by machine; the same run on another CPU gives "
           "slightly different floats, which grow over thousands of steps (`--recheck RUN` measures it for one probe). "
           "Each run's CPU is in its JSON and in the last table; a comparison whose runs came from more than one CPU "
           "says so below. CPUs of the done runs: " + ", ".join(
               f"{cpu} ({n})" for cpu, n in sorted(Counter(records[r.key]["machine"]["cpu"] for r in done).items()))
           + ".", "", "## Reading (generated from the numbers below)", "",
           *[f"- {label}: {verdict(diffs[label], adjusted[label])}"
             + (f" — *pairs runs from different CPUs ({', '.join(cpus)})*"
                if len(cpus := probe_machines(exp, kind, e, ref)) > 1 else "") for label, kind, e, ref in fam],
           f"- dose-response: {dose_trend(exp)}", ""]
    for kind, ref, title in (("frozen", "scratch", "frozen-encoder probe"),
                             ("frozen", "scratch_bn", "frozen-encoder probe, control: scratch weights with BN "
                                                      "statistics re-estimated on the train images"),
                             ("finetune", "scratch", "fine-tuned probe")):
        out += [f"## Main comparison: {ref} vs {exp.main}, {title}", "",
                _row(["metric", f"{ref} mean [95 % CI]", "SimIPU mean [95 % CI]", f"Δ SimIPU − {ref} [95 % CI]",
                      "p", "p (Holm)"]), "|---|---|---|---|---|---|"]
        label = next(lbl for lbl, k, e, r in fam if k == kind and e == exp.main and r == ref)
        for k in METRICS:
            d = compare(exp, kind, exp.main, ref, k)
            out.append(_row([NAMES[k], _mean_ci(by_seed(exp, kind, ref, k).values()),
                             _mean_ci(by_seed(exp, kind, exp.main, k).values()),
                             *_diff(d, adjusted[label] if k == "rmse" else None)]))
        out.append("")
    out += ["## Dose-response (paper Fig. 5 direction), frozen probe", "",
            "The paper: more pre-training data → lower depth RMSE. Here frames and steps grow together.", "",
            "![dose-response](fig5_dose_response.png)", "",
            _row(["frames", "steps", "pre-training wall s (s/step)", "RMSE [95 % CI]", "Δ RMSE vs scratch [95 % CI]",
                  "p", "p (Holm)", "Δ abs-rel vs scratch [95 % CI]"]), "|---|---|---|---|---|---|---|---|"]
    points = []
    for (f, s), (label, kind, e, ref) in zip(p.dose, fam):
        pre = records[exp.encoders[e].key]
        rmse = list(by_seed(exp, "frozen", e, "rmse").values())
        wall = f"{pre['wall_seconds']:.0f} ({pre['seconds_per_step']:.2f})" if pre else MISSING
        out.append(_row([str(f), str(s), wall, _mean_ci(rmse), *_diff(diffs[label], adjusted[label]),
                         _diff(compare(exp, "frozen", e, ref, "abs_rel"))[0]]))
        if rmse:
            mean, lo, hi = mean_ci(rmse)
            points.append(dict(steps=s, frames=f, mean=mean, ci_low=lo, ci_high=hi))
    scratch = list(by_seed(exp, "frozen", "scratch", "rmse").values())
    sc = dict(zip(("mean", "ci_low", "ci_high"), mean_ci(scratch))) if scratch else None
    control = list(by_seed(exp, "frozen", "scratch_bn", "rmse").values())
    plot_dose_response(points, sc, res / "fig5_dose_response.png",
                       control=dict(zip(("mean", "ci_low", "ci_high"), mean_ci(control))) if control else None)
    budget = "{}f/{}s".format(*p.ablation_budget)
    out += ["", f"## Table 5 ablations at {budget}, frozen probe, vs SimIPU at the same budget", "",
            "Paper (Table 5, 3D detection): greedy < Hungarian; λ=0 < full; μ=0 = scratch < full.", "",
            _row(["ablation", "RMSE [95 % CI]", "Δ RMSE vs SimIPU [95 % CI]", "p", "p (Holm)",
                  "Δ abs-rel vs SimIPU [95 % CI]"]), "|---|---|---|---|---|---|"]
    for label, kind, e, ref in fam[len(p.dose) + 2:]:
        name = e.split()[0]
        out.append(_row([LABELS[name], _mean_ci(by_seed(exp, "frozen", e, "rmse").values()),
                         *_diff(diffs[label], adjusted[label]), _diff(compare(exp, "frozen", e, ref, "abs_rel"))[0]]))
    out += ["", "## Pre-training runs (mean of the last 10 steps)", "",
            _row(["run", "steps", "wall s", "s/step", "L_intra", "L_inter", "intra top-1", "inter top-1",
                  "image encoder rel. change"]), "|---|---|---|---|---|---|---|---|---|"]
    for name, run in exp.encoders.items():
        rec = records.get(run.key) if run.kind == "pretrain" else None
        if run.kind != "pretrain":
            continue
        if rec is None:
            out.append(_row([name, MISSING, *[""] * 7]))
            continue
        s = {**rec["summary"]["last10_mean"], **dict.fromkeys(branch_off(rec["config"]["overrides"]), float("nan"))}
        out.append(_row([name, str(rec["summary"]["steps"]), f"{rec['wall_seconds']:.0f}", f"{rec['seconds_per_step']:.2f}",
                         _num(s.get("loss_intra")), _num(s.get("loss_inter")), _num(s.get("intra_top1")),
                         _num(s.get("inter_top1")), _num(rec["encoder"]["image_rel_change"])]))
    signal_runs = {r.name.removeprefix("signals "): [{**row, **dict.fromkeys(branch_off(
                       r.needs[0].config["overrides"]), float("nan"))} for row in records[r.key]["rows"]]
                   for r in planned if r.kind == "signals" and records[r.key] is not None}
    out += ["", "## Signals during pre-training (held-out val frames, every kept checkpoint)", ""]
    if signal_runs:
        plot_pretrain_signals(signal_runs, res / "pretrain_signals.png")
        out += ["Wrong positive pair: its two sides lie on different instances (generator ground truth); for "
                "L_inter the point's feature cell (stride 32) is dominated by another instance. Shares over all "
                "pairs / over pairs whose point is on an object.", "", "![signals](pretrain_signals.png)", "",
                _row(["run", "step", "L_intra", "L_inter", "intra top-1", "inter top-1", "intra wrong (objects)",
                      "inter wrong (objects)"]), "|---|---|---|---|---|---|---|---|"]
        for name, rows in signal_runs.items():
            for r in (rows[0], rows[-1]):
                out.append(_row([name, str(r["step"]), _num(r.get("loss_intra")), _num(r.get("loss_inter")),
                                 _num(r.get("intra_top1")), _num(r.get("inter_top1")),
                                 f"{_num(r.get('intra_wrong'))} ({_num(r.get('intra_wrong_objects'))})",
                                 f"{_num(r.get('inter_wrong'))} ({_num(r.get('inter_wrong_objects'))})"]))
    else:
        out.append(MISSING)
    out += ["", "## Every planned run", "", _row(["run", "key", "state", "wall s", "CPU"]), "|---|---|---|---|---|"]
    for r in planned:
        rec = records[r.key]
        out.append(_row([r.name, f"`{r.key}`", "done" if rec else MISSING,
                         f"{rec.get('wall_seconds', 0):.0f}" if rec else "", rec["machine"]["cpu"] if rec else ""]))
    res.mkdir(parents=True, exist_ok=True)
    (res / "experiment.md").write_text("\n".join(out) + "\n")
    print(f"wrote {res / 'experiment.md'} and {res / 'fig5_dose_response.png'}", flush=True)

