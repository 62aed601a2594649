"""Checkpoints are data to check: never written with NaN weights, refused when they hold NaN, malformed
or hostile structure, and never resumed silently under other settings."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from simipu.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from simipu.cli import main
from simipu.config import load_config
from simipu.model import SimIPU

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
SMALL_IMAGES = ["data.img_scale_range=[[320, 97], [352, 106]]"]   # every run here; the preset's workers stay


def _cli(capsys, *args) -> tuple[int, str]:
    """Run the command line in-process; return (exit code, stderr), stderr checked to be one line."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert err.count("\n") <= 1 and "Traceback" not in err, err
    return code, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run folder with the checkpoint of one real training step on data_samples (tiny preset)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["pretrain", "--config", "tiny", "--data-root", str(SAMPLES), "--out", str(out), "--max-steps", "1",
                 "--no-progress", "data.num_workers=0", *SMALL_IMAGES]) == 0
    return out


def _copy_run(trained: Path, dest: Path, mutate=None) -> Path:
    """A copy of the trained run whose checkpoint ``mutate(state)`` changed (written with plain torch.save,
    as another program or an older version could have)."""
    shutil.copytree(trained, dest)
    path = list_checkpoints(dest)[-1]
    if mutate is not None:
        state = load_checkpoint(path)
        mutate(state)
        torch.save(state, path)
    return dest


def _nan_checkpoint(path: Path, key_prefix: str = "image_encoder.") -> Path:
    cfg = load_config("tiny")
    state = SimIPU(cfg.model).state_dict()
    key = next(k for k in state if k.startswith(key_prefix) and state[k].is_floating_point())
    state[key][0] = float("nan")
    torch.save({"model": state, "step": 1, "config": cfg.to_dict()}, path)
    return path


def _huge_reflectance_root(tmp_path: Path) -> Path:
    """Two frames of data_samples, the first with finite but absurd reflectance (1e30) on half its points:
    a corrupt .bin that load_points accepts (no NaN), and that turns BatchNorm statistics into inf."""
    root = tmp_path / "root"
    (root / "training" / "velodyne").mkdir(parents=True)
    (root / "ImageSets").mkdir()
    for sub in ("image_2", "calib"):
        os.symlink(SAMPLES / "training" / sub, root / "training" / sub)
    for i in range(2):
        points = np.fromfile(SAMPLES / "training" / "velodyne" / f"{i:06d}.bin", np.float32).reshape(-1, 4)
        if i == 0:
            points[::2, 3] = 1e30
        points.tofile(root / "training" / "velodyne" / f"{i:06d}.bin")
    (root / "ImageSets" / "train.txt").write_text("000000\n000001\n")
    return root


def test_a_run_whose_weights_become_inf_writes_no_checkpoint_and_stops(tmp_path, capsys):
    """Before: the loss stayed finite, every checkpoint held inf BatchNorm statistics and the run said 'done'."""
    code, err = _cli(capsys, "pretrain", "--config", "tiny", "--data-root", _huge_reflectance_root(tmp_path),
                     "--out", tmp_path / "run", "--no-progress", "train.max_steps=3", "train.ckpt_every=1",
                     *SMALL_IMAGES)
    assert code == 1
    assert "step 1:" in err and "became NaN or inf after the update" in err and "No checkpoint was written" in err
    assert list_checkpoints(tmp_path / "run") == []
    assert not list((tmp_path / "run").rglob("*.tmp"))


