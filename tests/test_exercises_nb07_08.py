"""The checkers of notebooks 07-08 pass the reference solutions and name the mistakes of wrong ones."""
import math

import numpy as np

from exercise_helpers import fails
from simipu.exercises.nb07 import check_count_params, check_kept_checkpoints
from simipu.exercises.nb08 import check_delta1, check_scale_for_loss


def _kept(max_steps, spe, every, keep):
    saved = [s for s in range(1, max_steps + 1) if (s % every == 0 if every else s % spe == 0) or s == max_steps]
    return saved[-keep:]


def test_kept_checkpoints_checker_wants_the_period_the_last_step_and_the_pruning():
    assert check_kept_checkpoints(_kept)
    fails(check_kept_checkpoints, lambda m, spe, e, k: _kept(m, spe, e, k + 1), "expected the steps")
    fails(check_kept_checkpoints, lambda m, spe, e, k: [s for s in _kept(m, spe, e, k) if s % (e or spe) == 0]
          or [0], "expected the steps")


def _count(model, trainable_only=True):
    def n(*modules):
        return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad or not trainable_only)
    return dict(image=n(model.image_encoder), point=n(model.point_encoder),
                heads=n(model.point_head, model.point_key_head, model.image_head))


def test_count_params_checker_wants_trainable_parameters_per_optimiser():
    assert check_count_params(_count)
    fails(check_count_params, lambda m: _count(m, trainable_only=False), "frozen")
    fails(check_count_params, lambda m: {k: len(v) for k, v in m.param_groups().items()}, "numel")


def test_scale_for_loss_checker_accepts_c_and_one_over_c():
    assert check_scale_for_loss(lambda L, a, lam: math.exp(L / (a * math.sqrt(1 - lam))))
    assert check_scale_for_loss(lambda L, a, lam: math.exp(-L / (a * math.sqrt(1 - lam))))
    fails(check_scale_for_loss, lambda L, a, lam: math.exp(L / (a * (1 - lam))), "square root of (1 − λ)")


def _delta1(pred, gt, two_sided=True):
    ok = (gt > 1e-3) & (gt < 80)
    p, d = pred[ok], gt[ok]
    r = np.maximum(p / d, d / p) if two_sided else p / d
    return float(np.mean(r < 1.25))


def test_delta1_checker_wants_the_two_sided_ratio_over_valid_pixels():
    assert check_delta1(_delta1)
    fails(check_delta1, lambda p, d: _delta1(p, d, two_sided=False), "BOTH directions")
