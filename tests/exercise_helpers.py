"""Helpers for the checker tests: a wrong answer must fail with a message naming the mistake."""
from __future__ import annotations

import pytest

from simipu.exercises import ExerciseFailed


def fails(checker, fn, *words: str) -> str:
    """Run ``checker(fn)``; it must raise ExerciseFailed whose message contains every one of ``words``."""
    with pytest.raises(ExerciseFailed) as info:
        checker(fn)
    message = str(info.value)
    for w in words:
        assert w in message, f"{w!r} not in the feedback:\n{message}"
    return message
