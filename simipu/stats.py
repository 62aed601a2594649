"""Paired comparisons for the downstream probes: mean difference, 95 % confidence interval, p, Holm.

Two initialisations probed with the same seeds give paired numbers ``x_i, y_i`` (seed ``i`` = same decoder
init and batch order), so the noise of the seed cancels in ``d_i = x_i − y_i``. With ``n`` seeds::

    d̄ = mean(d),  s = std(d, ddof=1),  CI = d̄ ± t_{0.975, n−1} · s / √n,  p = paired t-test (two-sided)

Several comparisons read from one experiment are corrected with Holm's step-down method (Holm 1979):
sort the m p-values, multiply the k-th smallest (k = 0, 1, …) by ``m − k``, take the running maximum and
cap at 1. It controls the family-wise error rate like Bonferroni and never rejects less.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def paired_difference(x, y, level: float = 0.95) -> dict:
    """Mean of ``x − y`` over paired seeds, its ``level`` t-interval and the paired t-test's p.

    Args:
        x, y: (n,) numbers of the same seeds, in the same order.
    Returns:
        ``dict(n, mean, std, ci_low, ci_high, p)``; with n < 2 or all differences equal the interval
        and p are NaN (no spread to estimate) — except all-zero differences, which give p = 1.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values need two 1-D arrays of one length, got shapes {x.shape} and {y.shape}")
    d = x - y
    n = len(d)
    out = dict(n=n, mean=float(d.mean()) if n else math.nan, std=math.nan, ci_low=math.nan, ci_high=math.nan,
               p=math.nan)
    if n < 2:
        return out
    s = float(d.std(ddof=1))
    out["std"] = s
    if s == 0:
        out["p"] = 1.0 if out["mean"] == 0 else math.nan
        return out
    half = stats.t.ppf(0.5 + level / 2, n - 1) * s / math.sqrt(n)
    out.update(ci_low=out["mean"] - half, ci_high=out["mean"] + half, p=float(stats.ttest_rel(x, y).pvalue))
    return out


def mean_ci(x, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the t-interval of the mean of ``x`` (n,); NaN bounds for n < 2."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return (float(x.mean()) if len(x) else math.nan), math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def holm(pvalues) -> list[float]:
    """Holm-adjusted p-values, in the input order; NaN entries stay NaN and do not count in m."""
    p = np.asarray(pvalues, np.float64)
    adjusted = np.full(p.shape, math.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    running = 0.0
    for k, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def per_seed_slope(x, y, level: float = 0.95) -> dict:
    """Trend of a metric over a sweep, seed by seed: least-squares slope of ``y[s]`` on ``x`` for each seed,
    then the mean slope with its t-interval and the one-sample t-test of slope = 0 across seeds.

    Args:
        x: (P,) sweep values (e.g. log2 of pre-training steps).
        y: (S, P) metric of seed s at point p (the same seeds at every point: a paired design).
    Returns:
        dict(n, mean, ci_low, ci_high, p, slopes (S,)).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if y.ndim != 2 or y.shape[1] != len(x) or len(x) < 2:
        raise ValueError(f"need y of shape (seeds, {len(x)}) and at least 2 sweep points, got {y.shape}")
    xc = x - x.mean()
    slopes = (y - y.mean(1, keepdims=True)) @ xc / (xc @ xc)            # (S,)
    mean, low, high = mean_ci(slopes, level)
    p = float(stats.ttest_1samp(slopes, 0.0).pvalue) if len(slopes) > 1 and slopes.std() > 0 else math.nan
    return dict(n=len(slopes), mean=mean, ci_low=low, ci_high=high, p=p, slopes=slopes.tolist())
