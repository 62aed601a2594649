"""Sampling and grouping ops: fast paths equal the plain references; semantics of the released mmdet3d ops."""
import numpy as np
import pytest
import torch

from simipu.ops import (ball_query, ball_query_naive, feature_furthest_point_sample,
                        furthest_point_sample, furthest_point_sample_naive, group_points,
                        sample_points_by_mode)
from simipu.ops import grouping, sampling


def random_cloud(B, N, seed, scale=(20.0, 20.0, 2.0)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, N, 3, generator=g) * torch.tensor(scale)


@pytest.mark.parametrize("seed,start", [(0, 0), (1, 5), (2, 123)])
def test_cpu_fast_fps_picks_the_same_indices_as_the_plain_loop(seed, start):
    xyz = random_cloud(2, 2048, seed)
    fast = furthest_point_sample(xyz, 512, start)
    assert fast.dtype == torch.int64 and fast.shape == (2, 512)
    assert torch.equal(fast, furthest_point_sample_naive(xyz, 512, start))
    assert (fast[:, 0] == start).all()


def test_batched_torch_fps_picks_the_same_indices_as_the_plain_loop():
    xyz = random_cloud(3, 1000, 3)
    assert torch.equal(sampling._fps_torch(xyz, 200, 7), furthest_point_sample_naive(xyz, 200, 7))


def test_fps_of_a_whole_cloud_is_a_permutation():
    xyz = random_cloud(2, 300, 4)
    idx = furthest_point_sample(xyz, 300)
    assert all(sorted(row.tolist()) == list(range(300)) for row in idx)


def test_large_fast_fps_is_a_valid_furthest_point_sequence():
    """Large clouds: float32 near-ties may break differently, so check the FPS property itself."""
    xyz = random_cloud(1, 8192, 5, scale=(70.4, 80.0, 4.0))
    idx = furthest_point_sample(xyz, 1024, start=3)[0]
    assert idx[0] == 3 and len(set(idx.tolist())) == 1024
    pts = xyz[0].double()
    min_d2 = ((pts - pts[idx[0]]) ** 2).sum(-1)
    for i in range(1, 1024):  # each pick is (up to float32 round-off) the furthest remaining point
        assert min_d2[idx[i]] >= min_d2.max() * (1 - 1e-5)
        min_d2 = torch.minimum(min_d2, ((pts - pts[idx[i]]) ** 2).sum(-1))


def test_ffps_is_fps_on_concatenated_xyz_and_features():
    xyz, feat = random_cloud(2, 400, 6), torch.randn(2, 400, 5)
    got = feature_furthest_point_sample(xyz, feat, 64)
    assert torch.equal(got, furthest_point_sample_naive(torch.cat([xyz, feat], -1), 64))
    assert torch.equal(feature_furthest_point_sample(xyz, None, 64), furthest_point_sample(xyz, 64))


def test_ffps_with_many_channels_matches_the_batch_vectorised_path():
    """67 coordinates on the CPU take the plain per-cloud loop; check it against the other, independently
    written implementation (the batch-vectorised torch loop that GPUs without Triton run)."""
    from simipu.ops.sampling import _fps_torch, fps_backend
    xyz, feat = random_cloud(2, 600, 7), torch.randn(2, 600, 64)
    cat = torch.cat([xyz, feat], -1)
    assert fps_backend(cat) == "loop"
    got = feature_furthest_point_sample(xyz, feat, 100)
    assert torch.equal(got, _fps_torch(cat, 100, 0))
    assert len(torch.unique(got[0])) == 100


def test_fs_mode_returns_npoint_ffps_then_npoint_dfps_indices():
    """FS_Sampler of the release: F-FPS and D-FPS over the same points, concatenated (2·npoint)."""
    xyz, feat = random_cloud(2, 500, 8), torch.randn(2, 500, 4)
    idx = sample_points_by_mode(xyz, feat, 100, ("FS",), (-1,))
    assert idx.shape == (2, 200) and sampling.num_sampled(100, ("FS",)) == 200
    assert torch.equal(idx[:, :100], feature_furthest_point_sample(xyz, feat, 100))
    assert torch.equal(idx[:, 100:], furthest_point_sample(xyz, 100))
    assert (idx[:, 0] == idx[:, 100]).all()  # both start at point 0: the halves may share points


