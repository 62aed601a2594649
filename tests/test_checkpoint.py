"""Checkpoints are written atomically, kept k deep, read as data only, and skipped when corrupt."""
import os
import pickle

import pytest
import torch

from simipu.checkpoint import (CheckpointError, list_checkpoints, load_checkpoint, load_latest,
                               save_checkpoint)


def _state(x):
    return {"model": {"w": torch.full((3,), float(x))}, "step": x}


def test_keeps_only_the_last_k(tmp_path):
    for s in range(1, 6):
        save_checkpoint(_state(s), tmp_path, s, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004.pt", "step_00000005.pt"]
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_corrupt_latest_falls_back_to_the_previous(tmp_path):
    save_checkpoint(_state(1), tmp_path, 1)
    latest = save_checkpoint(_state(2), tmp_path, 2)
    latest.write_bytes(latest.read_bytes()[:50])  # truncated, as by a full disk
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(latest)
    with pytest.warns(UserWarning, match="falling back"):
        path, state = load_latest(tmp_path)
    assert state["step"] == 1 and path.name == "step_00000001.pt"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_carrying_code_is_refused(tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Evil()}, bad, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(bad)


def test_unwritable_output_gives_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").write_text("a file where the folder should be")
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*No earlier checkpoint"):
        save_checkpoint(_state(1), tmp_path, 1)


def test_disk_full_gives_a_clear_error_keeps_the_previous_and_leaves_no_tmp(small_disk):
    """A real full disk (tmpfs, or a file-size limit): torch.save's cryptic RuntimeError becomes the OS reason."""
    save_checkpoint(_state(1), small_disk.path, 1)
    big = {"model": {"w": torch.zeros(4 << 20)}, "step": 2}  # 16 MB on an 8 MB disk
    with small_disk.applied():
        with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*step_00000002.pt: "
                                                  r"(No space left on device|File too large).*step_00000001.pt is kept"):
            save_checkpoint(big, small_disk.path, 2)
    assert [p.name for p in list_checkpoints(small_disk.path)] == ["step_00000001.pt"]
    assert not list((small_disk.path / "checkpoints").glob("*.tmp"))
    save_checkpoint(_state(3), small_disk.path, 3)  # the space of the failed write is free again