def test_save_checkpoint_refuses_non_finite_tensors(tmp_path):
    state = {"model": {"w": torch.tensor([1.0, float("inf")])}, "step": 1}
    with pytest.raises(CheckpointError, match=r"not writing checkpoint .* 1 tensors hold NaN or inf \(e.g. model.w\)"):
        save_checkpoint(state, tmp_path, 1)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_export_inspect_and_depth_probe_refuse_nan_weights(tmp_path, capsys):
    ckpt = _nan_checkpoint(tmp_path / "nan.pt")
    frame = sorted((SAMPLES / "training" / "velodyne").glob("*.bin"))[0].stem
    for args in (["export", ckpt, "--out", tmp_path / "r18.pth"],
                 ["inspect", "--data-root", SAMPLES, "--frame", frame, "--ckpt", ckpt, "--out", tmp_path / "x.png"],
                 ["depth-probe", "--data-root", SAMPLES, "--init", ckpt, "--out", tmp_path / "probe", "steps=1"]):
        code, err = _cli(capsys, *args)
        assert code == 2 and "nan.pt: 1 weights tensors hold NaN or inf (e.g. image_encoder." in err, args
    resnet = torchvision.models.resnet18().state_dict()
    resnet["layer1.0.conv1.weight"][0, 0, 0, 0] = float("inf")
    torch.save(resnet, tmp_path / "r18_inf.pth")
    code, err = _cli(capsys, "depth-probe", "--data-root", SAMPLES, "--init", tmp_path / "r18_inf.pth",
                     "--out", tmp_path / "probe", "steps=1")
    assert code == 2 and "hold NaN or inf (e.g. layer1.0.conv1.weight)" in err
    assert not (tmp_path / "r18.pth").exists() and not (tmp_path / "x.png").exists()
    assert not (tmp_path / "probe").exists()


def _bomb_list():
    """10^9 values in nested lists that share their parts: tiny in memory and on disk, huge when copied."""
    node = [1] * 10
    for _ in range(8):
        node = [node] * 10
    return node


