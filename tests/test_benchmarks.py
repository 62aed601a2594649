"""The performance benchmarks' own code: their reference paths compute what the fast paths compute."""
from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from simipu import pointnet
from simipu.config import PointEncoderConfig
from simipu.matching import hungarian_match

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_ops  # noqa: E402
import bench_train  # noqa: E402

SMALL = dict(num_points=(128, 32, (16, 16)), radii=((0.5, 1.0), (1.0, 2.0), (2.0, 4.0)),
             num_samples=((8, 16), (8, 16), (8, 8)),
             sa_channels=(((8, 16), (8, 16)), ((16, 32), (16, 32)), ((32, 32), (32, 64))),
             aggregation_channels=(16, 32, 48), fps_sample_range_lists=((-1,), (-1,), (16, -1)))


def test_encoder_reference_path_gives_the_same_features_as_the_matrix_product_path():
    torch.manual_seed(0)
    encoder = pointnet.PointEncoder(PointEncoderConfig(**SMALL))
    points = bench_ops.kitti_like_cloud(b=2, n=512)
    for training in (False, True):
        encoder.train(training)
        _, ours = encoder(points)
        with mock.patch.object(pointnet, "run_shared_mlp", bench_ops.conv_module_mlp):
            _, ref = encoder(points)
        assert ours.shape == ref.shape == (2, 32, 48)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_hungarian_rows_time_the_project_path_and_a_reference_that_solves_the_same_problem():
    rows = bench_train.hungarian_rows(repeat=1)
    (label, ref, ours, target), (greedy_label, _, greedy, _) = rows
    assert "Hungarian" in label and target == "≤ 60 ms" and "greedy" in greedy_label
    assert ref > 0 and ours > 0 and greedy > 0
    rng = np.random.default_rng(0)  # the reference's cost matrix equals the project's
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(60, 3))
    rows_ref, cols_ref = bench_train.linear_sum_assignment(np.linalg.norm(a[:, None] - b[None], axis=-1))
    rows_ours, cols_ours = hungarian_match(a, b)
    assert np.array_equal(rows_ref, rows_ours) and np.array_equal(cols_ref, cols_ours)
