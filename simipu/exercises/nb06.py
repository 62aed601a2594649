"""Exercises of notebook 06 (contrastive losses): InfoNCE and its top-1 accuracy by hand."""
from __future__ import annotations

import torch

from . import check
from ..losses import info_nce


def _cases(seed: int, n_cases: int = 5):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for i in range(n_cases):
        P, D = 4 + 7 * i, 16
        q = torch.randn(P, D, generator=g)
        k = q + 0.8 * torch.randn(P, D, generator=g)  # positives resemble their queries
        cases.append((q, k, (0.07, 0.2, 0.5, 1.0, 0.1)[i]))
    return cases


def check_info_nce(student_fn, seed: int = 0) -> bool:
    """``student_fn(q (P, D), k (P, D), temperature) -> 0-d loss tensor`` (Eq. 4 / Eq. 7, mean over pairs)."""
    return check(student_fn, lambda q, k, t: info_nce(q, k, t)[0], _cases(seed), name="info_nce", atol=1e-4,
                 hint="L2-normalise q and k, logits = q @ k.T / temperature, then the mean over rows of "
                      "-log softmax(logits)[i, i] (or F.cross_entropy(logits, arange(P))).")


def check_top1(student_fn, seed: int = 0) -> bool:
    """``student_fn(q (P, D), k (P, D), temperature) -> float`` share of queries whose most similar key is their own."""
    return check(student_fn, lambda q, k, t: float(info_nce(q, k, t)[1]), _cases(seed),
                 name="top1_accuracy", atol=1e-6,
                 hint="L2-normalise q and k first (the loss compares cosine similarities). Row i of q @ k.T holds the similarities of query i to every key; count the rows whose "
                      "argmax is i. (The temperature does not change an argmax; the third argument is unused.)")


__all__ = ["check_info_nce", "check_top1"]
