"""The two views of SimIPU (paper §3.1): a recorded 3D transform ``T`` and projection-consistent image ops.

3D: ``p_b = T(p_a)``, in the order of the released pipeline (``GlobalRotScaleTrans`` with
``points_center=c``, then ``RandomFlip3D``; ``mmdet3d/datasets/pipelines/transforms_3d.py`` of
zhyever/SimIPU): rotate by θ about z through the centre c, scale by s about the origin, translate by t,
flip y → −y (``F = diag(1, −1, 1)``)::

    T(x) = F·(s·(R_z(θ)·(x − c) + c) + t)

(``scale_about_center=True`` scales about c instead: ``F·(s·R_z(θ)·(x − c) + c + t)``). A
:class:`ViewTransform` applies and inverts it exactly on points and on any downsampled locations
(numpy or torch, shape (…, 3), LiDAR frame). With ``sync_flip`` (the release's ``sync_2d=True``) view
b is flipped exactly when the image is.

Image: resize (keep ratio), horizontal flip, pad to a multiple of 32. Each op returns the new image
and a 4×4 ``img_aug`` acting on the homogeneous projection ``(u·d, v·d, d, 1)`` so that the
network-input projection is ``img_aug @ lidar2img`` (compose: ``aug2 @ aug1``). A pixel-space affine
``u' = a·u + b`` is the row ``(a, 0, b, 0)``: the offset multiplies ``d``. Pixel ``i`` covers
``[i, i + 1)`` (see :mod:`simipu.geometry`), so resizing by ``s`` maps ``u' = s·u`` (exactly as PIL
resamples) and flipping a width-``W`` image maps ``u' = W − u``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image


@dataclass
class ViewTransform:
    """``T(x) = F·(s·(R_z(θ)·(x − c) + c) + t)`` on xyz_lidar; record of one random view."""
    angle: float = 0.0                      # θ, radians about +z
    scale: float = 1.0                      # s, isotropic
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))  # t (3,)
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))       # c (3,), the rotation centre
    flip_y: bool = False                    # F = diag(1, −1, 1) when True
    scale_about_center: bool = False        # s acts about c instead of the origin

    @property
    def _flip(self) -> np.ndarray:
        return np.diag([1.0, -1.0 if self.flip_y else 1.0, 1.0])

    @property
    def linear(self) -> np.ndarray:
        """(3, 3) ``A = F·s·R_z(θ)`` (float64)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return self.scale * self._flip @ R

    @property
    def offset(self) -> np.ndarray:
        """(3,) ``b`` with ``T(x) = A·x + b``: ``F·(s·c + t) − A·c``, or ``F·(c + t) − A·c`` about c."""
        c = np.asarray(self.center, dtype=np.float64)
        t = np.asarray(self.translation, dtype=np.float64)
        return self._flip @ ((c if self.scale_about_center else self.scale * c) + t) - self.linear @ c

    @property
    def matrix(self) -> np.ndarray:
        """(4, 4) float64 affine: ``[A b; 0 1]``."""
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = self.linear, self.offset
        return M

    def _ab(self, like):
        A, b = self.linear, self.offset
        if isinstance(like, torch.Tensor):
            return (torch.as_tensor(A, dtype=like.dtype, device=like.device),
                    torch.as_tensor(b, dtype=like.dtype, device=like.device))
        return A, b

    def apply(self, xyz):
        """``T(xyz)``; xyz (…, 3) numpy or torch → same shape, library and (float) dtype."""
        A, b = self._ab(xyz)
        return xyz @ A.T + b

    def inverse(self, xyz):
        """``T⁻¹(xyz) = A⁻¹·(xyz − b)`` with ``A⁻¹ = F·R_zᵀ/s``; xyz (…, 3) numpy or torch."""
        A, b = self._ab(xyz)
        A_inv = A.T / self.scale ** 2                  # A·Aᵀ = s²·I (rotation times reflection)
        return (xyz - b) @ A_inv.T

    @classmethod
    def random(cls, rng: np.random.Generator, rot_range=(-math.pi / 2, math.pi / 2), scale_range=(0.75, 1.25),
               translation_std=(0.0, 0.0, 0.0), center=(35.2, 0.0, -1.0), flip_prob=0.5,
               flip: bool | None = None, scale_about_center: bool = False) -> "ViewTransform":
        """Draw θ ~ U(rot_range), s ~ U(scale_range), t ~ N(0, std²), flip ~ Bernoulli(flip_prob), in that order.

        ``flip`` given (True/False) is used instead of a draw: the synchronised flip of the release.
        """
        angle = float(rng.uniform(*rot_range))
        scale = float(rng.uniform(*scale_range))
        translation = rng.normal(0.0, 1.0, 3) * np.asarray(translation_std, dtype=np.float64)
        flip = bool(rng.random() < flip_prob) if flip is None else bool(flip)
        return cls(angle, scale, translation, np.asarray(center, dtype=np.float64), flip, scale_about_center)


