import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from simipu.config import DataConfig, ModelConfig, PointEncoderConfig
from simipu.model import ImageEncoder, ProjectionHead, SimIPU
from simipu.views import ViewTransform

KITTI_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "kitti_real"

SMALL_POINTS = PointEncoderConfig(  # a tiny-like encoder: 1024 points → 256 → 64 → 32 + 32
    num_points=(256, 64, (32, 32)),
    radii=((2.0, 4.0), (4.0, 8.0), (8.0, 16.0)),
    num_samples=((8, 16), (8, 16), (8, 8)),
    sa_channels=(((8, 16), (8, 16)), ((16, 32), (16, 32)), ((32, 32), (32, 32))),
    aggregation_channels=(32, 64, 64),
    fps_sample_range_lists=((-1,), (-1,), (32, -1)),
)


def small_config(**changes) -> ModelConfig:
    cfg = ModelConfig(image_backbone="resnet18", point=SMALL_POINTS, proj_dim=32,
                      point_proj_hidden=64, image_proj_hidden=64)
    return dataclasses.replace(cfg, **changes)


def kitti_like_lidar2img(scale: float) -> np.ndarray:
    """P2 @ R0_rect @ Tr_velo_to_cam of a KITTI-like rig, then an image resize by `scale`."""
    P2 = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.003], [0, 0, 0, 1]])
    velo_to_cam = np.array([[0, -1, 0, 0], [0, 0, -1, -0.08], [1, 0, 0, -0.27], [0, 0, 0, 1.0]])
    img_aug = np.diag([scale, scale, 1.0, 1.0])
    return img_aug @ P2 @ velo_to_cam


def synthetic_batch(B=2, N=1024, hw=(116, 384), seed=0) -> dict:
    """Random clouds in front of the camera, their views b, random images of padded size 128×384."""
    rng = np.random.default_rng(seed)
    points_a = np.concatenate([rng.uniform([5, -20, -2], [60, 20, 1], (B, N, 3)),
                               rng.uniform(0, 1, (B, N, 1))], -1).astype(np.float32)
    points_b, T_ab = np.empty_like(points_a), np.empty((B, 4, 4), np.float32)
    for i in range(B):
        T = ViewTransform.random(rng)
        points_b[i] = points_a[i][rng.permutation(N)]
        points_b[i, :, :3] = T.apply(points_b[i, :, :3].astype(np.float64))
        T_ab[i] = T.matrix
    scale = hw[1] / 1242
    return {
        "points_a": torch.from_numpy(points_a),
        "points_b": torch.from_numpy(points_b),
        "T_ab": torch.from_numpy(T_ab),
        "image": torch.from_numpy(rng.normal(size=(B, 3, 128, 384)).astype(np.float32)),
        "lidar2img": torch.from_numpy(np.stack([kitti_like_lidar2img(scale)] * B).astype(np.float32)),
        "image_hw": torch.tensor([hw] * B, dtype=torch.int64),
        "frame_id": [f"{i:06d}" for i in range(B)],
    }


def grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


OUTPUT_KEYS = {"loss", "loss_intra", "loss_inter", "intra_top1", "intra_top5", "inter_top1",
               "inter_top5", "match_dist", "match_lt_0.1", "match_lt_0.5", "inter_valid"}


def test_projection_head_maps_features_to_proj_dim():
    head = ProjectionHead(48, 64, 16)
    assert head(torch.randn(10, 48)).shape == (10, 16)
    layers = [type(m).__name__ for m in head]
    assert layers == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear", "BatchNorm1d"]


