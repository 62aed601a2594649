"""Checkpoints: atomic writes, keep the last k, load as data (``weights_only=True``), fall back when corrupt.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — no pickled code — so
``torch.load(path, weights_only=True)`` reads it, and a file carrying code is refused.
Files are ``OUT/checkpoints/step_00000120.pt``; a write goes to ``*.tmp`` first, is flushed to disk, then
renamed, so a run killed at any moment (even SIGKILL) leaves either the old or the new file, never half.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

_NAME = re.compile(r"^step_(\d{8})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not fit the model."""


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def list_checkpoints(out: str | Path) -> list[Path]:
    """Checkpoints of a run folder, oldest first (by step)."""
    d = checkpoint_dir(out)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(state: dict, out: str | Path, step: int, keep_last: int = 3) -> Path:
    """Write ``state`` atomically as ``OUT/checkpoints/step_{step:08d}.pt``; keep the newest ``keep_last``."""
    d = checkpoint_dir(out)
    path = d / f"step_{step:08d}.pt"
    tmp = path.with_name(path.name + ".tmp")
    try:
        d.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        kept = list_checkpoints(out)
        raise CheckpointError(
            f"cannot write checkpoint {path}: {e.strerror or e}. "
            + (f"The previous checkpoint {kept[-1]} is kept." if kept else "No earlier checkpoint exists.")
        ) from e
    for old in list_checkpoints(out)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint as data. Corrupt files and files carrying code raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(f"{path}: refused — the file carries Python objects or code, not just "
                                  f"tensors ({msg}). Only load checkpoints you trust, and never with "
                                  f"weights_only=False.") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): {msg}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(state).__name__}")
    return state


def load_latest(out: str | Path, map_location="cpu") -> tuple[Path, dict] | None:
    """The newest readable checkpoint of a run; a corrupt newest one is reported and skipped."""
    for path in reversed(list_checkpoints(out)):
        try:
            return path, load_checkpoint(path, map_location)
        except CheckpointError as e:
            warnings.warn(f"skipping unreadable checkpoint, falling back to the previous one: {e}",
                          stacklevel=2)
    return None


def model_state_from(obj: dict, path: str | Path = "checkpoint") -> dict:
    """The model's state dict from a training checkpoint (or a bare state dict)."""
    state = obj.get("model", obj)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no model state dict")
    return state


def load_model_state(model: torch.nn.Module, state: dict, stored_cfg: dict | None, cfg_dict: dict,
                     path: str | Path = "checkpoint") -> None:
    """``model.load_state_dict`` with a clear message when the checkpoint's model config differs."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        diff = ""
        if stored_cfg is not None:
            keys = _diff(stored_cfg, cfg_dict)
            if keys:
                diff = " Model settings that differ (checkpoint vs now): " + "; ".join(keys[:8]) + "."
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{path} does not fit this model ({first}).{diff}") from None


def _diff(a, b, prefix="model") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}.{k}")
        return out
    return [] if a == b else [f"{prefix}: {a!r} vs {b!r}"]
