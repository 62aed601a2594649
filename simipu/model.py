"""The SimIPU model: point encoder, image encoder, projection heads and the two losses (paper §3).

    l_a, f_a = F_P(p_a);  l_b, f_b = F_P(p_b)                        (Eq. 2, shared weights)
    M1 = assign(distance(T(l_a), l_b))                                 (Eq. 3, matching.py)
    L_intra = InfoNCE(head(f_a[i]), head(f_b[j]) for (i, j) in M1)     (Eq. 4)
    f = F_I(I);  f_g = f<proj(l_a, lidar2img)>                         (Eq. 5, 6)
    L_inter = InfoNCE(image_head(f_g[i]), key_head(f_a[i]))            (Eq. 7)
    L = λ·L_intra + μ·L_inter                                          (Eq. 8)

Gradients, as in the authors' released code: the keys of Eq. 4 (view b) are detached, so view b
runs without a graph; the point side of Eq. 7 is detached *after* its projection head, so
L_inter trains the image encoder and image head only. The point-key head therefore never
receives a gradient: it is a fixed random projection of f_a (1024 → 128), which we make explicit
by freezing it (this also keeps DDP from waiting for gradients that never come).
"""
from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torchvision
from torch import nn

from .config import ModelConfig
from .geometry import in_image, project_points, sample_features
from .losses import inter_loss, intra_loss
from .matching import match_stats, match_views
from .pointnet import PointEncoder

RESNETS = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "resnet152": torchvision.models.resnet152,
}


class ProjectionHead(nn.Sequential):
    """3-layer projection MLP (SimCLR / released code): Linear-BN-ReLU, Linear-BN-ReLU, Linear-BN.

    Maps (P, in_dim) → (P, out_dim). The output is *not* L2-normalised: `losses.info_nce` does
    that. BatchNorm in training mode needs P ≥ 2 rows.
    """

    def __init__(self, in_dim: int, hidden: int, out: int):
        super().__init__(
            nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, out, bias=False), nn.BatchNorm1d(out),
        )


class ImageEncoder(nn.Module):
    """F_I (Eq. 5): a torchvision ResNet without avgpool/fc, returning the last-stage map.

    Built with `weights=None` (nothing is downloaded); all stages trainable; BatchNorm with the given
    eps/momentum (released: SyncBN eps 1e-3, momentum 0.01, PyTorch's convention). The submodules keep
    torchvision's names (conv1, bn1, layer1..layer4), so `state_dict()` loads into
    `torchvision.models.<name>()` with only `fc.*` missing.

    forward: image (B, 3, H, W) → feature map (B, C, H/32, W/32); C = `out_channels`
    (512 for resnet18/34, 2048 for resnet50 and deeper).
    """

    def __init__(self, name: str = "resnet50", bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        if name not in RESNETS:
            raise ValueError(f"image backbone must be one of {sorted(RESNETS)}, got {name!r}")
        net = RESNETS[name](weights=None, norm_layer=partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum))
        self.name = name
        self.out_channels = net.fc.in_features
        self.stride = 32  # of the last stage (layer4) w.r.t. the input image
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))  # (B, 64, H/4, W/4)
        x = self.layer2(self.layer1(x))  # (B, C2, H/8, W/8)
        return self.layer4(self.layer3(x))  # (B, C, H/32, W/32)


