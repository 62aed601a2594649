"""Output paths under real faults: a full disk, a read-only file system, names too long, a folder or a file
where the other is expected. Every case: one line on stderr, exit code 2, nothing left behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simipu.checkpoint import list_checkpoints, save_checkpoint
from simipu.cli import main
from simipu.config import load_config
from simipu.model import SimIPU

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
SMALL_IMAGES = ["data.img_scale_range=[[320, 97], [352, 106]]"]   # the preset's workers (tiny: 1) stay
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
DISK_FULL = ("No space left on device", "File too large")  # tmpfs, or the RLIMIT_FSIZE fallback


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A SimIPU checkpoint of the tiny preset (untrained weights) on the ordinary disk."""
    cfg = load_config("tiny")
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ckpt")
    return save_checkpoint(dict(model=SimIPU(cfg.model).state_dict(), step=0, config=cfg.to_dict()), out, 0)


def _frame() -> str:
    return sorted((SAMPLES / "training" / "velodyne").glob("*.bin"))[0].stem


def _cli_child(*args, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simipu", *map(str, args)], capture_output=True, text=True,
                          env=ENV, preexec_fn=preexec, timeout=600)


def _one_line_error(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"simipu {command}: error: "), err
    return last


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_disk_full_during_a_checkpoint_write_is_one_line_exit_2_and_leaves_no_tmp(small_disk):
    disk, preexec = small_disk.path, small_disk.child_preexec
    done = _cli_child("pretrain", "--config", "tiny", "--data-root", SAMPLES, "--out", disk / "run",
                      "--max-steps", "1", "--no-progress", *SMALL_IMAGES, preexec=preexec)
    assert done.returncode == 2
    line = _one_line_error(done.stderr, "pretrain")
    assert "cannot write checkpoint " + str(disk / "run" / "checkpoints" / "step_00000001.pt") in line
    assert any(reason in line for reason in DISK_FULL) and "No earlier checkpoint exists" in line
    assert not [f for f in _files(disk) if f.endswith(".tmp")]
    assert list_checkpoints(disk / "run") == []


def test_disk_full_during_export_is_one_line_exit_2_and_leaves_nothing(small_disk, ckpt):
    disk, preexec = small_disk.path, small_disk.child_preexec
    done = _cli_child("export", ckpt, "--out", disk / "exports" / "r18.pth", preexec=preexec)
    assert done.returncode == 2
    line = _one_line_error(done.stderr, "export")
    assert f"cannot write {disk / 'exports' / 'r18.pth'}: " in line and any(r in line for r in DISK_FULL)
    assert _files(disk) == []  # neither the file, its .tmp, nor the folder made for it


def test_read_only_file_system_is_one_line_exit_2_for_every_output(read_only_dir, ckpt, capsys):
    for command, args in [("export", [ckpt, "--out", read_only_dir / "r18.pth"]),
                          ("export", [ckpt, "--out", read_only_dir / "sub" / "r18.pth"]),
                          ("inspect", ["--data-root", SAMPLES, "--frame", _frame(), "--out", read_only_dir / "x.png"]),
                          ("pretrain", ["--config", "tiny", "--out", read_only_dir / "run", "--max-steps", "1"])]:
        assert main([command, *map(str, args)]) == 2
        line = _one_line_error(capsys.readouterr().err, command)
        assert "Read-only file system" in line or "Permission denied" in line, line
    assert _files(read_only_dir) == []


def test_too_long_names_are_one_line_exit_2_and_leave_nothing(tmp_path, ckpt, capsys):
    long = "a" * 300
    for command, args in [("export", [ckpt, "--out", tmp_path / f"{long}.pth"]),
                          ("export", [ckpt, "--out", tmp_path / "new" / "deeper" / f"{long}.pth"]),
                          ("inspect", ["--data-root", SAMPLES, "--frame", _frame(), "--out", tmp_path / f"{long}.png"]),
                          ("pretrain", ["--config", "tiny", "--out", tmp_path / long / "run", "--max-steps", "1"])]:
        assert main([command, *map(str, args)]) == 2
        assert "File name too long" in _one_line_error(capsys.readouterr().err, command)
    assert _files(tmp_path) == []


def test_a_folder_given_as_output_file_is_refused_and_kept(tmp_path, ckpt, capsys):
    (tmp_path / "out.pth").mkdir()
    (tmp_path / "view.png").mkdir()
    assert main(["export", str(ckpt), "--out", str(tmp_path / "out.pth")]) == 2
    assert f"{tmp_path / 'out.pth'} is a folder" in _one_line_error(capsys.readouterr().err, "export")
    assert main(["inspect", "--data-root", str(SAMPLES), "--frame", _frame(), "--out", str(tmp_path / "view.png")]) == 2
    assert "view.png is a folder" in _one_line_error(capsys.readouterr().err, "inspect")
    assert _files(tmp_path) == ["out.pth", "view.png"]


def test_a_file_where_a_folder_is_needed_is_refused_and_kept(tmp_path, ckpt, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["pretrain", "--config", "tiny", "--out", str(tmp_path / "notes.txt"), "--max-steps", "1"]) == 2
    assert "notes.txt exists and is not a folder" in _one_line_error(capsys.readouterr().err, "pretrain")
    assert main(["export", str(ckpt), "--out", str(tmp_path / "notes.txt" / "r18.pth")]) == 2
    assert "notes.txt exists and is not a folder" in _one_line_error(capsys.readouterr().err, "export")
    assert _files(tmp_path) == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "mine"


def test_export_replaces_an_existing_file_whole(tmp_path, ckpt, capsys):
    out = tmp_path / "r18.pth"
    out.write_bytes(b"an older export")
    out.with_suffix(".md").write_text("an older model card")
    assert main(["export", str(ckpt), "--out", str(out)]) == 0
    state = torch.load(out, weights_only=True)
    assert "layer4.1.bn2.running_var" in state and _files(tmp_path) == ["r18.md", "r18.pth"]
    card = out.with_suffix(".md").read_text()  # the card is replaced whole too, and describes these weights
    assert "an older model card" not in card and "resnet18" in card


def test_a_parent_folder_made_by_another_process_meanwhile_is_not_an_error(tmp_path, monkeypatch):
    """Parallel runs (benchmarks/depth_experiment.py's two workers) create the same parent at the same time:
    the loser of that race must go on, not fail with 'File exists'."""
    from pathlib import Path as _Path

    from simipu import outputs
    real_mkdir, raced = _Path.mkdir, []

    def other_process_wins(self, *args, **kwargs):
        if self == tmp_path / "work" and not raced:
            real_mkdir(self)          # the other process makes it between our look and our mkdir
            raced.append(self)
            raise FileExistsError(17, "File exists", str(self))
        return real_mkdir(self, *args, **kwargs)
    monkeypatch.setattr(_Path, "mkdir", other_process_wins)
    made = outputs._make_dirs(tmp_path / "work" / "pretrain" / "simipu")
    assert raced and (tmp_path / "work" / "pretrain" / "simipu").is_dir()
    assert made == [tmp_path / "work" / "pretrain", tmp_path / "work" / "pretrain" / "simipu"]  # not the raced one
