"""simipu.signals: instance look-ups and feature-cell majorities by hand, and a run on synthetic frames."""
from __future__ import annotations

import math

import numpy as np
import torch

from simipu.config import load_config
from simipu.model import SimIPU
from simipu.signals import cell_majority, point_instances, pretraining_signals
from simipu.synth import generate

QUICK_MODEL = ["data.num_points=1024", "model.point.num_points=[256, 64, [32, 32]]",
               "model.point.fps_sample_range_lists=[[-1], [-1], [32, -1]]"]


def test_point_instances_reads_the_nearest_cloud_point():
    cloud = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0]])
    inst = np.array([0, 7, 3], np.int32)
    assert point_instances(np.array([[10.0, 0, 0], [0.1, 9, 0], [1, 1, 0]]), cloud, inst).tolist() == [7, 3, 0]


def test_cell_majority_by_hand_with_identity_and_with_a_mirror():
    instance = np.array([[1, 1, 2, 2],
                         [1, 5, 2, 2],
                         [0, 0, 3, 3],
                         [0, 4, 4, 3]])
    identity = np.eye(4)
    assert cell_majority(instance, identity, (4, 4), stride=2).tolist() == [[1, 2], [0, 3]]
    mirror = np.eye(4)
    mirror[0, 0], mirror[0, 2] = -1.0, 4.0          # u' = W − u: the image flipped left-right
    assert cell_majority(instance, mirror, (4, 4), stride=2).tolist() == [[2, 1], [3, 0]]
    half = np.diag([0.5, 0.5, 1.0, 1.0])              # resized to 2×2: one cell of stride 2 holds all 16 pixels
    assert cell_majority(instance, half, (2, 2), stride=2).tolist() == [[2]]   # 2 has 4 of the 16 votes, the most
    assert cell_majority(instance, identity, (4, 6), stride=2)[:, 2].tolist() == [-1, -1]  # no pixel lands there


def test_signals_on_synthetic_frames_are_shares_and_repeat_exactly(tmp_path):
    root = generate(tmp_path / "data", frames=4, seed=0, split_val_every=2, progress=False, fov_only=True,
                    image_size=(416, 128), beams=32, azimuth_step_deg=0.35)
    cfg = load_config("tiny", [f"data.root={root}", *QUICK_MODEL])
    torch.manual_seed(0)
    a = pretraining_signals(SimIPU(cfg.model), cfg.data, "val", frames=2)
    torch.manual_seed(0)
    b = pretraining_signals(SimIPU(cfg.model), cfg.data, "val", frames=2)
    for key in ("intra_wrong", "inter_wrong", "intra_top1", "inter_top1"):
        assert 0.0 <= a[key] <= 1.0, key
    assert a["pairs_intra"] > 0 and a["points_inter"] > 0
    assert math.isfinite(a["loss_intra"]) and math.isfinite(a["loss_inter"])
    assert a == b  # same weights, same held-out views: every checkpoint is measured on the same samples