class SimIPU(nn.Module):
    """Intra-modal spatial perception + inter-modal feature interaction (paper Fig. 2).

    Attributes: `point_encoder` (F_P), `image_encoder` (F_I), `point_head` (shared by both views
    in Eq. 4), `point_key_head` (keys of Eq. 7, frozen, see module docstring), `image_head`
    (queries of Eq. 7).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.point_encoder = PointEncoder(cfg.point)
        self.image_encoder = ImageEncoder(cfg.image_backbone, cfg.image_bn_eps, cfg.image_bn_momentum)
        c_point = cfg.point.aggregation_channels[-1]
        self.point_head = ProjectionHead(c_point, cfg.point_proj_hidden, cfg.proj_dim)
        self.point_key_head = ProjectionHead(c_point, cfg.point_proj_hidden, cfg.proj_dim)
        self.point_key_head.requires_grad_(False)
        self.image_head = ProjectionHead(self.image_encoder.out_channels, cfg.image_proj_hidden,
                                         cfg.proj_dim)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters per optimiser of the hybrid scheme (paper appendix D)."""
        def trainable(*modules):
            return [p for m in modules for p in m.parameters() if p.requires_grad]
        return dict(image=trainable(self.image_encoder), point=trainable(self.point_encoder),
                    heads=trainable(self.point_head, self.point_key_head, self.image_head))

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """One pre-training step's losses and diagnostics.

        Args:
            batch: dict of `simipu.pipeline.collate`: points_a, points_b (B, N, 4),
                T_ab (B, 4, 4), image (B, 3, Hp, Wp), lidar2img (B, 4, 4), image_hw (B, 2).
        Returns:
            0-d tensors: loss, loss_intra, loss_inter, intra_top1, intra_top5, inter_top1,
            inter_top5 (accuracies in [0, 1]), match_dist (mean matched distance, metres, view b
            frame), match_lt_0.1, match_lt_0.5 (shares of pairs closer than 0.1 / 0.5 m) and
            inter_valid (number of points of the batch projecting into their image). A branch
            whose weight (λ or μ) is 0 is skipped: its loss and diagnostics are 0.
        """
        lam, mu = self.cfg.lambda_intra, self.cfg.mu_inter
        points_a = batch["points_a"]  # (B, N, 4)
        zero = points_a.new_zeros(())
        out = {k: zero for k in ("loss_intra", "loss_inter", "intra_top1", "intra_top5", "inter_top1",
                                 "inter_top5", "match_dist", "match_lt_0.1", "match_lt_0.5",
                                 "inter_valid")}
        # Eq. 2: l_a, f_a = F_P(p_a). Only L_intra sends gradients into F_P.
        with torch.set_grad_enabled(torch.is_grad_enabled() and lam > 0):
            l_a, f_a = self.point_encoder(points_a)  # (B, M, 3), (B, M, C)
        if lam > 0:
            out.update(self._intra(l_a, f_a, batch))
        if mu > 0:
            out.update(self._inter(l_a, f_a, batch))
        # Eq. 8
        out["loss"] = lam * out["loss_intra"] + mu * out["loss_inter"]
        return out

    def _intra(self, l_a, f_a, batch) -> dict[str, torch.Tensor]:
        """Eq. 3–4 over the matched pairs of the whole batch."""
        with torch.no_grad():  # keys are detached (Eq. 4), so view b needs no graph
            l_b, f_b = self.point_encoder(batch["points_b"])  # (B, M, 3), (B, M, C)
        # Eq. 3: M1 = assign(cost = distance(T(l_a), l_b)), on the CPU
        matches = match_views(l_a, l_b, batch["T_ab"], self.cfg.matching)
        stats = match_stats(l_a, l_b, batch["T_ab"], matches)
        sample = np.concatenate([np.full(len(r), i) for i, (r, _) in enumerate(matches)])
        rows = np.concatenate([r for r, _ in matches])
        cols = np.concatenate([c for _, c in matches])
        sample, rows, cols = (torch.as_tensor(x, dtype=torch.long, device=f_a.device)
                              for x in (sample, rows, cols))
        out = {k: f_a.new_tensor(v) for k, v in stats.items()}
        if len(rows) < 2:  # no contrast possible (and BatchNorm needs 2 rows)
            out["loss_intra"] = _zero_through(f_a, self.point_head)
            return out
        z_a = self.point_head(f_a[sample, rows])  # (P, D) queries
        with torch.no_grad():
            z_b = self.point_head(f_b[sample, cols])  # (P, D) positive and negative keys
        # Eq. 4
        out["loss_intra"], out["intra_top1"], out["intra_top5"] = intra_loss(
            z_a, z_b, self.cfg.temperature)
        return out

    def _inter(self, l_a, f_a, batch) -> dict[str, torch.Tensor]:
        """Eq. 5–7 over the points of the batch that project into their image.

        With fewer than 2 such points there is nothing to contrast: L_inter is then a zero that
        still reaches the feature map and every image-head parameter (see ``_zero_through``).
        """
        # Eq. 5: f = F_I(I)
        feat = self.image_encoder(batch["image"])  # (B, C, Hp/32, Wp/32)
        # Projection and sampling in float32 even under autocast: bf16 pixel coordinates of a
        # 1242-px image are off by several pixels.
        with torch.autocast(feat.device.type, enabled=False):
            with torch.no_grad():
                uv, depth = project_points(l_a.float(), batch["lidar2img"].float())  # (B, M, 2), (B, M)
                valid = in_image(uv, depth, batch["image_hw"])  # (B, M) bool
            # Eq. 6: f_g = f<proj(l_a, C)>, bilinear; M2 = {(i, i)}
            f_g = sample_features(feat.float(), uv, batch["image_hw"],
                                  stride=self.image_encoder.stride)  # (B, M, C)
        out = {"inter_valid": valid.sum().float()}
        if int(valid.sum()) < 2:
            out["loss_inter"] = _zero_through(feat, self.image_head)
            return out
        z_img = self.image_head(f_g[valid])  # (P, D) queries
        with torch.no_grad():  # "we crop the gradient of f^α"
            z_pts = self.point_key_head(f_a[valid].detach())  # (P, D) keys
        # Eq. 7
        out["loss_inter"], out["inter_top1"], out["inter_top5"] = inter_loss(
            z_img, z_pts, self.cfg.temperature)
        return out


def _zero_through(features: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """0 · (sum of ``features`` and of every parameter of ``head``): a zero loss with a (zero) gradient
    for the encoder and every head parameter. Under DDP a rank whose batch has < 2 pairs must still
    produce a gradient for every parameter the other ranks train, or the gradient all-reduce fails."""
    total = features.sum()
    for p in head.parameters():
        if p.requires_grad:
            total = total + p.sum()
    return total * 0.0
