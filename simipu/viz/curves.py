"""Pictures: training curves, projections, point-to-pixel matches. Plotting lives here, not in the model."""
from __future__ import annotations

from pathlib import Path

import matplotlib


import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_training_curves(history: list[dict], path: str | Path | None = None, smooth: int = 5):
    """Loss (total, intra, inter) and top-1 accuracies against the step; saved to ``path`` if given."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    steps = np.array([r["step"] for r in history])
    for key, ax in (("loss", ax_loss), ("loss_intra", ax_loss), ("loss_inter", ax_loss),
                    ("intra_top1", ax_acc), ("inter_top1", ax_acc), ("intra_top5", ax_acc),
                    ("inter_top5", ax_acc)):
        if history and key in history[0]:
            y = np.array([r[key] for r in history], dtype=float)
            k = max(1, min(smooth, len(y)))
            y_s = np.convolve(y, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1:], y_s, label=key)
    ax_loss.set(xlabel="step", ylabel="InfoNCE loss", title=f"losses (moving mean over {smooth} steps)")
    ax_acc.set(xlabel="step", ylabel="contrastive accuracy", ylim=(0, 1), title="top-1 / top-5 accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
