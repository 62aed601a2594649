"""Errors that speak to the user: which file or setting, what is wrong, what was expected."""
from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A data file (points, calibration, image, split list) is missing or malformed."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped or impossible."""