def test_kitti_layer_three_samples_ffps_from_the_first_512_and_dfps_from_the_other_1536():
    """Layer 2 of `kitti` outputs 2048 centres (FS); layer 3's ranges (512, -1) then really sample."""
    xyz, feat = random_cloud(1, 4096, 12), torch.randn(1, 4096, 8)
    l2 = sample_points_by_mode(xyz, feat, 1024, ("FS",), (-1,))
    assert l2.shape == (1, 2048)
    xyz2, feat2 = xyz[:, l2[0]], feat[:, l2[0]]
    l3 = sample_points_by_mode(xyz2, feat2, (512, 512), ("F-FPS", "D-FPS"), (512, -1))
    assert l3.shape == (1, 1024)
    assert sorted(l3[0, :512].tolist()) == list(range(512))  # all of the F-FPS half, reordered
    dfps = l3[0, 512:]
    assert (dfps >= 512).all() and len(set(dfps.tolist())) == 512  # 512 of the 1536 D-FPS centres
    assert torch.equal(dfps - 512, furthest_point_sample(xyz2[:, 512:], 512)[0])


def test_sample_ranges_sample_each_range_separately():
    xyz, feat = random_cloud(2, 1000, 9), torch.randn(2, 1000, 4)
    idx = sample_points_by_mode(xyz, feat, (64, 64), ("F-FPS", "D-FPS"), (512, -1))
    assert idx.shape == (2, 128)
    assert (idx[:, :64] < 512).all() and (idx[:, 64:] >= 512).all()
    assert torch.equal(idx[:, :64], feature_furthest_point_sample(xyz[:, :512], feat[:, :512], 64))
    assert torch.equal(idx[:, 64:] - 512, furthest_point_sample(xyz[:, 512:], 64))


def test_bad_sampling_arguments_raise_value_errors():
    xyz = random_cloud(1, 10, 0)
    with pytest.raises(ValueError):
        furthest_point_sample(xyz, 11)
    with pytest.raises(ValueError):
        furthest_point_sample(xyz, 5, start=10)
    with pytest.raises(ValueError):
        sample_points_by_mode(xyz, None, 4, ("X-FPS",), (-1,))
    with pytest.raises(ValueError):
        sample_points_by_mode(xyz, None, (4, 4), ("D-FPS",), (-1,))


@pytest.mark.parametrize("radius,nsample", [(0.8, 32), (2.0, 16), (0.3, 4)])
def test_fast_ball_query_returns_the_reference_sets(radius, nsample):
    xyz = random_cloud(2, 3000, 10, scale=(10.0, 10.0, 2.0))
    centers = xyz[:, torch.randperm(3000, generator=torch.Generator().manual_seed(1))[:500]]
    ref = ball_query_naive(xyz, centers, radius, nsample)
    assert torch.equal(ball_query(xyz, centers, radius, nsample), ref)
    assert torch.equal(grouping._ball_query_torch(xyz, centers, radius, nsample), ref)


