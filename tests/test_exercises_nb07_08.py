"""The checkers of notebooks 07-08 pass the reference solutions and fail plausible wrong answers."""
import numpy as np
import torch

from simipu.exercises.nb07 import check_count_params, check_lr_at_step
from simipu.exercises.nb08 import check_delta1, check_silog_loss


def test_lr_checker_wants_the_decay_after_each_complete_epoch():
    assert check_lr_at_step(lambda lr0, gamma, step, spe: lr0 * gamma ** ((step - 1) // spe))
    # off by one at the epoch boundary: decays already on an epoch's last step
    assert not check_lr_at_step(lambda lr0, gamma, step, spe: lr0 * gamma ** (step // spe))
    # decays every step instead of every epoch
    assert not check_lr_at_step(lambda lr0, gamma, step, spe: lr0 * gamma ** (step - 1))


def _count(model, trainable_only=True):
    def n(*modules):
        return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad or not trainable_only)
    return dict(image=n(model.image_encoder), point=n(model.point_encoder),
                heads=n(model.point_head, model.point_key_head, model.image_head))


def test_count_params_checker_wants_trainable_parameters_per_optimiser():
    assert check_count_params(_count)
    assert not check_count_params(lambda m: _count(m, trainable_only=False))  # counts the frozen key head
    assert not check_count_params(lambda m: {k: len(v) for k, v in m.param_groups().items()})  # tensors, not elements


def _silog(pred, gt, alpha=10.0, lam=0.85, sign=-1.0, masked=True):
    valid = (gt > 1e-3) & (gt < 80) if masked else gt > 0
    g = torch.log(pred[valid]) - torch.log(gt[valid])
    return alpha * torch.sqrt(g.pow(2).mean() + sign * lam * g.mean().pow(2))


def test_silog_checker_wants_the_minus_sign_and_the_evaluation_range():
    assert check_silog_loss(_silog)
    assert not check_silog_loss(lambda p, d, alpha=10.0, lam=0.85: _silog(p, d, alpha, lam, sign=+1.0))
    assert not check_silog_loss(lambda p, d, alpha=10.0, lam=0.85: _silog(p, d, alpha, lam, masked=False))


def _delta1(pred, gt, two_sided=True):
    valid = (gt > 1e-3) & (gt < 80)
    p, d = pred[valid], gt[valid]
    ratio = np.maximum(p / d, d / p) if two_sided else p / d
    return float(np.mean(ratio < 1.25))


def test_delta1_checker_wants_the_two_sided_ratio_over_valid_pixels():
    assert check_delta1(_delta1)
    assert not check_delta1(lambda p, d: _delta1(p, d, two_sided=False))
    assert not check_delta1(lambda p, d: float(np.mean(np.maximum(p / np.maximum(d, 1e-3), d / p) < 1.25)))
