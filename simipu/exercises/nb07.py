"""Exercises of notebook 07 (pre-training from a cell): which checkpoints a run leaves, parameters per optimiser."""
from __future__ import annotations

import torch

from . import check
from ..config import load_config
from ..model import SimIPU


def kept_checkpoints_reference(max_steps: int, steps_per_epoch: int, ckpt_every: int, keep_last: int) -> list[int]:
    """The steps whose checkpoint files remain after a fresh run, by the rule of ``simipu.train``: a checkpoint
    every ``ckpt_every`` steps (0: at the end of every epoch) and at the last step; the newest ``keep_last`` kept."""
    saved = [s for s in range(1, max_steps + 1)
             if (s % ckpt_every == 0 if ckpt_every else s % steps_per_epoch == 0) or s == max_steps]
    return saved[-keep_last:]


def _kept_variant(every_epoch_too=False, forget_last=False):
    def kept(max_steps, steps_per_epoch, ckpt_every, keep_last):
        saved = [s for s in range(1, max_steps + 1)
                 if (ckpt_every and s % ckpt_every == 0) or (every_epoch_too or not ckpt_every)
                 and s % steps_per_epoch == 0 or (s == max_steps and not forget_last)]
        return saved[-keep_last:]
    return kept


def _compare_steps(got, want, *args):
    try:
        got = [int(s) for s in got]
    except (TypeError, ValueError):
        return f"expected a list of step numbers, got {type(got).__name__}"
    if got != want:
        return f"expected the steps {want}, got {got}"
    return None


def check_kept_checkpoints(student_fn):
    """``student_fn(max_steps, steps_per_epoch, ckpt_every, keep_last) -> sorted list of steps`` whose files remain."""
    cases = [(100, 6, 0, 3), (100, 6, 25, 3), (90, 6, 25, 2), (7, 6, 0, 3), (300, 6, 50, 3), (5, 6, 0, 2),
             (12, 4, 5, 10)]
    return check(student_fn, kept_checkpoints_reference, cases, name="kept_checkpoints", compare=_compare_steps,
                 mistakes=[("with ckpt_every > 0 the trainer does NOT also save at every epoch's end: that is "
                            "what keeps a long toy run from writing a checkpoint every few steps.",
                            _kept_variant(every_epoch_too=True)),
                           ("the last step is always saved, whether or not it falls on the period: a run must "
                            "be resumable where it stopped.", _kept_variant(forget_last=True))],
                 hint="List every step at which a checkpoint is written, then think about which of them the "
                      "pruning leaves on disk.")


def count_params_reference(model: SimIPU) -> dict:
    return {name: sum(p.numel() for p in params) for name, params in model.param_groups().items()}


def _models():
    torch.manual_seed(0)
    tiny = load_config("tiny")
    return [SimIPU(tiny.model),
            SimIPU(load_config("tiny", ["model.image_backbone=resnet34", "model.proj_dim=64",
                                        "model.point_proj_hidden=128"]).model)]


def _count_all(model):
    def count(*modules):
        return sum(p.numel() for m in modules for p in m.parameters())
    return dict(image=count(model.image_encoder), point=count(model.point_encoder),
                heads=count(model.point_head, model.point_key_head, model.image_head))


def _count_tensors(model):
    def count(*modules):
        return sum(1 for m in modules for p in m.parameters() if p.requires_grad)
    return dict(image=count(model.image_encoder), point=count(model.point_encoder),
                heads=count(model.point_head, model.point_key_head, model.image_head))


def _compare_counts(got, want, *args):
    try:
        got = {k: int(v) for k, v in dict(got).items()}
    except (TypeError, ValueError):
        return f"expected a dict(image=..., point=..., heads=...) of ints, got {type(got).__name__}"
    if got != want:
        return f"expected {want}, got {got}"
    return None


def check_count_params(student_fn):
    """``student_fn(model: SimIPU) -> dict(image=int, point=int, heads=int)``: trainable parameters per optimiser."""
    return check(student_fn, count_params_reference, [(m,) for m in _models()], name="count_params",
                 compare=_compare_counts,
                 mistakes=[("one head is frozen (requires_grad=False): no optimiser holds it, so it is not counted.",
                            _count_all),
                           ("count elements (p.numel()), not tensors.", _count_tensors)],
                 hint="Which modules does each optimiser update, and which parameters does it actually hold?")


__all__ = ["check_kept_checkpoints", "check_count_params", "kept_checkpoints_reference"]