def make_view(points: np.ndarray, rng: np.random.Generator, cfg,
              flip: bool | None = None) -> tuple[np.ndarray, ViewTransform]:
    """View b of a cloud: ``p_b = T(p_a)`` on xyz (reflectance kept), then a point shuffle.

    Args:
        points: (N, C ≥ 3) float32, LiDAR frame.
        cfg: anything with ``rot_range, scale_range, translation_std, center, flip_prob`` (DataConfig;
            ``scale_about_center`` is read when present).
        flip: the bird's-eye-view flip to use (e.g. the image's, ``sync_flip``); None draws it.
    Returns:
        ``points_b`` (N, C) float32 in shuffled order, and ``T``.
    """
    T = ViewTransform.random(rng, cfg.rot_range, cfg.scale_range, cfg.translation_std, cfg.center, cfg.flip_prob,
                             flip, getattr(cfg, "scale_about_center", False))
    points_b = np.array(points, dtype=np.float32)
    points_b[:, :3] = T.apply(points[:, :3].astype(np.float64))
    return points_b[rng.permutation(len(points_b))], T


def _pixel_affine(a_u: float, b_u: float, a_v: float, b_v: float) -> np.ndarray:
    """4×4 ``img_aug`` of ``u' = a_u·u + b_u, v' = a_v·v + b_v`` on ``(u·d, v·d, d, 1)``."""
    M = np.eye(4)
    M[0, 0], M[0, 2], M[1, 1], M[1, 2] = a_u, b_u, a_v, b_v
    return M


def rescale_size(W: int, H: int, scale) -> tuple[int, int]:
    """New (W', H') keeping the ratio so the image fits a (w, h) target (long edge ↔ long edge), as mmcv."""
    long_edge, short_edge = max(scale), min(scale)
    f = min(long_edge / max(H, W), short_edge / min(H, W))
    return int(W * f + 0.5), int(H * f + 0.5)


def resize_image(img: np.ndarray, scale, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Resize an (H, W, 3) uint8 image, keeping its aspect ratio (bilinear, PIL).

    ``scale`` is a (w, h) target, or a range ``((w0, h0), (w1, h1))``: then, as mmdetection's
    multi-scale "range" mode, a long edge in [max(w0,h0), max(w1,h1)] and a short edge in
    [min(w0,h0), min(w1,h1)] are drawn from ``rng`` and the image is fitted into them.
    Returns ``(image (H', W', 3), img_aug (4, 4))``.
    """
    H, W = img.shape[:2]
    if np.ndim(scale) == 2:
        if rng is None:
            raise ValueError("resize_image with a scale range needs rng")
        (w0, h0), (w1, h1) = scale
        longs, shorts = sorted((max(w0, h0), max(w1, h1))), sorted((min(w0, h0), min(w1, h1)))
        scale = (int(rng.integers(longs[0], longs[1] + 1)), int(rng.integers(shorts[0], shorts[1] + 1)))
    W2, H2 = rescale_size(W, H, scale)
    out = np.asarray(Image.fromarray(img).resize((W2, H2), Image.BILINEAR))
    sx, sy = W2 / W, H2 / H
    return out, _pixel_affine(sx, 0.0, sy, 0.0)


def flip_image(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: ``u' = W − u``. Returns ``(image, img_aug (4, 4))``."""
    W = img.shape[1]
    return np.ascontiguousarray(img[:, ::-1]), _pixel_affine(-1.0, float(W), 1.0, 0.0)


def pad_image(img: np.ndarray, divisor: int = 32, value=0) -> tuple[np.ndarray, np.ndarray]:
    """Pad (H, W, C) at the bottom and right up to multiples of ``divisor``; pixels do not move (identity)."""
    H, W = img.shape[:2]
    Hp, Wp = -(-H // divisor) * divisor, -(-W // divisor) * divisor
    out = np.full((Hp, Wp) + img.shape[2:], value, dtype=img.dtype)
    out[:H, :W] = img
    return out, np.eye(4)
