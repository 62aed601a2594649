"""Exercises of notebook 08 (downstream depth): which global scale error costs a given loss, and δ < 1.25."""
from __future__ import annotations

import math

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


def scale_for_loss_reference(loss: float, alpha: float, lam: float) -> float:
    """The global factor c > 1 for which ``silog_loss(c * gt, gt, alpha, lam) == loss``: c = exp(L / (α √(1 − λ)))."""
    return math.exp(loss / (alpha * math.sqrt(1.0 - lam)))


def _compare_scale(got, want, loss, alpha, lam):
    try:
        c = float(got)
    except (TypeError, ValueError):
        return f"expected a float, got {type(got).__name__}"
    if not (math.isfinite(c) and c > 0):
        return f"a scale factor must be a positive number, got {c}"
    gt = torch.tensor([2.0, 7.5, 20.0, 45.0, 70.0], dtype=torch.float64)
    measured = float(silog_loss(c * gt, gt, alpha=alpha, lam=lam))
    if not math.isclose(measured, loss, rel_tol=1e-6, abs_tol=1e-9):
        return (f"predicting {c:.6g} x the ground truth gives a loss of {measured:.6g}, not {loss:g} "
                f"(expected c = {want:.6g}, or 1/c)")
    return None


def check_scale_for_loss(student_fn):
    """``student_fn(loss, alpha, lam) -> c``: a prediction ``c * gt`` (right up to a global scale) costs ``loss``."""
    cases = [(1.0, 10.0, 0.85), (0.5, 10.0, 0.85), (2.0, 10.0, 0.5), (0.3, 1.0, 0.9), (0.0, 10.0, 0.85)]
    return check(student_fn, scale_for_loss_reference, cases, name="scale_for_loss", compare=_compare_scale,
                 mistakes=[("with λ = 1 there would be no such c at all; the loss sees only the part 1 − λ of the "
                            "squared mean: mind the square root of (1 − λ).",
                            lambda L, a, lam: math.exp(L / (a * (1.0 - lam)))),
                           ("α multiplies the square root: it divides L before the exponential, not after.",
                            lambda L, a, lam: math.exp(L / math.sqrt(1.0 - lam)) / a)],
                 hint="For pred = c · gt every g_i equals log c. Write the loss as a function of log c, then "
                      "solve for c.")


def check_delta1(student_fn, seed: int = 0):
    """``student_fn(pred, gt) -> float``: share of valid pixels (1e-3 < gt < 80) with max(d̂/d, d/d̂) < 1.25."""
    cases = [(p.numpy(), d.numpy()) for p, d in _cases(seed)]

    def one_sided(pred, gt):
        ok = (gt > 1e-3) & (gt < 80)
        return float(np.mean(pred[ok] / gt[ok] < 1.25))

    def unmasked(pred, gt):
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.mean(np.maximum(pred / gt, gt / pred) < 1.25))

    return check(student_fn, lambda p, d: depth_metrics(p, d)["delta1"], cases, name="delta1", atol=1e-9,
                 mistakes=[("an under-estimate by a factor 2 gives pred/gt = 0.5 < 1.25 and passes your test: the "
                            "ratio must be within 1.25 in BOTH directions.", one_sided),
                           ("pixels without ground truth (gt = 0) or beyond 80 m are not evaluated: average over "
                            "the valid pixels only.", unmasked)],
                 hint="Which pixels are evaluated, and when is a prediction 'within a factor 1.25' of the truth?")


__all__ = ["check_scale_for_loss", "check_delta1", "scale_for_loss_reference"]