NO_RESNET = "no tensor matches a torchvision ResNet"  # depth-probe: then the file is read as a ResNet state dict
MALFORMED = {  # case: (change, words of export, words of depth-probe)
    "no model": (lambda s: s.pop("model"), "holds no model state dict", NO_RESNET),
    "model not tensors": (lambda s: s.update(model={"w": [1, 2]}), "holds no model state dict", NO_RESNET),
    "config not a mapping": (lambda s: s.update(config="resnet50"), "'config' must be a mapping", None),
    "backbone names another torchvision function": (
        lambda s: s["config"]["model"].update(image_backbone="vgg11"),
        "image_backbone must be one of resnet18, resnet34, resnet50, resnet101, resnet152, got 'vgg11'", None),
    "backbone names a non-model callable": (
        lambda s: s["config"]["model"].update(image_backbone="get_weight"), "got 'get_weight'", None),
    "backbone a shared-reference list": (
        lambda s: s["config"]["model"].update(image_backbone=_bomb_list()), "got list", None),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_checkpoints_give_one_line_and_exit_2_for_export_and_depth_probe(trained, tmp_path, capsys, case):
    mutate, export_words, probe_words = MALFORMED[case]
    ckpt = list_checkpoints(_copy_run(trained, tmp_path / "run", mutate))[-1]
    code, err = _cli(capsys, "export", ckpt, "--out", tmp_path / "b.pth")
    assert code == 2 and export_words in err
    code, err = _cli(capsys, "depth-probe", "--data-root", SAMPLES, "--init", ckpt, "--out", tmp_path / "probe",
                     "steps=1")
    assert code == 2 and (probe_words or export_words) in err
    assert not (tmp_path / "b.pth").exists()


@pytest.mark.parametrize("mutate, words", [
    (lambda s: s.pop("config"), "has no 'config' mapping"),
    (lambda s: s.update(config=[1, 2]), "has no 'config' mapping (found list)"),
    (lambda s: s["config"]["model"]["point"].update(num_points=_bomb_list()), "more than 100000 values"),
    (lambda s: s["config"]["model"].update(image_backbone="vgg11"), "image_backbone must be a torchvision ResNet"),
], ids=["no config", "config a list", "shared-reference config bomb", "other torchvision function"])
def test_inspect_refuses_malformed_checkpoint_configs(trained, tmp_path, capsys, mutate, words):
    ckpt = list_checkpoints(_copy_run(trained, tmp_path / "run", mutate))[-1]
    assert ckpt.stat().st_size < 200_000_000
    frame = sorted((SAMPLES / "training" / "velodyne").glob("*.bin"))[0].stem
    start = time.perf_counter()
    code, err = _cli(capsys, "inspect", "--data-root", SAMPLES, "--frame", frame, "--ckpt", ckpt,
                     "--out", tmp_path / "x.png")
    assert code == 2 and words in err
    assert time.perf_counter() - start < 60  # the bomb is refused without being expanded
    assert not (tmp_path / "x.png").exists()


def _resume(capsys, run: Path, *extra, flags=()) -> tuple[int, str]:
    return _cli(capsys, "pretrain", "--config", "tiny", "--data-root", SAMPLES, "--out", run, "--resume",
                "--max-steps", "2", "--no-progress", *flags, *SMALL_IMAGES, *extra)


@pytest.mark.parametrize("mutate, words", [
    (lambda s: s.update(optimizers=[]), "'optimizers' holds 0 entries, this run has 3"),
    (lambda s: s.update(schedulers=s["schedulers"][:2]), "'schedulers' holds 2 entries"),
    (lambda s: s.pop("scaler"), "missing ['scaler']"),
    (lambda s: s.update(step="1"), "'step' must be of type int, found str"),
    (lambda s: s.update(history=[]), "step 1 but 0 history rows"),
    (lambda s: s["optimizers"][0].pop("param_groups"), "optimizers[0] lacks 'state' and 'param_groups'"),
    (lambda s: s["optimizers"][1]["param_groups"].append(dict(s["optimizers"][1]["param_groups"][0])),
     "cannot restore the optimiser and random state"),
    (lambda s: s.update(torch_rng=torch.zeros(3)), "'torch_rng' must be a uint8 tensor"),
], ids=["no optimizers", "two schedulers", "no scaler", "step a string", "no history", "no param groups",
        "extra param group", "float rng"])
def test_resume_validates_the_whole_checkpoint(trained, tmp_path, capsys, mutate, words):
    code, err = _resume(capsys, _copy_run(trained, tmp_path / "run", mutate))
    assert code == 2 and words in err


@pytest.mark.parametrize("override, key", [
    ("model.temperature=0.2", "model.temperature: 0.07 vs 0.2"),
    ("model.point.radii=[[0.5, 0.8], [0.8, 1.6], [1.6, 3.2]]", "model.point.radii"),
    ("model.matching=greedy", "model.matching: 'hungarian' vs 'greedy'"),
    ("optim.image_lr=0.01", "optim.image_lr: 0.03 vs 0.01"),
])
def test_resume_with_other_same_shape_settings_is_an_error_naming_them_and_the_flag(trained, tmp_path, capsys,
                                                                                   override, key):
    code, err = _resume(capsys, _copy_run(trained, tmp_path / "run"), override)
    assert code == 2 and key in err and "--allow-config-change" in err


def test_allow_config_change_resumes_with_the_new_settings(trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path / "run")
    code, _ = _resume(capsys, run, "model.temperature=0.2", "optim.image_lr=0.01", flags=["--allow-config-change"])
    assert code == 0
    state = load_checkpoint(list_checkpoints(run)[-1])
    assert state["step"] == 2 and state["config"]["model"]["temperature"] == 0.2
    assert state["optimizers"][0]["param_groups"][0]["lr"] == pytest.approx(0.01)  # not the checkpoint's 0.03
    assert state["schedulers"][0]["base_lrs"] == [pytest.approx(0.01)]


def test_run_settings_may_change_on_resume(trained, tmp_path, capsys):
    """Where the data is, how long to run and how many workers: not differences that need the flag."""
    data = tmp_path / "moved_data"
    shutil.copytree(SAMPLES, data)
    code, _ = _cli(capsys, "pretrain", "--config", "tiny", "--data-root", data, "--out",
                   _copy_run(trained, tmp_path / "run"), "--resume", "--max-steps", "2", "--no-progress",
                   *SMALL_IMAGES, "data.num_workers=2", "train.log_every=1", "train.keep_last=1")
    assert code == 0
