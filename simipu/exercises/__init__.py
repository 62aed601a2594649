"""Classroom exercises: run a student's function against the reference on random cases, and say what is wrong.

Each notebook's exercises live in ``simipu/exercises/nbXX.py`` as ``check_<name>(student_fn)`` functions
built on :func:`check`. A check runs the student's function on copies of each case's inputs, with a time
limit, and compares it with the reference:

- **PASS**: every case agrees; the check returns a true :class:`Verdict`.
- **not implemented**: the function still raises ``NotImplementedError`` (a fresh student copy); the check
  says so and returns a false verdict, so "Run all" goes on to the next exercise.
- **FAIL**: a case differs, raises or runs too long; the check prints the failing case (argument shapes,
  expected against got: shape, first differing values) with a hint aimed at the mistake it recognises
  (a transpose, a sign, a missing factor, a square, a planted wrong variant), then raises
  :class:`ExerciseFailed` — the cell fails, as an ``assert`` would.

When a grader runs the notebook (``NBGRADER_EXECUTION`` set by nbgrader, or ``SIMIPU_GRADING=1`` set by
``python -m simipu.exercises grade``), "not implemented" fails too, so it scores no points.

Notebook authors write solutions between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` inside a function
body (nbgrader's convention); ``python -m simipu.exercises strip notebooks/ --out student_notebooks/`` replaces
them by ``raise NotImplementedError()`` and removes the answer keys (see ``simipu/exercises/__main__.py``).
"""
from __future__ import annotations

import copy
import inspect
import os
import signal
import threading
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

TIME_LIMIT = 20.0   # seconds per case: far above any reasonable solution, below a hung cell


class ExerciseFailed(AssertionError):
    """A student's function gave a wrong answer (or, when grading, none)."""


class _TimeLimit(Exception):
    pass


def grading() -> bool:
    """True under nbgrader's autograde/validate or ``python -m simipu.exercises grade``."""
    return (os.environ.get("NBGRADER_EXECUTION", "").lower() in ("autograde", "validate")
            or os.environ.get("SIMIPU_GRADING", "0") not in ("", "0", "false", "False"))


class Verdict:
    """What a check found: true only on PASS. Already printed, so it displays as nothing in a notebook."""

    def __init__(self, name: str, passed: bool, message: str, implemented: bool = True):
        self.name, self.passed, self.message, self.implemented = name, passed, message, implemented

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:   # the check printed its message already
        pass


# ---------------------------------------------------------------------------------------------- comparing

def _as_array(x) -> np.ndarray | None:
    try:
        if torch.is_tensor(x):
            return x.detach().cpu().double().numpy()
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def difference(got, want, atol: float) -> str | None:
    """None when ``got`` equals ``want`` within ``atol``; otherwise what differs, in words."""
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return f"expected a dict with keys {sorted(want)}, got " + (
                f"keys {sorted(got)}" if isinstance(got, dict) else type(got).__name__)
        for key in want:
            d = difference(got[key], want[key], atol)
            if d is not None:
                return f"[{key!r}]: {d}"
        return None
    if isinstance(want, (tuple, list)) and not isinstance(want, np.ndarray):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            kind = type(got).__name__
            return (f"expected a {type(want).__name__} of {len(want)} items, got "
                    + (f"a {kind} of {len(got)}" if isinstance(got, (tuple, list)) else f"a {kind}"))
        for k, (g, w) in enumerate(zip(got, want)):
            d = difference(g, w, atol)
            if d is not None:
                return f"item {k} of the returned {type(want).__name__}: {d}"
        return None
    g, w = _as_array(got), _as_array(want)
    if g is None:
        return f"expected a number or an array, got {type(got).__name__}"
    if g.shape != w.shape:
        return f"expected shape {tuple(w.shape)}, got shape {tuple(g.shape)}"
    if np.isnan(g).any() and not np.isnan(w).any():
        first = tuple(int(i) for i in np.argwhere(np.isnan(g))[0])
        return f"got NaN (first at index {first}); expected {_fmt(w[first])} there"
    bad = ~np.isclose(g, w, atol=atol, rtol=0)
    if not bad.any():
        return None
    show = (lambda x: str(bool(x))) if _is_bool(want) else _fmt
    if w.ndim == 0:
        return f"expected {show(float(w))}, got {show(float(g))}"
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    largest = "" if _is_bool(want) else f" (largest difference {_fmt(float(np.abs(g - w)[bad].max()))})"
    return (f"{int(bad.sum())} of {bad.size} values differ; first at index {first}: expected {show(w[first])}, "
            f"got {show(g[first])}{largest}")


def _is_integer(x) -> bool:
    if torch.is_tensor(x):
        return not (x.dtype.is_floating_point or x.dtype.is_complex)
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer)


def _is_bool(x) -> bool:
    return (torch.is_tensor(x) and x.dtype == torch.bool) or (isinstance(x, np.ndarray) and x.dtype == bool) \
        or isinstance(x, (bool, np.bool_))


def _close(got, want, atol: float) -> bool:
    return difference(got, want, atol) is None


