"""Full-scale readiness on the CPU: one full-size ``kitti`` training step, and the GPU acceptance script.

The training step takes the same code, shapes and defaults as ``simipu pretrain --config kitti`` on a GPU
(16384 points, the released SA layers, ResNet-50, images resized within the released range, fp32,
4 data workers), at batch 1, on the real frames of ``../shared/kitti_real``.
"""
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from simipu.config import DataConfig, PointEncoderConfig, load_config
from simipu.pipeline import PretrainDataset
from simipu.train import _amp_dtype, pretrain

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("preset", ["kitti", "waymo"])
def test_faithful_presets_train_in_fp32_on_the_gpu_and_bf16_stays_an_option(preset):
    cuda = torch.device("cuda")  # a device object needs no GPU
    assert load_config(preset).train.precision == "fp32"  # as released
    assert _amp_dtype(load_config(preset).train.precision, cuda) is None  # no autocast
    assert _amp_dtype(load_config(preset, ["train.precision=bf16"]).train.precision, cuda) == torch.bfloat16
    assert _amp_dtype(load_config("tiny").train.precision, cuda) == torch.bfloat16  # tiny: auto


@pytest.mark.slow
def test_one_full_size_kitti_training_step_runs_on_real_frames(kitti_real_root, tmp_path):
    cfg = load_config("kitti", [f"data.root={kitti_real_root}", f"train.out={tmp_path / 'run'}",
                                "train.batch_size=1", "train.max_steps=1"])
    # nothing is shrunk: the released sizes
    assert cfg.data.num_points == 16384 and cfg.model.image_backbone == "resnet50"
    assert cfg.data.img_scale_range == DataConfig().img_scale_range == ((640, 192), (2400, 720))
    assert cfg.model.point == PointEncoderConfig() and cfg.train.precision == "fp32"
    assert cfg.data.num_workers >= 1

    sample = PretrainDataset(cfg.data)[0]
    assert sample["points_a"].shape == sample["points_b"].shape == (16384, 4)
    h, w = sample["image_hw"]
    assert 190 <= h <= 720 and w <= 2400  # resized within the released scale range (keep_ratio)

    t0 = time.perf_counter()
    summary = pretrain(cfg, progress=False)
    took = time.perf_counter() - t0
    first = summary["first"]
    assert summary["steps"] == 1 and summary["config"] == "kitti"
    assert math.isfinite(first["loss"]) and first["loss_intra"] > 0 and first["loss_inter"] > 0
    # 512 F-FPS + 512 D-FPS centres leave the last layer, and the camera-view cloud projects into the image
    assert first["inter_valid"] == 1024
    assert (tmp_path / "run" / "backbone_torchvision.pth").is_file()
    print(f"\none full-size kitti step at batch 1 on the CPU: {took:.0f} s including data loading and the "
          f"checkpoint ({summary['wall_seconds']:.0f} s in the training loop)")


@pytest.mark.slow
def test_gpu_check_small_runs_end_to_end_on_the_cpu_and_fills_every_row():
    """``benchmarks/gpu_check.py --device cpu --small`` is the GPU acceptance script at small sizes: it must
    work before anyone pays for a GPU hour. Its bf16 tolerance is a GPU target: here only computed."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--small"],
                          capture_output=True, text=True, timeout=1200, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    header = next(line for line in proc.stdout.splitlines() if line.startswith("machine:"))
    assert "device cpu" in header and "--small" in header
    assert "Triton: interpreter" in header or "Triton: n/a" in header
    rows = {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.strip().strip("|").split("|")] for line in proc.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| check"))}
    ops = [name for name in rows if name.startswith(("D-FPS", "F-FPS", "ball query"))]
    assert len(ops) == 3
    for name in ops:
        measured, result, _ = rows[name]
        if "interpreter" in header:
            assert "in the interpreter (not a speed figure)" in measured
            assert "Triton = reference: equal" in result and "Triton = torch: equal" in result, (name, result)
        else:
            assert "torch = CPU reference: equal" in result, (name, result)
    steps = [name for name in rows if " step, batch " in name]
    assert [name.rsplit(", ", 1)[1] for name in steps] == ["fp32", "bf16"]
    assert all(re.search(r"\d+\.\d+ s per step", rows[name][0]) for name in steps)
    parity = next(name for name in rows if name.startswith("bf16 loss parity"))
    assert re.search(r"\d+\.\d+ % apart", rows[parity][0]) and rows[parity][1] in ("pass", "FAIL")
    hungarian = next(name for name in rows if name.startswith("Hungarian"))
    assert rows[hungarian][1] == "pass"
    ddp = next(name for name in rows if name.startswith("torchrun, 2 processes"))
    assert rows[ddp][1] == "pass" and "resumed: True" in rows[ddp][0]
