"""Exercises of notebook 06 (contrastive losses): the InfoNCE gradient by hand, and its top-1 accuracy."""
from __future__ import annotations

import torch
import torch.nn.functional as F

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


def similarity_grad_reference(q, k, temperature):
    """dL/dS for the InfoNCE loss L of ``simipu.losses.info_nce`` as a function of S = q̂ k̂ᵀ, by autograd."""
    S = (F.normalize(q, dim=1) @ F.normalize(k, dim=1).T).detach().requires_grad_(True)   # (P, P)
    loss = F.cross_entropy(S / temperature, torch.arange(len(q)))
    assert torch.allclose(loss, info_nce(q, k, temperature)[0], atol=1e-5)   # the same loss as the package's
    (grad,) = torch.autograd.grad(loss, S)
    return grad


def _grad_variant(tau=True, mean=True, sign=1.0):
    def grad(q, k, temperature):
        S = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T
        P = len(q)
        out = sign * (torch.softmax(S / temperature, dim=1) - torch.eye(P))
        return out / (temperature if tau else 1.0) / (P if mean else 1.0)
    return grad


def check_similarity_grad(student_fn, seed: int = 0):
    """``student_fn(q (P, D), k (P, D), temperature) -> (P, P)``: the gradient of the mean InfoNCE loss with
    respect to the cosine-similarity matrix S[i, j] = q̂_i · k̂_j, derived by hand (no autograd)."""
    return check(student_fn, similarity_grad_reference, _cases(seed), name="similarity_grad", atol=1e-5,
                 mistakes=[("the chain rule through S / τ brings a factor 1/τ.", _grad_variant(tau=False)),
                           ("the loss is a MEAN over the P queries: each row's gradient carries 1/P.",
                            _grad_variant(mean=False)),
                           ("both the 1/τ of the logits and the 1/P of the mean are missing.",
                            _grad_variant(tau=False, mean=False)),
                           ("the sign: the loss FALLS when the positive's similarity rises.", _grad_variant(sign=-1.0))],
                 hint="Write the loss of one row i as -S_ii/τ + log Σ_j exp(S_ij/τ), differentiate with respect to "
                      "S_ij (j = i and j ≠ i), then average over the rows.")


def _top1_variant(normalise=True, by_column=False):
    def top1(q, k, temperature):
        a, b = (F.normalize(q, dim=1), F.normalize(k, dim=1)) if normalise else (q, k)
        sim = a @ b.T
        return float((sim.argmax(0 if by_column else 1) == torch.arange(len(q))).float().mean())
    return top1


def check_top1(student_fn, seed: int = 0):
    """``student_fn(q (P, D), k (P, D), temperature) -> float`` share of queries whose most similar key is their own."""
    return check(student_fn, lambda q, k, t: float(info_nce(q, k, t)[1]), _cases(seed),
                 name="top1_accuracy", atol=1e-6,
                 mistakes=[("similarity here is the COSINE (the loss normalises q and k): raw dot products "
                            "favour long keys.", _top1_variant(normalise=False)),
                           ("for each QUERY (row) find its most similar key, not for each key its query.",
                            _top1_variant(by_column=True))],
                 hint="For each query, which key is most similar, and is it its own?")


__all__ = ["check_similarity_grad", "check_top1", "similarity_grad_reference"]
