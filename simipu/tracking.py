"""Where a run's logs go: TensorBoard always, Weights & Biases too with ``train.logger=wandb``.

:func:`open_tracker` returns one object with TensorBoard's ``SummaryWriter`` methods that training uses
(``add_scalar``, ``add_figure``, ``add_hparams``, ``close``); with W&B each call is also sent to a W&B run
whose id is kept in ``OUT/wandb_run_id.txt``, so ``--resume`` continues the same run. W&B is the optional
``wandb`` extra; its usual environment variables apply (``WANDB_MODE=offline`` logs to ``OUT/wandb/`` without an
account, ``WANDB_PROJECT`` names the project, default ``simipu``). Training code never imports W&B itself.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np

def _figure_rgb(fig) -> np.ndarray:
    """(H, W, 3) uint8 rendering of a matplotlib figure (no pyplot needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class Tracker:
    """TensorBoard's writer, mirrored to a W&B run when one is given."""

    def __init__(self, writer, wandb_run=None):
        self.writer, self.run = writer, wandb_run

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)
        if self.run is not None:
            self.run.log({tag: value}, step=step)

    def add_figure(self, tag: str, fig, step: int) -> None:
        if self.run is not None:
            import wandb
            self.run.log({tag: wandb.Image(_figure_rgb(fig))}, step=step)
        self.writer.add_figure(tag, fig, step)

    def add_hparams(self, hparams: dict, metrics: dict, run_name: str = ".") -> None:
        self.writer.add_hparams(hparams, metrics, run_name=run_name)
        if self.run is not None:
            self.run.summary.update(metrics)

    def close(self) -> None:
        self.writer.close()
        if self.run is not None:
            self.run.finish()


def open_tracker(cfg, out: str | Path) -> Tracker:
    """The tracker of a run writing to ``out`` (TensorBoard files in ``OUT/tensorboard``)."""
    from torch.utils.tensorboard import SummaryWriter
    out = Path(out)
    writer = SummaryWriter(str(out / "tensorboard"))
    if cfg.train.logger != "wandb":
        return Tracker(writer)
    try:
        import wandb
    except ModuleNotFoundError as err:
        writer.close()
        if err.name != "wandb":
            raise
        from .extras import missing_extra
        raise missing_extra("wandb", "train.logger=wandb") from None
    id_file = out / "wandb_run_id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(6)  # W&B ids: [a-z0-9]
    id_file.write_text(run_id + "\n")
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "simipu"), name=f"{cfg.name}:{out.name}", id=run_id,
                     resume="allow", dir=str(out), config=cfg.to_dict())
    return Tracker(writer, run)
