"""Output files written all or nothing, and output folders one run at a time.

``atomic_write`` fills ``NAME.tmp``, fsyncs it and renames it over ``NAME``: a reader never sees half a
file, a killed process leaves at most a ``.tmp``. Any failure — a full disk, a read-only file system, a
name too long, a folder where the file should go — removes the ``.tmp`` and the folders the call made,
and raises :class:`simipu.errors.OutputError` with the operating system's reason. ``hold_run_lock`` keeps
two runs from writing into one folder.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from pathlib import Path
from typing import BinaryIO, Callable

import torch

try:
    import fcntl
except ImportError:  # Windows: runs on the same folder are not locked
    fcntl = None

from .errors import OutputError


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError):
        text = e.strerror or str(e)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            text += " (the disk is full or a size limit is reached)"
        return text
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p``; returns the folders it made (outermost first). On failure it removes them again."""
    made = []
    try:
        todo, p = [], folder
        while not p.is_dir():
            todo.append(p)
            p = p.parent
        for p in reversed(todo):
            if p.exists() and not p.is_dir():
                raise OutputError(f"{p} exists and is not a folder")
            try:
                p.mkdir()
            except FileExistsError:  # another process made it since we looked (parallel runs share parents)
                if not p.is_dir():
                    raise OutputError(f"{p} exists and is not a folder") from None
                continue
            made.append(p)
    except OSError as e:
        _remove(made)
        raise OutputError(f"cannot create folder {folder}: {_reason(e)}") from None
    return made


def _remove(paths) -> None:
    for p in reversed(paths):
        try:
            p.rmdir() if p.is_dir() else p.unlink(missing_ok=True)
        except OSError:
            pass


def make_dirs(folder: str | Path) -> Path:
    """``mkdir -p folder``; on failure the folders it made are removed and :class:`OutputError` names it."""
    _make_dirs(Path(folder))
    return Path(folder)


class _Recorder:
    """A file wrapper that keeps the OSError of a failing ``write``: ``torch.save`` turns it into a
    ``RuntimeError`` that no longer says why (e.g. "unexpected pos 704 vs 598" on a full disk)."""

    def __init__(self, f: BinaryIO):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()

    def __getattr__(self, name):  # tell, seek, ... of the file
        return getattr(self.f, name)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file all or nothing: ``write(f)`` fills ``PATH.tmp``, which is fsynced and renamed to ``path``.

    Any failure (disk full, read-only file system, name too long, ``path`` a folder, an interrupt)
    removes the ``.tmp`` and the folders this call made; OS errors raise :class:`OutputError` naming
    ``path`` and the reason.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise OutputError(f"{path} is a folder; give a file name inside it")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_reason(e)}") from None
    made = _make_dirs(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            recorder = _Recorder(f)
            try:
                write(recorder)
            except RuntimeError as e:  # torch.save wraps the OSError of a failing write
                raise (recorder.error or e) from None
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        _remove([*made, tmp])
        if isinstance(e, (OSError, RuntimeError)):
            raise OutputError(f"cannot write {path}: {_reason(e)}") from None
        raise
    return path


def save_tensors(obj, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` through :func:`atomic_write`."""
    return atomic_write(path, lambda f: torch.save(obj, f))


@contextlib.contextmanager
def hold_run_lock(out: str | Path):
    """Hold ``OUT/.lock`` (an OS file lock, released even when the process is killed) while a run writes
    to ``out``; a second run on the same folder gets :class:`OutputError` naming the first one's process.
    Creates ``out``."""
    out = make_dirs(out)
    lock_path = out / ".lock"
    try:
        f = open(lock_path, "a+")
    except OSError as e:
        raise OutputError(f"cannot write {lock_path}: {_reason(e)}") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                owner = f.read(200).strip() or "a process that did not say which"
                raise OutputError(f"{out} is in use by another run ({owner}); wait for it to finish or "
                                  f"choose another output folder") from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
        except OSError:
            pass  # the lock holds without the note; a full disk is reported by the first real write
        yield out
    finally:
        f.close()