def common_mistake(got, want, atol: float) -> str | None:
    """Recognise a transpose, a sign, a constant factor, a square or a square root, or a reordering."""
    g, w = _as_array(got), _as_array(want)
    if g is None or w is None or g.size == 0 or w.size == 0:
        return None
    if g.ndim == 2 and w.ndim == 2 and g.shape == w.shape[::-1] and np.allclose(g, w.T, atol=atol):
        return "your result is the transpose of the expected one (rows and columns swapped)."
    if g.shape != w.shape:
        return None
    if not g.any() and w.any():
        return "your result is all zeros: is the computation written yet, or is a result never stored?"
    if np.allclose(g, -w, atol=atol):
        return "your result has the wrong sign everywhere."
    integer = _is_integer(want)
    nz = np.abs(w) > 1e-9
    if nz.sum() >= 1 and not integer:
        ratio = g[nz] / w[nz]
        c = float(np.median(ratio))
        if abs(c - 1) > 1e-6 and np.isfinite(c) and np.allclose(g, c * w, atol=atol, rtol=1e-6):
            return (f"every value is {c:.4g} times the expected one: a factor is missing or extra "
                    "(a scale, a temperature, a division by a count?).")
    if integer:   # indices: only a reordering is worth naming
        same = g.ndim >= 1 and np.array_equal(np.sort(g, axis=None), np.sort(w, axis=None))
        return "you have the right indices in the wrong order." if same else None
    if np.allclose(g, w ** 2, atol=atol):
        return "your values are the squares of the expected ones: a square root is missing."
    if (w >= 0).all() and np.allclose(g ** 2, w, atol=atol) and not np.allclose(g, w, atol=atol):
        return "your values are the square roots of the expected ones: squared values were asked for."
    if g.ndim >= 1 and np.allclose(np.sort(g, axis=None), np.sort(w, axis=None), atol=atol):
        return "you have the right values in the wrong order."
    return None


# ---------------------------------------------------------------------------------------------- running

def _copy(args: tuple) -> tuple:
    """Fresh copies, so a function that writes into its inputs cannot change the next call's."""
    return tuple(copy.deepcopy(a) for a in args)


def _call_bounded(fn: Callable, args: tuple, seconds: float):
    """``fn(*args)``; raises _TimeLimit after ``seconds`` where a timer signal is available (Unix, main thread)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return fn(*args)

    def alarm(signum, frame):
        raise _TimeLimit

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _describe_args(fn: Callable, args: Sequence) -> str:
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    names += [f"arg{i}" for i in range(len(names), len(args))]
    parts = []
    for name, a in zip(names, args):
        if torch.is_tensor(a) or isinstance(a, np.ndarray):
            parts.append(f"{name}: {type(a).__name__} {tuple(a.shape)} {str(a.dtype).replace('torch.', '')}")
        elif isinstance(a, (int, float, bool, str)) or a is None:
            parts.append(f"{name}={a!r}")
        else:
            parts.append(f"{name}: {type(a).__name__}")
    return ", ".join(parts)


def _report(name: str, passed: bool, message: str, implemented: bool = True) -> Verdict:
    print(message)
    verdict = Verdict(name, passed, message, implemented)
    if not passed and (implemented or grading()):
        raise ExerciseFailed(message)
    return verdict


def not_implemented(name: str) -> Verdict:
    """The verdict on a function that still raises NotImplementedError."""
    return _report(name, False, f"not implemented: {name} — replace `raise NotImplementedError()` with your "
                                f"code, then run this cell again", implemented=False)


def check(student_fn: Callable, reference_fn: Callable, cases: Iterable[tuple], *, name: str,
          hint: str = "", atol: float = 1e-5, compare: Callable | None = None,
          mistakes: Sequence[tuple[str, Callable]] = (), time_limit: float = TIME_LIMIT) -> Verdict:
    """Call both functions on every case (a tuple of arguments); PASS when all outputs agree.

    ``compare(got, want, *args)`` replaces the numeric comparison; it returns None when ``got`` is right
    (several answers may be), or a sentence saying what is wrong. ``mistakes`` lists ``(hint, wrong_fn)``:
    when the student's output equals ``wrong_fn(*args)``, that hint is shown. ``hint`` is the fallback
    when no mistake is recognised; it should point at the idea, not dictate the code.
    """
    cases = list(cases)
    for i, args in enumerate(cases):
        where = f"case {i + 1} of {len(cases)} ({_describe_args(student_fn, args)})"
        t0 = time.perf_counter()
        try:
            got = _call_bounded(student_fn, _copy(args), time_limit)
        except NotImplementedError:
            return not_implemented(name)
        except _TimeLimit:
            return _report(name, False, f"FAIL {name}: {where} ran for more than {time_limit:.0f} s and was "
                                        "stopped. Look for a loop that could be one tensor operation.")
        except Exception as e:  # a student's bug: report it with the case that triggered it
            return _report(name, False, f"FAIL {name}: {where} raised {type(e).__name__}: {e}"
                                        + (f"\n  hint: {hint}" if hint else ""))
        seconds = time.perf_counter() - t0
        want = reference_fn(*_copy(args))
        wrong = compare(got, want, *args) if compare else difference(got, want, atol)
        if wrong is not None:
            specific = None
            for mistake_hint, wrong_fn in mistakes:
                try:
                    if difference(got, wrong_fn(*_copy(args)), atol) is None:
                        specific = mistake_hint
                        break
                except Exception:  # a planted variant may not apply to every case
                    continue
            specific = specific or (None if compare else common_mistake(got, want, atol))
            return _report(name, False, f"FAIL {name}: {where}: {wrong}"
                                        + (f"\n  hint: {specific or hint}" if (specific or hint) else ""))
        if seconds > time_limit / 2:
            print(f"  note: case {i + 1} took {seconds:.1f} s; the time limit is {time_limit:.0f} s")
    return _report(name, True, f"PASS {name}: {len(cases)} cases agree with the reference")


__all__ = ["check", "difference", "common_mistake", "grading", "not_implemented", "ExerciseFailed", "Verdict"]
