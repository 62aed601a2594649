"""Figures of benchmarks/experiment.py: dose-response (paper Fig. 5 direction) and pre-training signals."""
from __future__ import annotations

from pathlib import Path


def plot_dose_response(points: list[dict], scratch: dict | None, path: str | Path, metric: str = "RMSE (m)",
                       title: str = "", control: dict | None = None) -> Path:
    """Mean and 95 % CI of a probe metric per pre-training budget, scratch as a horizontal band.

    Args:
        points: one dict per budget with ``steps``, ``frames``, ``mean``, ``ci_low``, ``ci_high``
            (CI bounds may be NaN when there is one seed); drawn in order of ``steps``.
        scratch: dict(mean, ci_low, ci_high) of the scratch encoder, or None.
        control: the same of a control encoder (e.g. scratch weights with recalibrated BN), or None.
        path: PNG to write.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = sorted(points, key=lambda p: p["steps"])
    if scratch is not None:
        ax.axhline(scratch["mean"], color="0.35", lw=1.5, label="scratch (no pre-training), mean")
        if np.isfinite(scratch["ci_low"]):
            ax.axhspan(scratch["ci_low"], scratch["ci_high"], color="0.35", alpha=0.15, label="scratch 95 % CI")
    if control is not None:
        ax.axhline(control["mean"], color="tab:orange", lw=1.5, ls="--",
                   label="control: scratch weights, BN statistics of the data")
        if np.isfinite(control["ci_low"]):
            ax.axhspan(control["ci_low"], control["ci_high"], color="tab:orange", alpha=0.12)
    if points:
        x = np.array([p["steps"] for p in points], float)
        y = np.array([p["mean"] for p in points])
        lo, hi = np.array([p["ci_low"] for p in points]), np.array([p["ci_high"] for p in points])
        ax.plot(x, y, "o-", color="tab:blue", lw=2, label="SimIPU pre-trained, mean")
        ok = np.isfinite(lo)
        ax.fill_between(x[ok], lo[ok], hi[ok], color="tab:blue", alpha=0.2, label="SimIPU 95 % CI")
        for p in points:
            ax.annotate(f"{p['frames']} frames", (p["steps"], p["mean"]), textcoords="offset points",
                        xytext=(4, 6), fontsize=8)
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{int(s)}" for s in x])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(xlabel="pre-training steps (batch 2; distinct frames annotated)", ylabel=metric,
           title=title or f"frozen-encoder depth probe on held-out frames: {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


SIGNAL_PANELS = (("loss_intra", "L_intra (held-out)"), ("loss_inter", "L_inter (held-out)"),
                 ("intra_top1", "intra top-1"), ("inter_top1", "inter top-1"),
                 ("intra_wrong_objects", "L_intra wrong positives, object points"),
                 ("inter_wrong_objects", "L_inter wrong positives, object points"))


def plot_pretrain_signals(runs: dict[str, list[dict]], path: str | Path) -> Path:
    """Held-out signals (:func:`simipu.signals.pretraining_signals`) against pre-training step.

    Args:
        runs: run label -> rows, each dict(step, and the keys of ``SIGNAL_PANELS``; missing = branch off).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    colors = dict(zip(runs, plt.cm.tab10(range(len(runs)))))
    for ax, (key, title) in zip(axes.T.ravel(), SIGNAL_PANELS):
        for label, rows in runs.items():
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), "o-", color=colors[label], label=label, ms=3, lw=1.2)
        ax.set(xlabel="pre-training step", title=title)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("SimIPU pre-training, measured on held-out frames at each kept checkpoint")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
