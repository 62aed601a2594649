"""Classroom exercises: run a student's function against the reference on random cases.

Each notebook's exercises live in ``simipu/exercises/nbXX.py`` as small functions
``check_<name>(student_fn)`` built on :func:`check`. A check prints one line per case summary,
``PASS`` or ``FAIL`` with a hint, and returns True/False (notebooks ``assert`` it in solution cells).

Student copies of the notebooks (solution cells removed) are written by
``python -m simipu.exercises strip notebooks/ --out student_notebooks/``.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch


def _close(a, b, atol: float) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_close(x, y, atol) for x, y in zip(a, b))
    if torch.is_tensor(a) or torch.is_tensor(b):
        a, b = torch.as_tensor(a).detach().cpu().double(), torch.as_tensor(b).detach().cpu().double()
        return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=0, equal_nan=False))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=0))
    return bool(np.isclose(float(a), float(b), atol=atol, rtol=0))


def check(student_fn: Callable, reference_fn: Callable, cases: Iterable[tuple], *, name: str,
          hint: str = "", atol: float = 1e-5, compare: Callable | None = None) -> bool:
    """Call both functions on every case (a tuple of arguments); PASS when all outputs agree.

    ``compare(student_out, reference_out, *args) -> bool`` replaces the default numeric comparison
    (e.g. to accept any valid answer where several are right).
    """
    cases = list(cases)
    for i, args in enumerate(cases):
        try:
            got = student_fn(*args)
        except NotImplementedError:
            print(f"FAIL {name}: not implemented yet. {hint}")
            return False
        except Exception as e:  # a student's bug: report it, don't crash the notebook
            print(f"FAIL {name}: case {i + 1} raised {type(e).__name__}: {e}. {hint}")
            return False
        want = reference_fn(*args)
        ok = compare(got, want, *args) if compare else _close(got, want, atol)
        if not ok:
            print(f"FAIL {name}: case {i + 1} of {len(cases)} differs from the reference. {hint}")
            return False
    print(f"PASS {name}: {len(cases)} random cases agree with the reference")
    return True
