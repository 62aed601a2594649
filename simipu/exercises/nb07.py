"""Exercises of notebook 07 (pre-training from a cell): the decayed learning rate, parameters per optimiser."""
from __future__ import annotations

import math

import torch

from . import check
from ..config import load_config
from ..model import SimIPU


def lr_at_step_reference(lr0: float, gamma: float, step: int, steps_per_epoch: int) -> float:
    """The rate an optimiser uses at 1-based ``step``, found by running ``ExponentialLR`` as ``simipu.train`` does:
    one optimiser step, then one scheduler step whenever ``step % steps_per_epoch == 0``."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    for s in range(1, step):           # the steps before this one; an epoch ends after step s
        opt.step()                     # (no gradient: nothing moves, but the order is the trainer's)
        if s % steps_per_epoch == 0:
            sched.step()
    return opt.param_groups[0]["lr"]


def check_lr_at_step(student_fn, seed: int = 0) -> bool:
    """``student_fn(lr0, gamma, step, steps_per_epoch) -> float``: the learning rate used at 1-based ``step``."""
    g = torch.Generator().manual_seed(seed)
    cases = [(0.03, 0.99, 1, 6), (0.03, 0.99, 6, 6), (0.03, 0.99, 7, 6), (1e-3, 0.99, 300, 6),
             (1e-3, 0.9, 61, 10), (0.03, 0.99, 3000, 3000)]
    for _ in range(4):
        spe = int(torch.randint(1, 20, (), generator=g))
        cases.append((float(torch.empty(()).uniform_(1e-4, 0.1, generator=g)), 0.95, spe * int(torch.randint(1, 9, (), generator=g)), spe))
    return check(student_fn, lr_at_step_reference, cases, name="lr_at_step",
                 compare=lambda got, want, *args: math.isclose(float(got), want, rel_tol=1e-9),
                 hint="The first epoch (steps 1..steps_per_epoch) runs at lr0; the scheduler multiplies by gamma "
                      "only after an epoch's last step. How many epochs are complete *before* this step?")


def count_params_reference(model: SimIPU) -> dict:
    return {name: sum(p.numel() for p in params) for name, params in model.param_groups().items()}


def _models():
    torch.manual_seed(0)
    tiny = load_config("tiny")
    return [SimIPU(tiny.model),
            SimIPU(load_config("tiny", ["model.image_backbone=resnet34", "model.proj_dim=64",
                                        "model.point_proj_hidden=128"]).model)]


def check_count_params(student_fn) -> bool:
    """``student_fn(model: SimIPU) -> dict(image=int, point=int, heads=int)``: trainable parameters per optimiser."""
    return check(student_fn, count_params_reference, [(m,) for m in _models()], name="count_params",
                 compare=lambda got, want, *args: {k: int(v) for k, v in dict(got).items()} == want,
                 hint="image: model.image_encoder; point: model.point_encoder; heads: the projection heads. "
                      "Count elements (p.numel()), not tensors, and only trainable ones (p.requires_grad): "
                      "point_key_head is frozen, so no optimiser holds it.")


__all__ = ["check_lr_at_step", "check_count_params"]
