"""Set abstraction and the point encoder F_P (3DSSD-style SA as released for SimIPU)."""
import copy
import dataclasses

import pytest
import torch

from simipu.config import PointEncoderConfig
from simipu.pointnet import PointEncoder, SetAbstractionMSG, run_shared_mlp, shared_mlp

SMALL = dict(
    in_channels=4, num_points=(256, 64, (32, 32)),
    radii=((0.5, 1.0), (1.0, 2.0), (2.0, 4.0)), num_samples=((8, 16), (8, 16), (8, 8)),
    sa_channels=(((8, 16), (8, 16)), ((16, 32), (16, 32)), ((32, 32), (32, 64))),
    aggregation_channels=(16, 32, 48),
    fps_mods=(("D-FPS",), ("FS",), ("F-FPS", "D-FPS")), fps_sample_range_lists=((-1,), (-1,), (32, -1)),
)


def lidar_cloud(B, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(B, N, 3, generator=g) * torch.tensor([20.0, 20.0, 2.0])
    return torch.cat([xyz, torch.rand(B, N, 1, generator=g)], dim=-1)  # (B, N, 4) x y z reflectance


def small_config(**changes):
    return dataclasses.replace(PointEncoderConfig(**SMALL), **changes)


def test_small_encoder_output_shapes():
    enc = PointEncoder(small_config())
    xyz, feat, idx = enc(lidar_cloud(2, 1024), return_indices=True)
    assert xyz.shape == (2, 64, 3) and feat.shape == (2, 64, 48) and idx.shape == (2, 64)
    assert idx.dtype == torch.int64 and enc.out_channels == 48


def test_output_locations_are_points_of_the_input_cloud():
    points = lidar_cloud(2, 1024, seed=1)
    xyz, _, idx = PointEncoder(small_config()).eval()(points, return_indices=True)
    assert torch.equal(torch.gather(points[..., :3], 1, idx[..., None].expand(-1, -1, 3)), xyz)


def test_every_parameter_receives_a_gradient():
    enc = PointEncoder(small_config()).train()
    _, feat = enc(lidar_cloud(2, 1024, seed=2))
    (feat ** 2).mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("use_xyz,first_in", [(True, 4), (False, 1)])
def test_use_xyz_changes_the_first_mlp_input_channels(use_xyz, first_in):
    enc = PointEncoder(small_config(use_xyz=use_xyz))
    assert enc.sa_layers[0].mlps[0][0].in_channels == first_in
    assert enc.sa_layers[1].mlps[0][0].in_channels == 16 + (3 if use_xyz else 0)
    _, feat = enc(lidar_cloud(1, 512))
    assert feat.shape == (1, 64, 48)


def test_sa_layer_without_features_groups_relative_xyz():
    sa = SetAbstractionMSG(0, 32, (1.0,), (8,), ((16,),), 24, use_xyz=False)
    assert sa.mlps[0][0].in_channels == 3
    new_xyz, feat, idx = sa(torch.rand(2, 200, 3))
    assert new_xyz.shape == (2, 32, 3) and feat.shape == (2, 32, 24) and idx.shape == (2, 32)


@pytest.mark.parametrize("use_xyz", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_textbook_layer_gives_the_fast_layers_numbers_in_both_modes(use_xyz, training):
    """Every SA layer of a small encoder, fed what the previous layer gives, run both ways on the same
    module: the textbook path (group, (B, C, S, K) conv modules, max) and the fast one agree."""
    torch.manual_seed(0)
    encoder = PointEncoder(small_config(use_xyz=use_xyz)).train(training)
    points = lidar_cloud(2, 512) * torch.tensor([0.3, 0.3, 0.3, 1.0])  # dense enough for balls of many members
    x, f = points[..., :3].contiguous(), points[..., 3:].contiguous()
    for sa in encoder.sa_layers:
        book_x, book_f, book_idx = sa(x, f, textbook=True)
        x, f, idx = sa(x, f)
        assert torch.equal(book_idx, idx) and torch.equal(book_x, x)
        # float32 sums in another order: compare the whole output relative to its size, and loosely per value
        assert (book_f - f).norm() <= 1e-4 * f.norm(), ((book_f - f).norm() / f.norm()).item()
        torch.testing.assert_close(book_f, f, rtol=1e-3, atol=1e-4)
        assert f.abs().sum() > 0


def test_mismatched_config_lists_raise():
    with pytest.raises(ValueError):
        PointEncoder(small_config(radii=((0.5, 1.0), (1.0, 2.0))))
    with pytest.raises(ValueError):
        PointEncoder(small_config())(torch.rand(1, 100, 3))


def test_kitti_encoder_maps_16384_points_to_1024_features_of_1024_channels():
    enc = PointEncoder(PointEncoderConfig()).eval()
    points = lidar_cloud(1, 16384, seed=3) * torch.tensor([3.5, 4.0, 1.0, 1.0])
    with torch.no_grad():
        xyz, feat, idx = enc(points, return_indices=True)
    assert xyz.shape == (1, 1024, 3) and feat.shape == (1, 1024, 1024) and idx.shape == (1, 1024)
    assert torch.equal(points[0, idx[0], :3], xyz[0])


@pytest.mark.parametrize("conv,bn,shape", [(torch.nn.Conv2d, torch.nn.BatchNorm2d, (2, 40, 8, 5)),
                                           (torch.nn.Conv1d, torch.nn.BatchNorm1d, (3, 40, 5))])
def test_run_shared_mlp_equals_the_conv_modules_on_channel_first_input(conv, bn, shape):
    """The matrix-product path gives the modules' outputs, gradients and BN running stats (train and eval)."""
    torch.manual_seed(0)
    ref_mlp = shared_mlp((5, 16, 32), conv, bn)
    new_mlp = copy.deepcopy(ref_mlp)
    x_ref = torch.randn(*shape).requires_grad_()
    x_new = x_ref.detach().clone().requires_grad_()
    for training in (True, True, False):  # two training steps move the running stats, then eval folds them
        ref_mlp.train(training), new_mlp.train(training)
        for p in (*ref_mlp.parameters(), *new_mlp.parameters(), x_ref, x_new):
            p.grad = None
        ref = ref_mlp(x_ref.movedim(-1, 1)).movedim(1, -1)
        new = run_shared_mlp(new_mlp, x_new)
        assert new.shape == (*shape[:-1], 32)
        torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-5)
        (ref * torch.arange(32.0)).sum().backward()
        (new * torch.arange(32.0)).sum().backward()
        torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=1e-4, atol=1e-4)
        params = list(zip(ref_mlp.named_parameters(), new_mlp.parameters()))
        for i, ((name, p), q) in enumerate(params):
            if training and name.endswith("bias") and isinstance(ref_mlp[int(name.split(".")[0])], conv):
                # a bias before training-mode BN has a zero gradient (BN removes the mean): both paths
                # give float round-off only, tiny next to the weight gradient of the same conv
                scale = params[i - 1][0][1].grad.abs().max()
                assert p.grad.abs().max() < 1e-4 * scale and q.grad.abs().max() < 1e-4 * scale, name
            else:
                torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-3, msg=name)
    for (name, b), c in zip(ref_mlp.named_buffers(), new_mlp.buffers()):
        torch.testing.assert_close(c, b, msg=name)
    assert int(new_mlp[1].num_batches_tracked) == 2