def test_ball_query_keeps_the_first_in_index_order_and_pads_with_the_first():
    xyz = torch.tensor([[[0.0, 0, 0], [5, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [9, 9, 9]]])
    centers = torch.tensor([[[0.0, 0, 0], [5, 0, 0], [50, 0, 0]]])
    for fn in (ball_query, ball_query_naive, grouping._ball_query_torch):
        idx = fn(xyz, centers, 0.5, 4)
        assert idx.tolist() == [[[0, 2, 3, 0], [1, 1, 1, 1], [0, 0, 0, 0]]]
        assert fn(xyz, centers, 0.15, 2).tolist() == [[[0, 2], [1, 1], [0, 0]]]


@pytest.mark.parametrize("radius,min_radius,nsample", [(0.8, 0.4, 32), (1.6, 0.8, 64), (3.2, 1.6, 16)])
def test_dilated_ball_query_paths_return_the_reference_shells(radius, min_radius, nsample):
    xyz = random_cloud(2, 3000, 13, scale=(10.0, 10.0, 2.0))
    centers = xyz[:, torch.randperm(3000, generator=torch.Generator().manual_seed(2))[:400]]
    ref = ball_query_naive(xyz, centers, radius, nsample, min_radius=min_radius)
    assert torch.equal(ball_query(xyz, centers, radius, nsample, min_radius=min_radius), ref)
    assert torch.equal(grouping._ball_query_torch(xyz, centers, radius, nsample, min_radius), ref)
    d2 = ((xyz[:, None, None, :, :] - centers[:, :, None, None, :]) ** 2).sum(-1)[:, :, 0]  # (B, S, N)
    got = d2.gather(-1, ref)  # (B, S, K) squared distances of the kept points
    assert ((got == 0) | ((got >= min_radius ** 2 * (1 - 1e-5)) & (got < radius ** 2 * (1 + 1e-5)))).all()


def test_dilated_ball_query_keeps_the_centre_and_the_shell_only():
    """The CUDA kernel's rule: d² == 0 or min_r² <= d² < r²; first found in index order, padded with it."""
    xyz = torch.tensor([[[0.0, 0, 0], [0.1, 0, 0], [0.5, 0, 0], [0.3, 0, 0], [0.45, 0, 0], [0.2, 0, 0]]])
    centers = torch.tensor([[[0.0, 0, 0], [10.0, 0, 0]]])
    for fn in (ball_query, ball_query_naive, grouping._ball_query_torch):
        # shell [0.25, 0.5): 0.3 (index 3) and 0.45 (index 4); 0.5 is outside (strict), the centre stays
        assert fn(xyz, centers, 0.5, 4, 0.25).tolist() == [[[0, 3, 4, 0], [0, 0, 0, 0]]]
        # min_radius = 0 is the plain ball, still strict at r: 0.5 excluded
        assert fn(xyz, centers, 0.5, 6, 0.0).tolist() == [[[0, 1, 3, 4, 5, 0], [0, 0, 0, 0, 0, 0]]]
    centre_off_cloud = torch.tensor([[[0.05, 0, 0]]])  # not a cloud point: only the shell [0.1, 0.3) counts
    assert ball_query(xyz, centre_off_cloud, 0.3, 3, 0.1).tolist() == [[[3, 5, 3]]]  # at 0.25 and 0.15


def test_ball_query_min_radius_must_be_below_the_radius():
    xyz = random_cloud(1, 10, 0)
    with pytest.raises(ValueError):
        ball_query(xyz, xyz, 0.5, 4, min_radius=0.5)
    with pytest.raises(ValueError):
        ball_query(xyz, xyz, 0.5, 4, min_radius=-0.1)


def test_a_centre_from_the_cloud_is_its_own_neighbour():
    xyz = random_cloud(1, 2000, 11, scale=(100.0, 100.0, 100.0))  # sparse: often the only one
    idx = ball_query(xyz, xyz, 1e-3, 8)
    assert torch.equal(idx[..., 0], torch.arange(2000)[None])


def test_group_points_gathers_rows_and_passes_gradients():
    x = torch.randn(2, 7, 3, requires_grad=True)
    idx = torch.tensor([[[0, 1], [6, 6]], [[2, 3], [4, 5]]])
    g = group_points(x, idx)
    assert g.shape == (2, 2, 2, 3)
    assert torch.equal(g[1, 0, 1], x[1, 3]) and torch.equal(g[0, 1, 0], x[0, 6])
    g.sum().backward()
    assert x.grad[0, 6].eq(2).all() and x.grad[0, 2].eq(0).all()


def test_kd_order_keeps_the_start_where_fpsample_reads_it():
    cloud = np.random.default_rng(0).random((5000, 3), dtype=np.float32)
    order = sampling._kd_order(cloud, 7)
    assert sorted(order.tolist()) == list(range(5000))
