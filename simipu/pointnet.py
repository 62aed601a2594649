"""The point encoder F_P: multi-scale set abstraction (PointNet++, Qi et al. 2017; 3DSSD, Yang et al. 2020).

A set abstraction (SA) layer picks S centres (D-FPS / F-FPS / "FS", see ``simipu.ops.sampling``), and for
each radius r_j gathers the first K_j points of the ball around every centre (with dilated grouping,
the shell ``r_{j-1} <= d < r_j`` for j > 0), runs a shared MLP (1×1 convolutions over the (S, K) grid)
on their features (and, with ``use_xyz``, their xyz relative to the centre), max-pools over the K
neighbours, concatenates the scales and mixes them with a 1×1 "aggregation" convolution (3DSSD).
``PointEncoder`` stacks the layers of a ``PointEncoderConfig``; the released SimIPU/3DSSD KITTI setting
(``project_cl/configs/simipu/simipu_kitti.py``, modules in ``mmdet3d/models/backbones/pointnet2_sa_msg.py``
and ``mmdet3d/ops/pointnet_modules/point_sa_module.py``) is 16384 → 4096 (D-FPS) → 2048 ("FS": 1024
F-FPS + 1024 D-FPS) → 512 + 512 (F-FPS among the first 512, D-FPS among the other 1536) points with a
1024-d output, dilated groups and ``use_xyz=False``: the grouped inputs are the neighbours' features
only (reflectance in layer 1), and geometry enters through which points each ball holds.

Points stay channel-last (B, N, C) everywhere. The shared MLPs are stored as 1×1 convolutions + BatchNorm
(the usual PointNet++ modules and state-dict keys) but run by ``run_shared_mlp`` as matrix products on
(rows, C) views: a 1×1 convolution over a (B, C, S, K) grid is exactly ``x @ W.T`` on the (B·S·K, C) rows,
and on the CPU that is 1.5-2× faster than permuting to (B, C, S, K) for ``conv2d`` (see
``benchmarks/bench_ops.py``). In eval mode BatchNorm is folded into the product.

The textbook form of a layer — group, lay the groups out as a (B, C, S, K) grid, run the 1×1 ``Conv2d``
modules, max over K — is kept beside the fast one: ``SetAbstractionMSG.forward(..., textbook=True)`` (its
``_scale_features_textbook``) returns the same numbers, and notebook 03 teaches the layer from it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .ops import ball_query, group_points, sample_points_by_mode


_MIN_CHANNELS_FOR_PRODUCT_FIRST = 16  # below this, the extra (B, S, K, C_1) passes cost more than they save


def shared_mlp(channels: Sequence[int], conv: type = nn.Conv2d, bn: type = nn.BatchNorm2d,
               eps: float = 1e-5, momentum: float = 0.1) -> nn.Sequential:
    """1×1 conv + BN + ReLU per layer, as mmcv's ``ConvModule(bias=True)`` in the release's
    ``PointNet2SAMSG`` builds them (bias on, kaiming-normal fan-out init, bias 0).

    ``channels = (c_in, c_1, ..., c_L)``; ``eps`` and ``momentum`` go to every BatchNorm.
    """
    layers = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layer = conv(c_in, c_out, kernel_size=1, bias=True)
        # mmcv's ConvModule initialises itself: kaiming normal (fan_out, ReLU gain), bias 0; BN weight 1, bias 0
        nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(layer.bias)
        layers += [layer, bn(c_out, eps=eps, momentum=momentum), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def run_shared_mlp(mlp: nn.Sequential, x: torch.Tensor, first_product: bool = False,
                   max_over: int | None = None) -> torch.Tensor:
    """Apply a ``shared_mlp`` (1×1 conv, BN, ReLU)* to channel-last points.

    Same result as permuting ``x`` to (B, C, ...) and calling ``mlp``, including BatchNorm's batch
    statistics and running-stat updates in training mode (the BN module itself runs, on a (rows, C, 1, ...)
    view, so ``SyncBatchNorm`` also works); in eval mode BN is folded into the matrix product.

    Args:
        mlp: a ``shared_mlp`` with Conv1d or Conv2d (kernel 1) layers.
        x: (..., C_in) features, channels last; with ``first_product``, (..., C_1) = ``x @ W_1.T`` already
            (the first convolution's product, without its bias: see ``SetAbstractionMSG``).
        first_product: ``x`` is the first layer's product; only its bias, BN and ReLU remain.
        max_over: max-pool the output over this dim of ``x`` (e.g. 2, the ball members of (B, S, K, C)). In
            eval mode the last layer then pools before its shift and ReLU (max(z + b) = max(z) + b, and
            ReLU is monotone), which skips two passes over its widest tensor.
    Returns:
        (..., C_out) features, channels last, without the ``max_over`` dim when it is given.
    """
    lead, rows = x.shape[:-1], x.reshape(-1, x.shape[-1])
    modules = list(mlp)
    for i in range(0, len(modules), 3):
        conv, bn, act = modules[i:i + 3]
        weight = conv.weight.flatten(1)  # (C_out, C_in): a 1×1 convolution is a matrix product
        bias = conv.bias
        done = first_product and i == 0  # rows already hold rows_in @ weight.T
        fold = (not bn.training and isinstance(bn, _BatchNorm) and bn.running_mean is not None)
        if fold:
            scale = torch.rsqrt(bn.running_var + bn.eps)
            scale = scale if bn.weight is None else bn.weight * scale
            shift = -bn.running_mean * scale if bias is None else (bias - bn.running_mean) * scale
            shift = shift if bn.bias is None else shift + bn.bias
            if max_over is not None and i == len(modules) - 3 and isinstance(act, nn.ReLU):
                z = rows * scale if done else torch.mm(rows, (weight * scale[:, None]).t())
                return act(z.view(*lead, z.shape[-1]).amax(dim=max_over) + shift)  # small: out of place
            rows = act(torch.addcmul(shift, rows, scale) if done
                       else torch.addmm(shift, rows, (weight * scale[:, None]).t()))
        else:
            if done:
                rows = rows if bias is None else rows + bias
            else:
                rows = nn.functional.linear(rows, weight, bias)
            spatial = (1,) * (conv.weight.dim() - 2)  # BN2d wants (N, C, 1, 1), BN1d (N, C, 1)
            # the in-place ReLU acts on BN's own output, not on a view of it (autograd would copy the whole
            # tensor back through the view: CopySlices, ~18 % of a backward pass)
            rows = act(bn(rows.view(rows.shape[0], rows.shape[1], *spatial))).view(rows.shape[0], -1)
    out = rows.view(*lead, rows.shape[-1])
    return out if max_over is None else out.amax(dim=max_over)


class SetAbstractionMSG(nn.Module):
    """One multi-scale-grouping SA layer with 3DSSD's sampling modes and aggregation.

    Args:
        in_channels: C_in, feature channels of the input points (0 when they only have xyz).
        num_points: S, an int or one int per sample range (S = their sum).
        radii: one ball radius per scale.
        num_samples: K_j, neighbours per ball, one per scale.
        mlp_channels: the shared MLP's output channels per scale, e.g. ((32, 32, 64), (64, 64, 128)).
        aggregation_channels: C_out of the final 1×1 Conv1d + BN + ReLU.
        fps_mods: sampling mode per sample range ("D-FPS", "F-FPS", "FS").
        fps_sample_range_list: range length per sample range (-1: to the end).
        use_xyz: concatenate the relative xyz to the grouped features (PointNet++ default; the released
            SimIPU config sets False). Without input features, relative xyz is always used.
        dilated_group: scale j > 0 groups the shell ``radii[j-1] <= d < radii[j]`` (plus the centre)
            instead of the ball ``d < radii[j]`` (``PointNet2SAMSG`` default of the release: True).
        bn_eps, bn_momentum: of the shared MLPs' BatchNorm2d (released: 1e-3, 0.1); the aggregation
            BatchNorm1d keeps PyTorch's defaults (1e-5, 0.1), as the release's ``dict(type='BN1d')``.
    """

    def __init__(self, in_channels: int, num_points, radii: Sequence[float], num_samples: Sequence[int],
                 mlp_channels: Sequence[Sequence[int]], aggregation_channels: int,
                 fps_mods: Sequence[str] = ("D-FPS",), fps_sample_range_list: Sequence[int] = (-1,),
                 use_xyz: bool = False, dilated_group: bool = True, bn_eps: float = 1e-3,
                 bn_momentum: float = 0.1):
        super().__init__()
        if not len(radii) == len(num_samples) == len(mlp_channels):
            raise ValueError(f"radii {radii}, num_samples {num_samples} and mlp_channels "
                             f"{mlp_channels} need one entry per scale")
        self.num_points = num_points
        self.radii, self.num_samples = tuple(radii), tuple(num_samples)
        # inner radius per scale: the previous scale's radius with dilated groups (PointSAModuleMSG)
        self.min_radii = tuple(radii[j - 1] if dilated_group and j > 0 else 0.0 for j in range(len(radii)))
        self.fps_mods, self.fps_sample_range_list = tuple(fps_mods), tuple(fps_sample_range_list)
        self.in_channels = in_channels
        self.use_xyz = use_xyz or in_channels == 0
        c_first = in_channels + (3 if self.use_xyz else 0)
        self.mlps = nn.ModuleList(shared_mlp((c_first, *chs), eps=bn_eps, momentum=bn_momentum)
                                  for chs in mlp_channels)
        c_cat = sum(chs[-1] for chs in mlp_channels)
        self.aggregation = shared_mlp((c_cat, aggregation_channels), nn.Conv1d, nn.BatchNorm1d)
        self.out_channels = aggregation_channels

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None, textbook: bool = False):
        """
        Args:
            xyz: (B, N, 3) point locations.
            features: (B, N, C_in) point features, or None when ``in_channels == 0``.
            textbook: run the layer as the PointNet++ paper draws it (:meth:`_scale_features_textbook`, and
                the aggregation as a plain ``Conv1d`` module on (B, C, S)): the same numbers, slower. The
                fast path is checked against it (``tests/test_pointnet.py``, notebook 03).
        Returns:
            new_xyz (B, S, 3) the centres (points of ``xyz``), new_features (B, S, C_out),
            indices (B, S) int64 of the centres in ``xyz``; S counts an "FS" range twice.
        """
        B, N, _ = xyz.shape
        if (features is None) != (self.in_channels == 0) or (
                features is not None and features.shape[-1] != self.in_channels):
            got = None if features is None else tuple(features.shape)
            raise ValueError(f"expected features (B, N, {self.in_channels}), got {got}")
        idx = sample_points_by_mode(xyz, features, self.num_points, self.fps_mods,
                                    self.fps_sample_range_list)  # (B, S)
        new_xyz = group_points(xyz, idx.unsqueeze(-1)).squeeze(2)  # (B, S, 3)
        pooled = []
        for radius, min_radius, k, mlp in zip(self.radii, self.min_radii, self.num_samples, self.mlps):
            ball = ball_query(xyz, new_xyz, radius, k, min_radius=min_radius)  # (B, S, K)
            scale = self._scale_features_textbook if textbook else self._scale_features
            pooled.append(scale(mlp, xyz, new_xyz, features, ball))  # (B, S, C_j)
        if textbook:  # the 1×1 Conv1d + BN1d + ReLU module on (B, C, S)
            new_features = self.aggregation(torch.cat(pooled, dim=-1).transpose(1, 2)).transpose(1, 2)
        else:
            new_features = run_shared_mlp(self.aggregation, torch.cat(pooled, dim=-1))  # (B, S, C_out)
        return new_xyz, new_features, idx

    def _scale_features_textbook(self, mlp: nn.Sequential, xyz: torch.Tensor, new_xyz: torch.Tensor,
                                 features: torch.Tensor | None, ball: torch.Tensor) -> torch.Tensor:
        """One scale as the PointNet++ paper draws it: (B, S, C_j).

        ``f'_i = max_{j in ball(i)} h_θ([x_j − x_i, f_j])``: gather every ball member's input, lay the
        groups out as a (B, C, S, K) image, run the shared MLP h_θ as the 1×1 ``Conv2d`` + BN + ReLU modules
        it is stored as, and take the max over the K members. Same result as :meth:`_scale_features`,
        which reorders the work for speed.
        """
        rel = group_points(xyz, ball) - new_xyz.unsqueeze(2)  # (B, S, K, 3): x_j − x_i
        if features is None:
            h_in = rel
        else:
            f_j = group_points(features, ball)  # (B, S, K, C_in)
            h_in = torch.cat([rel, f_j], dim=-1) if self.use_xyz else f_j
        h = mlp(h_in.permute(0, 3, 1, 2).contiguous())  # (B, C_j, S, K): h_θ on every member of every ball
        return h.amax(dim=3).transpose(1, 2)  # max-pool over the ball → (B, S, C_j)

    def _scale_features(self, mlp: nn.Sequential, xyz: torch.Tensor, new_xyz: torch.Tensor,
                        features: torch.Tensor | None, ball: torch.Tensor) -> torch.Tensor:
        """One scale's shared MLP on the grouped points, max-pooled over each ball: (B, S, C_j).

        The MLP's input is ``[xyz_i − centre, features_i]`` for every ball member i. Its first 1×1 conv is
        linear, so it is applied to the N points *before* grouping and the products are gathered:
        ``W [Δxyz, f_i] = W_xyz Δxyz + (f W_f^T)_i``. That is N instead of S·K rows through the widest
        input layer (16× fewer on the second and third `kitti` layers) and no (B, S, K, C_in) copy.
        """
        rel = group_points(xyz, ball) - new_xyz.unsqueeze(2)  # (B, S, K, 3) relative xyz
        if features is None:
            return run_shared_mlp(mlp, rel, max_over=2)
        n_rows, n_grouped = features.shape[0] * features.shape[1], ball.numel()
        if n_grouped < 2 * n_rows or features.shape[-1] < _MIN_CHANNELS_FOR_PRODUCT_FIRST:
            # few or small balls, or few input channels (layer 1: reflectance): grouping first is cheaper
            grouped = group_points(features, ball)  # (B, S, K, C_in)
            return run_shared_mlp(mlp, torch.cat([rel, grouped], dim=-1) if self.use_xyz else grouped, max_over=2)
        weight = mlp[0].weight.flatten(1)  # (C_1, [3 +] C_in)
        w_f = weight[:, 3:] if self.use_xyz else weight
        product = group_points(torch.matmul(features, w_f.t()), ball)  # (B, S, K, C_1)
        if self.use_xyz:  # product += Δxyz @ W_xyz^T, in one pass
            product = torch.addmm(product.view(-1, product.shape[-1]), rel.reshape(-1, 3),
                                  weight[:, :3].t()).view(product.shape)
        return run_shared_mlp(mlp, product, first_product=True, max_over=2)


class PointEncoder(nn.Module):
    """F_P of SimIPU: a stack of ``SetAbstractionMSG`` layers built from a ``PointEncoderConfig``.

    Input (B, N, in_channels): xyz then ``in_channels - 3`` per-point features (reflectance on KITTI).
    Output: locations l (B, M, 3), points of the input cloud, and features f (B, M, C_out) with
    M = the last layer's centre count (``num_sampled``: "FS" ranges count twice; 1024 for ``kitti``)
    and C_out = aggregation_channels[-1].
    """

    def __init__(self, cfg):
        super().__init__()
        n = len(cfg.num_points)
        lists = (cfg.radii, cfg.num_samples, cfg.sa_channels, cfg.aggregation_channels,
                 cfg.fps_mods, cfg.fps_sample_range_lists, cfg.dilated_group)
        if any(len(v) != n for v in lists):
            raise ValueError(f"point encoder config: every per-layer list needs {n} entries "
                             f"(one per SA layer), got lengths {[len(v) for v in lists]}")
        if cfg.in_channels < 3:
            raise ValueError(f"in_channels must be >= 3 (xyz first), got {cfg.in_channels}")
        self.in_channels = cfg.in_channels
        layers, c_in = [], cfg.in_channels - 3
        for i in range(n):
            layers.append(SetAbstractionMSG(
                c_in, cfg.num_points[i], cfg.radii[i], cfg.num_samples[i], cfg.sa_channels[i],
                cfg.aggregation_channels[i], cfg.fps_mods[i], cfg.fps_sample_range_lists[i],
                use_xyz=cfg.use_xyz, dilated_group=cfg.dilated_group[i], bn_eps=cfg.bn_eps,
                bn_momentum=cfg.bn_momentum))
            c_in = cfg.aggregation_channels[i]
        self.sa_layers = nn.ModuleList(layers)
        self.out_channels = c_in

    def forward(self, points: torch.Tensor, return_indices: bool = False):
        """
        Args:
            points: (B, N, in_channels) float, LiDAR frame.
            return_indices: also return the (B, M) int64 indices of the output locations in ``points``.
        Returns:
            xyz (B, M, 3), features (B, M, C_out)[, indices (B, M)].
        """
        if points.dim() != 3 or points.shape[-1] != self.in_channels:
            raise ValueError(f"points must be (B, N, {self.in_channels}), got {tuple(points.shape)}")
        B, N, _ = points.shape
        xyz = points[..., :3].contiguous()  # (B, N, 3)
        features = points[..., 3:].contiguous() if self.in_channels > 3 else None  # (B, N, C_in)
        indices = torch.arange(N, device=points.device).expand(B, N)
        for sa in self.sa_layers:
            xyz, features, idx = sa(xyz, features)  # (B, S, 3), (B, S, C), (B, S)
            indices = indices.gather(1, idx)
        return (xyz, features, indices) if return_indices else (xyz, features)
