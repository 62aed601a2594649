"""The two InfoNCE losses of SimIPU (paper Eq. 4 and Eq. 7).

Both are the same contrastive loss over P matched pairs: row i of `q` must pick row i of `k`
among all P keys. They differ only in which side is detached:

- intra (Eq. 4): query = projected point feature of view a, key = of view b, keys detached
  (released code), negatives = all other matched keys of the whole batch;
- inter (Eq. 7): query = projected image feature f_g, key = projected point feature of view a,
  the point side detached ("we crop the gradient of f^α"), so L_inter teaches the image
  encoder and never moves the point encoder.

The paper writes the loss as a sum over pairs; like the released code (`nn.CrossEntropyLoss`)
we take the mean, so the loss scale does not depend on the number of pairs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.07):
    """InfoNCE with positives on the diagonal.

        L = -1/P Σ_i log( exp(q_i·k_i / τ) / Σ_j exp(q_i·k_j / τ) )

    q and k are L2-normalised here (callers may pass raw projection-head outputs).

    Args:
        q: (P, D) queries.
        k: (P, D) keys; k[i] is the positive of q[i], every other row a negative.
        temperature: τ (paper: 0.07).
    Returns:
        (loss, top1, top5): 0-d tensors; loss carries gradients, top1/top5 (no gradient) are
        the shares in [0, 1] of queries whose positive is among the 1 / 5 highest logits
        (top-5 uses min(5, P)).
    """
    if q.ndim != 2 or k.ndim != 2 or q.shape != k.shape:
        raise ValueError(f"q and k must both be (P, D) of the same shape, got {tuple(q.shape)} "
                         f"and {tuple(k.shape)}")
    if q.shape[0] == 0:
        raise ValueError("info_nce needs at least one pair, got P = 0")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    P = q.shape[0]
    # Always in float32, also under autocast: with τ = 0.07 logits reach ±14, where bf16 has
    # a resolution of 0.06.
    with torch.autocast(q.device.type, enabled=False):
        q = F.normalize(q.float(), dim=1)
        k = F.normalize(k.float(), dim=1)
        logits = q @ k.T / temperature  # (P, P), logits[i, j] = q_i·k_j / τ
        target = torch.arange(P, device=q.device)
        loss = F.cross_entropy(logits, target)
    with torch.no_grad():
        top1, top5 = topk_accuracy(logits, target, ks=(1, 5))
    return loss, top1, top5


def topk_accuracy(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> list[torch.Tensor]:
    """Share of rows whose target is among their k largest logits; k is clamped to the width.

    Args:
        logits: (P, C); target: (P,) int64 column index per row.
    Returns:
        one 0-d float tensor in [0, 1] per k.
    """
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # (P, kmax), best first
    hit = top == target[:, None]  # (P, kmax)
    return [hit[:, :min(k, kmax)].any(dim=1).float().mean() for k in ks]


def intra_loss(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.07):
    """Eq. 4: query = z_a[i] (view a), positive key = z_b[i] (its match in view b), negatives =
    every other matched key of the batch. Keys are detached: only the query side learns.

    Args:
        z_a: (P, D) projected features of the matched points of view a, all samples stacked.
        z_b: (P, D) projected features of their matches in view b, in the same order.
    Returns:
        (loss, top1, top5) as `info_nce`.
    """
    return info_nce(z_a, z_b.detach(), temperature)


def inter_loss(z_img: torch.Tensor, z_pts: torch.Tensor, temperature: float = 0.07):
    """Eq. 7: query = image feature sampled at the projection of point i, positive key = point
    i's feature, negatives = the other points of the batch. The point side is detached ("we crop
    the gradient of f^α"): L_inter trains the image branch only.

    Args:
        z_img: (P, D) projected image features f_g of the valid (in-image) points.
        z_pts: (P, D) projected point features f_a of the same points, same order.
    Returns:
        (loss, top1, top5) as `info_nce`.
    """
    return info_nce(z_img, z_pts.detach(), temperature)
