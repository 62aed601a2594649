"""Checkpoints: atomic writes, keep the last k, load as data (``weights_only=True``), validate, fall back
when corrupt.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — no pickled code — so
``torch.load(path, weights_only=True)`` reads it, and a file carrying code is refused.
Files are ``OUT/checkpoints/step_00000120.pt``; a write goes to ``*.tmp`` first, is flushed to disk, then
renamed, so a run killed at any moment (even SIGKILL) leaves either the old or the new file, never half.
A write that fails (disk full, read-only, name too long) removes its ``*.tmp`` and raises one clear error
(:mod:`simipu.outputs`).
A checkpoint whose tensors hold NaN or inf is never written, and is refused when read for export,
inspection, the depth probe or a resume.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from .config import IMAGE_BACKBONES, Config, check_tree_size, config_from_dict
from .errors import ConfigError, OutputError
from .outputs import save_tensors

_NAME = re.compile(r"^step_(\d{8})\.pt$")
# A training checkpoint (see simipu.train): key -> type
TRAINING_KEYS = {"model": dict, "optimizers": list, "schedulers": list, "scaler": dict,
                 "torch_rng": torch.Tensor, "step": int, "history": list, "config": dict}
# Settings that may differ between a checkpoint and the run that resumes it: where things are, how long
# to run, how often to log and save. Any other difference needs allow_config_change (--allow-config-change).
RUN_KEYS = ("name", "data.root", "data.num_workers", "train.out", "train.max_steps", "train.epochs",
            "train.device", "train.threads", "train.log_every", "train.ckpt_every", "train.keep_last")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not fit the model."""


# --- checkpoints of a run ---------------------------------------------------------------------------

def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def list_checkpoints(out: str | Path) -> list[Path]:
    """Checkpoints of a run folder, oldest first (by step)."""
    d = checkpoint_dir(out)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def remove_stale_tmp(out: str | Path) -> list[Path]:
    """Delete ``OUT/checkpoints/*.tmp`` left by a run killed while writing; returns what was removed."""
    d = checkpoint_dir(out)
    stale = sorted(d.glob("*.tmp")) if d.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def float_tensors(obj, key: str = ""):
    """``(key, tensor)`` of every floating-point tensor inside nested dicts and lists."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield key, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from float_tensors(v, f"{key}.{k}" if key else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from float_tensors(v, f"{key}[{i}]")


def nonfinite_keys(obj) -> list[str]:
    """Keys (as :func:`float_tensors` names them) of the tensors holding NaN or inf."""
    return [k for k, t in float_tensors(obj) if not bool(torch.isfinite(t).all())]


def save_checkpoint(state: dict, out: str | Path, step: int, keep_last: int = 3) -> Path:
    """Write ``state`` atomically as ``OUT/checkpoints/step_{step:08d}.pt``; keep the newest ``keep_last``.

    Refuses (:class:`CheckpointError`, nothing written) a state whose tensors hold NaN or inf.
    """
    path = checkpoint_dir(out) / f"step_{step:08d}.pt"
    bad = nonfinite_keys(state)
    if bad:
        raise CheckpointError(f"not writing checkpoint {path}: {len(bad)} tensors hold NaN or inf "
                              f"(e.g. {', '.join(bad[:3])})")
    try:
        save_tensors(state, path)
    except OutputError as e:
        kept = list_checkpoints(out)
        why = str(e).replace("cannot write ", "", 1) if str(e).startswith("cannot write ") else f"{path}: {e}"
        raise CheckpointError(
            f"cannot write checkpoint {why}. "
            + (f"The previous checkpoint {kept[-1]} is kept." if kept else "No earlier checkpoint exists.")
        ) from None
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


# --- what a checkpoint holds ------------------------------------------------------------------------

def check_finite(obj, path: str | Path, what: str = "weights") -> None:
    """:class:`CheckpointError` when a floating-point tensor in ``obj`` holds NaN or inf."""
    bad = nonfinite_keys(obj)
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} {what} tensors hold NaN or inf (e.g. {', '.join(bad[:3])}); "
                              f"the run that wrote it had diverged — use an earlier checkpoint")


def model_state_from(obj: dict, path: str | Path = "checkpoint") -> dict:
    """The model's state dict from a training checkpoint (or a bare state dict); all tensors finite."""
    state = obj.get("model", obj)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no model state dict (expected a 'model' entry of named tensors)")
    check_finite(state, path)
    return state


def _short(x) -> str:
    """A safe description of a value read from a file: strings clipped, other values by type only (the
    repr of shared nested lists can be exponentially long)."""
    return repr(x[:80]) if isinstance(x, str) else type(x).__name__


