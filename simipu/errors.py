"""Errors that speak to the user: which file or setting, what is wrong, what was expected.

The command line prints these as one line and exits with code 2 (see :mod:`simipu.cli`).
"""
from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A data file (points, calibration, image, split list) is missing or malformed.

    ``DataError(path, problem)``. It survives a ``DataLoader`` worker: PyTorch re-raises a worker's
    exception in the main process as ``type(e)(text)`` with one argument, the worker's formatted
    traceback (``torch.utils.data._utils.worker`` via ``torch._utils.ExceptionWrapper.reraise``; a class
    that needs two arguments would come back as a bare ``RuntimeError``). Given that one argument, the
    error recovers its own line from the traceback's last line, so the message is the same one line as
    without workers, and keeps the worker's traceback in ``worker_traceback``.
    """

    def __init__(self, path: str | Path, problem: str | None = None):
        self.worker_traceback = None
        if problem is None:  # re-raised from a DataLoader worker (or built from one message)
            text = str(path)
            marker = f"{type(self).__module__}.{type(self).__qualname__}: "
            if marker in text:
                self.worker_traceback = text
                text = text[text.rindex(marker) + len(marker):].strip()
            path, _, problem = text.partition(": ")
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if problem else str(path))

    def __reduce__(self):  # pickle (e.g. across processes) with both arguments
        return type(self), (str(self.path), self.problem)


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped or impossible."""


class OutputError(ValueError):
    """An output file or folder cannot be written (exists as the wrong kind, read-only, disk full, name
    too long); nothing half-written is left behind."""
