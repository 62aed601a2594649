"""Exercises of notebook 08 (downstream depth): the scale-invariant loss and the δ < 1.25 accuracy by hand."""
from __future__ import annotations

import numpy as np
import torch

from . import check
from ..depth import depth_metrics, silog_loss


def _depth_pair(g: torch.Generator, shape, noise: float):
    """Ground truth in (1, 90) m with holes (0 = no value) and some pixels beyond 80 m; a noisy prediction."""
    gt = torch.empty(shape).uniform_(1.0, 90.0, generator=g)
    gt[torch.rand(shape, generator=g) < 0.3] = 0.0                                   # no ground truth here
    pred = torch.empty(shape).uniform_(1.0, 90.0, generator=g).clamp(max=79.0)
    close = torch.rand(shape, generator=g) < 0.6                                     # most pixels roughly right
    pred[close] = (gt[close].clamp(min=1.0) * torch.exp(noise * torch.randn(shape, generator=g)[close])).clamp(0.5, 79.0)
    return pred, gt


def _cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    shapes = [(2, 1, 6, 9), (1, 1, 16, 48), (4, 1, 8, 8), (3, 1, 5, 7)]
    return [_depth_pair(g, s, noise) for s, noise in zip(shapes, (0.1, 0.3, 0.05, 0.5))]


def check_silog_loss(student_fn, seed: int = 0) -> bool:
    """``student_fn(pred, gt, alpha=10.0, lam=0.85) -> 0-d tensor``: Eq. 9 over pixels with 1e-3 < gt < 80 m."""
    cases = [(p, d, a, l) for (p, d), a, l in zip(_cases(seed), (10.0, 10.0, 1.0, 10.0), (0.85, 0.85, 0.5, 1.0))]
    return check(student_fn, lambda p, d, a, l: silog_loss(p, d, alpha=a, lam=l), cases, name="silog_loss",
                 atol=1e-4,
                 hint="Keep only pixels with 1e-3 < gt < 80 (0 means 'no ground truth'); g = log(pred) - log(gt); "
                      "L = alpha * sqrt(mean(g**2) - lam * mean(g)**2) — a minus sign and mean(g) squared, "
                      "not the sum (the paper's typeset Eq. 9 has both slips).")


def check_delta1(student_fn, seed: int = 0) -> bool:
    """``student_fn(pred, gt) -> float``: share of valid pixels (1e-3 < gt < 80) with max(d̂/d, d/d̂) < 1.25."""
    cases = [(p.numpy(), d.numpy()) for p, d in _cases(seed)]
    return check(student_fn, lambda p, d: depth_metrics(p, d)["delta1"], cases, name="delta1", atol=1e-9,
                 hint="Mask first (1e-3 < gt < 80), then the ratio must be below 1.25 in both directions: "
                      "np.maximum(pred / gt, gt / pred) < 1.25, averaged over the valid pixels only.")


__all__ = ["check_silog_loss", "check_delta1"]
