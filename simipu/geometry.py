"""Projection of LiDAR points into the image and bilinear sampling of an image feature map (paper Eq. 5-6).

Pixel convention (used by ``data``, ``views`` and here, as in mmdetection3d): ``uv_img`` are continuous
image coordinates, ``u`` right and ``v`` down, in which pixel column ``i`` covers ``[i, i + 1)`` (its
centre is at ``i + 0.5``). A point lies inside a ``(H, W)`` image when ``0 ≤ u < W`` and ``0 ≤ v < H``;
this region is mapped exactly onto itself by resizing (``u' = s·u``) and flipping (``u' = W − u``).

Feature-grid convention of :func:`sample_features`: cell ``j`` of a stride-``s`` map covers pixels
``[j·s, (j + 1)·s)``, so its centre is at ``u = (j + 0.5)·s``; a point at ``u`` therefore sits at
feature coordinate ``x = u/s − 0.5``, and ``grid_sample(align_corners=True)`` puts ``x = 0`` and
``x = w − 1`` on the centres of the first and last cells (``u = s/2`` and ``u = W_p − s/2``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-6


def project_points(xyz, lidar2img):
    """Project ``xyz_lidar`` with a 4×4 ``lidar2img`` (optionally ``img_aug @ lidar2img``).

    Args:
        xyz: (N, 3) or (B, N, 3), numpy or torch (LiDAR frame, metres).
        lidar2img: (4, 4) or (B, 4, 4), same library as ``xyz``.
    Returns:
        ``uv`` (…, N, 2) pixel coordinates and ``depth`` (…, N) along the camera axis. Points at or
        behind the camera (``depth ≤ 1e-6``) get ``uv`` divided by 1e-6: mask them with :func:`in_image`.
    """
    if isinstance(xyz, torch.Tensor):
        lidar2img = torch.as_tensor(lidar2img, dtype=xyz.dtype, device=xyz.device)
        ones = torch.ones_like(xyz[..., :1])
        hom = torch.cat([xyz, ones], -1) @ lidar2img.transpose(-1, -2)          # (…, N, 4)
        depth = hom[..., 2]
        uv = hom[..., :2] / depth.clamp(min=EPS).unsqueeze(-1)
        return uv, depth
    xyz = np.asarray(xyz)
    lidar2img = np.asarray(lidar2img)
    hom = np.concatenate([xyz, np.ones_like(xyz[..., :1])], -1) @ np.swapaxes(lidar2img, -1, -2)
    depth = hom[..., 2]
    uv = hom[..., :2] / np.maximum(depth, EPS)[..., None]
    return uv, depth


def in_image(uv, depth, image_hw):
    """Bool mask (…, N): ``depth > 1e-6`` and ``0 ≤ u < W``, ``0 ≤ v < H``.

    ``image_hw`` is ``(H, W)`` or, batched, a (B, 2) array/tensor of per-sample sizes.
    """
    if isinstance(uv, torch.Tensor):
        hw = torch.as_tensor(image_hw, dtype=uv.dtype, device=uv.device)
    else:
        hw = np.asarray(image_hw, dtype=np.float64)
    H, W = hw[..., 0], hw[..., 1]
    if hw.ndim == 2:                                                 # (B, 2) → broadcast over N
        H, W = H[:, None], W[:, None]
    u, v = uv[..., 0], uv[..., 1]
    return (depth > EPS) & (u >= 0) & (u < W) & (v >= 0) & (v < H)


def pixels_to_grid(uv: torch.Tensor, feat_hw, stride: int) -> torch.Tensor:
    """Pixel coords (…, 2) → ``grid_sample`` coords in [−1, 1] with align_corners=True (module docstring)."""
    h, w = feat_hw
    x = uv[..., 0] / stride - 0.5                                    # feature-grid column
    y = uv[..., 1] / stride - 0.5
    gx = 2 * x / max(w - 1, 1) - 1
    gy = 2 * y / max(h - 1, 1) - 1
    return torch.stack([gx, gy], -1)


def sample_features(feat_map: torch.Tensor, uv: torch.Tensor, image_hw=None, stride: int = 32) -> torch.Tensor:
    """Bilinearly sample a stride-``s`` feature map at pixel positions (Eq. 6: ``f_g``).

    Args:
        feat_map: (B, C, h, w) map of the network-input image of padded size (h·s, w·s).
        uv: (B, N, 2) pixel coords in that network-input image (see the convention above).
        image_hw: optional (B, 2) valid (unpadded) image sizes; points outside them get zero features.
        stride: s, 32 for the last ResNet stage.
    Returns:
        (B, N, C) features; zeros outside the map (``padding_mode="zeros"``).
    """
    B, C, h, w = feat_map.shape
    if uv.ndim != 3 or uv.shape[0] != B or uv.shape[-1] != 2:
        raise ValueError(f"uv must be (B={B}, N, 2), got {tuple(uv.shape)}")
    # Sub-pixel positions need float32 even under bf16/fp16 autocast (a bf16 pixel coordinate is ±4 px).
    dtype = torch.promote_types(feat_map.dtype, torch.float32)
    grid = pixels_to_grid(uv.to(dtype), (h, w), stride)             # (B, N, 2)
    f = F.grid_sample(feat_map.to(dtype), grid[:, :, None, :], mode="bilinear", padding_mode="zeros",
                      align_corners=True)                            # (B, C, N, 1)
    f = f[..., 0].transpose(1, 2)                                    # (B, N, C)
    if image_hw is not None:
        depth = torch.ones_like(uv[..., 0])
        f = f * in_image(uv, depth, image_hw).unsqueeze(-1).to(f.dtype)
    return f


def sample_image(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear colour of an (H, W, C) image at (N, 2) positions → (N, C) float64 (edges clamped).

    Same convention as :func:`sample_features` with stride 1 (pixel ``i`` covers ``[i, i + 1)``);
    used to paint points with image colours and to check projections.
    """
    H, W = img.shape[:2]
    u = np.clip(uv[:, 0] - 0.5, 0, W - 1)
    v = np.clip(uv[:, 1] - 0.5, 0, H - 1)
    u0 = np.minimum(np.floor(u).astype(np.int64), max(W - 2, 0))
    v0 = np.minimum(np.floor(v).astype(np.int64), max(H - 2, 0))
    u1, v1 = np.minimum(u0 + 1, W - 1), np.minimum(v0 + 1, H - 1)
    a, b = (u - u0)[:, None], (v - v0)[:, None]
    img = np.asarray(img, dtype=np.float64)
    return ((1 - a) * (1 - b) * img[v0, u0] + a * (1 - b) * img[v0, u1]
            + (1 - a) * b * img[v1, u0] + a * b * img[v1, u1])