def stored_arch(obj: dict, path: str | Path = "checkpoint") -> str:
    """The image backbone recorded in a checkpoint's ``config.model.image_backbone`` (``resnet50`` when the
    file records none); only torchvision ResNet names are accepted, never another callable."""
    cfg = obj.get("config", {})
    model = cfg.get("model", {}) if isinstance(cfg, dict) else None
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: 'config' must be a mapping with a 'model' mapping, found {_short(cfg)}")
    arch = model.get("image_backbone", "resnet50")
    if arch not in IMAGE_BACKBONES:
        raise CheckpointError(f"{path}: config.model.image_backbone must be one of {', '.join(IMAGE_BACKBONES)}, "
                              f"got {_short(arch)}")
    return arch


def stored_config(obj: dict, path: str | Path = "checkpoint") -> Config:
    """The validated :class:`Config` a training checkpoint records (size-checked before it is expanded)."""
    if not isinstance(obj.get("config"), dict):
        raise CheckpointError(f"{path}: has no 'config' mapping (found {_short(obj.get('config'))}); "
                              f"is it a SimIPU training checkpoint?")
    try:
        return config_from_dict(obj["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: its config is not valid here: {e}") from None


def _diff(a, b, prefix: str) -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k, "(absent)"), b.get(k, "(absent)"), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [(prefix, a, b)]


def config_differences(stored: dict, now: dict, ignore=RUN_KEYS) -> list[str]:
    """``"key: stored vs now"`` for every setting that differs, except the ``ignore`` keys (and below)."""
    return [f"{k}: {a!r} vs {b!r}" for k, a, b in _diff(stored, now, "")
            if not any(k == i or k.startswith(i + ".") for i in ignore)]


def check_resumable(state: dict, path: str | Path, cfg_dict: dict, n_optimizers: int,
                    allow_config_change: bool = False) -> None:
    """A training checkpoint that this run can continue: every entry present with its type, one state per
    optimiser and scheduler, finite tensors, and the same settings (``RUN_KEYS`` aside) unless
    ``allow_config_change``. Raises :class:`CheckpointError` saying what is wrong."""
    missing = [k for k in TRAINING_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a resumable training checkpoint: missing {missing} "
                              f"(expected {', '.join(TRAINING_KEYS)})")
    for k, typ in TRAINING_KEYS.items():
        if not isinstance(state[k], typ) or (typ is int and isinstance(state[k], bool)):
            raise CheckpointError(f"{path}: '{k}' must be of type {typ.__name__}, found {type(state[k]).__name__}")
    for k in ("optimizers", "schedulers"):
        if len(state[k]) != n_optimizers or not all(isinstance(s, dict) for s in state[k]):
            raise CheckpointError(f"{path}: '{k}' holds {len(state[k])} entries, this run has {n_optimizers} "
                                  f"(SGD image, AdamW points, SGD heads); resuming would restart them")
    for i, s in enumerate(state["optimizers"]):
        if not isinstance(s.get("state"), dict) or not isinstance(s.get("param_groups"), list):
            raise CheckpointError(f"{path}: optimizers[{i}] lacks 'state' and 'param_groups'")
    for i, s in enumerate(state["schedulers"]):
        if not isinstance(s.get("last_epoch"), int) or not isinstance(s.get("base_lrs"), list):
            raise CheckpointError(f"{path}: schedulers[{i}] lacks 'last_epoch' and 'base_lrs'")
    if state["torch_rng"].dtype != torch.uint8:
        raise CheckpointError(f"{path}: 'torch_rng' must be a uint8 tensor, found {state['torch_rng'].dtype}")
    if state["step"] < 0 or len(state["history"]) != state["step"]:
        raise CheckpointError(f"{path}: step {state['step']} but {len(state['history'])} history rows")
    if not all(isinstance(r, dict) and all(isinstance(v, (int, float)) for v in r.values())
               for r in state["history"]):
        raise CheckpointError(f"{path}: 'history' must hold one mapping of numbers per step")
    model_state_from(state, path)
    check_finite(state["optimizers"], path, "optimiser state")
    try:
        check_tree_size(state["config"], "its config")
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if not allow_config_change:
        diff = config_differences(state["config"], cfg_dict)
        if diff:
            raise CheckpointError(
                f"{path} does not fit this model and training settings: {len(diff)} differ (checkpoint vs now): "
                + "; ".join(diff[:8]) + ("; ..." if len(diff) > 8 else "")
                + ". Resume with the run's settings, or pass --allow-config-change "
                  "(pretrain(..., allow_config_change=True)) to continue with the new ones")


def load_model_state(model: torch.nn.Module, state: dict, stored_cfg: dict | None, cfg_dict: dict,
                     path: str | Path = "checkpoint") -> None:
    """``model.load_state_dict`` with a clear message when the checkpoint's model config differs."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        diff = ""
        if isinstance(stored_cfg, dict):
            keys = config_differences({"model": stored_cfg}, {"model": cfg_dict}, ignore=())
            if keys:
                diff = " Model settings that differ (checkpoint vs now): " + "; ".join(keys[:8]) + "."
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{path} does not fit this model ({first}).{diff}") from None
