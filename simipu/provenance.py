"""Where a result came from: the code's git commit and a fingerprint of the configuration.

Training checkpoints record both, and every export carries them on (with the steps trained), so a
backbone file found months later still says which code and which settings made it.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def source_commit(path: str | Path = _PACKAGE_DIR) -> str:
    """The git commit of the checkout holding ``path`` (this package by default).

    Returns the 40-hex commit, with ``+dirty`` appended when tracked files differ from it, or
    ``"unknown"`` when ``path`` is not inside a git checkout (e.g. an installed wheel) or git is missing.
    """
    def git(*args) -> str:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True,
                              timeout=20).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def config_sha256(config: dict | None) -> str | None:
    """SHA-256 of a config dict (``Config.to_dict()``), independent of key order; None for no config."""
    if config is None:
        return None
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
