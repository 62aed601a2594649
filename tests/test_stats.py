"""simipu.stats: paired differences, t-intervals and Holm's correction, on numbers checked by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from simipu.stats import holm, mean_ci, paired_difference


def test_paired_difference_matches_scipy_ttest_rel_and_a_hand_computed_interval():
    x = [5.0, 6.0, 7.0, 9.0]
    y = [4.0, 6.0, 5.0, 6.0]
    r = paired_difference(x, y)
    # d = (1, 0, 2, 3): mean 1.5, std sqrt(5/3), t_{0.975,3} = 3.182446
    s = math.sqrt(5 / 3)
    assert r["n"] == 4 and r["mean"] == pytest.approx(1.5) and r["std"] == pytest.approx(s)
    half = 3.182446305284263 * s / 2
    assert r["ci_low"] == pytest.approx(1.5 - half) and r["ci_high"] == pytest.approx(1.5 + half)
    assert r["p"] == pytest.approx(sps.ttest_rel(x, y).pvalue)
    t = 1.5 / (s / 2)  # 2.3238
    assert r["p"] == pytest.approx(2 * sps.t.sf(t, 3))


def test_interval_excludes_zero_exactly_when_p_is_below_five_percent():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, y = rng.normal(size=8), rng.normal(size=8) + rng.normal() * 0.5
        r = paired_difference(x, y)
        assert (r["p"] < 0.05) == (r["ci_low"] > 0 or r["ci_high"] < 0)


def test_one_seed_or_no_spread_gives_no_interval():
    assert math.isnan(paired_difference([1.0], [0.0])["p"])
    r = paired_difference([2.0, 3.0], [1.0, 2.0])
    assert r["mean"] == 1.0 and math.isnan(r["p"]) and math.isnan(r["ci_low"])
    assert paired_difference([1.0, 2.0], [1.0, 2.0])["p"] == 1.0
    with pytest.raises(ValueError, match="one length"):
        paired_difference([1.0, 2.0], [1.0])


def test_holm_on_a_hand_computed_example():
    # sorted p: 0.01 (×4 = 0.04), 0.02 (×3 = 0.06), 0.03 (×2 = 0.06), 0.04 (×1 = 0.04 -> running max 0.06)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.01, float("nan"), 0.04])  # NaN does not count: m = 2
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_holm_never_below_the_raw_p_and_never_above_bonferroni():
    p = np.random.default_rng(1).uniform(0, 0.2, 12)
    adjusted = np.array(holm(p))
    assert np.all(adjusted >= p) and np.all(adjusted <= np.minimum(1, 12 * p) + 1e-12)


def test_mean_ci_is_the_one_sample_t_interval():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    half = sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (m, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))


def test_per_seed_slope_by_hand():
    from simipu.stats import per_seed_slope
    x = [0.0, 1.0, 2.0]
    y = [[3.0, 2.0, 1.0],     # slope −1
         [5.0, 5.0, 2.0],     # slope (2 − 5)/2 = −1.5 (least squares through 5, 5, 2)
         [1.0, 1.0, 1.5]]     # slope 0.25
    r = per_seed_slope(x, y)
    assert r["slopes"] == pytest.approx([-1.0, -1.5, 0.25])
    assert r["mean"] == pytest.approx(-0.75)
    assert r["p"] == pytest.approx(sps.ttest_1samp([-1.0, -1.5, 0.25], 0).pvalue)
    assert r["ci_low"] < r["mean"] < r["ci_high"]
    with pytest.raises(ValueError):
        per_seed_slope([0.0, 1.0], [[1.0, 2.0, 3.0]])