@pytest.mark.parametrize("name, channels", [("resnet18", 512), ("resnet50", 2048)])
def test_image_encoder_returns_stride_32_map_with_torchvision_keys(name, channels):
    enc = ImageEncoder(name).eval()
    assert enc.out_channels == channels
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 64, 96)).shape == (1, channels, 2, 3)
    missing, unexpected = getattr(torchvision.models, name)().load_state_dict(enc.state_dict(), strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []


def test_unknown_image_backbone_is_a_value_error():
    with pytest.raises(ValueError, match="resnet50"):
        ImageEncoder("vgg16")


def test_forward_backward_is_finite_and_reaches_every_trainable_part():
    torch.manual_seed(0)
    model = SimIPU(small_config()).train()
    out = model(synthetic_batch())
    assert set(out) == OUTPUT_KEYS
    for k, v in out.items():
        assert v.ndim == 0 and torch.isfinite(v), k
    assert out["inter_valid"] > 100  # most of the synthetic points are in front of the camera
    for k in ("intra_top1", "intra_top5", "inter_top1", "inter_top5", "match_lt_0.1", "match_lt_0.5"):
        assert 0.0 <= out[k].item() <= 1.0, k
    out["loss"].backward()
    for part in ("image_encoder", "point_encoder", "point_head", "image_head"):
        assert grad_norm(getattr(model, part)) > 0, part
    # Eq. 7's point side is detached after its head: the point-key head is frozen, never trained.
    assert all(not p.requires_grad for p in model.point_key_head.parameters())
    groups = model.param_groups()
    assert sum(len(g) for g in groups.values()) == sum(p.requires_grad for p in model.parameters())


def test_inter_loss_never_reaches_the_point_encoder():
    model = SimIPU(small_config(lambda_intra=0.0)).train()
    out = model(synthetic_batch())
    assert out["loss_intra"].item() == 0.0 and out["match_dist"].item() == 0.0
    assert torch.isfinite(out["loss"]) and out["loss_inter"] > 0
    out["loss"].backward()
    assert grad_norm(model.image_encoder) > 0 and grad_norm(model.image_head) > 0
    assert all(p.grad is None for p in model.point_encoder.parameters())
    assert all(p.grad is None for p in model.point_head.parameters())


def test_inter_branch_pairs_image_with_view_a_only():
    torch.manual_seed(0)
    model = SimIPU(small_config()).train()
    batch = synthetic_batch()
    other = dict(batch, points_b=torch.randn_like(batch["points_b"]) * 50)
    with torch.no_grad():
        assert model(batch)["loss_inter"].item() == pytest.approx(model(other)["loss_inter"].item())


def test_intra_only_ablation_leaves_the_image_branch_untouched():
    model = SimIPU(small_config(mu_inter=0.0)).train()
    out = model(synthetic_batch())
    assert out["loss_inter"].item() == 0.0 and out["inter_valid"].item() == 0.0
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert grad_norm(model.point_encoder) > 0
    assert all(p.grad is None for p in model.image_encoder.parameters())


def test_hungarian_matches_are_never_farther_than_greedy_ones():
    torch.manual_seed(0)
    model = SimIPU(small_config(mu_inter=0.0)).train()
    batch = synthetic_batch(seed=3)
    with torch.no_grad():  # same weights and inputs: both matchers see the same l_a, l_b
        hungarian = model(batch)
        model.cfg = dataclasses.replace(model.cfg, matching="greedy")
        greedy = model(batch)
    assert torch.isfinite(greedy["loss"])
    assert hungarian["match_dist"] <= greedy["match_dist"] + 1e-6


def test_fewer_than_two_visible_points_give_a_zero_inter_loss_that_still_backpropagates():
    batch = synthetic_batch()
    batch["points_a"][..., 0] *= -1  # every point behind the camera
    model = SimIPU(small_config(lambda_intra=0.0)).train()
    out = model(batch)
    assert out["inter_valid"].item() == 0 and out["loss_inter"].item() == 0.0
    assert out["loss"].requires_grad
    out["loss"].backward()  # reaches the image encoder with zero gradients, and does not fail


def test_forward_backward_on_a_real_kitti_frame():
    if not KITTI_REAL.is_dir():
        pytest.skip(f"real KITTI frames not found at {KITTI_REAL}")
    from simipu.pipeline import PretrainDataset, collate
    data_cfg = DataConfig(root=str(KITTI_REAL), splits=("all",), num_points=1024,
                          img_scale_range=((384, 116), (384, 116)))
    dataset = PretrainDataset(data_cfg)
    if len(dataset) == 0:
        pytest.skip(f"no training frame listed under {KITTI_REAL}")
    batch = collate([dataset[0], dataset[0]])
    torch.manual_seed(0)
    model = SimIPU(small_config()).train()
    out = model(batch)
    assert all(torch.isfinite(v) for v in out.values())
    assert out["inter_valid"].item() > 0.9 * 2 * 64  # the frame is FOV-cropped: nearly all visible
    out["loss"].backward()
    assert grad_norm(model.image_encoder) > 0 and grad_norm(model.point_encoder) > 0
