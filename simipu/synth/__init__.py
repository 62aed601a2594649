"""Synthetic KITTI-format street scenes: ray-cast LiDAR, shaded camera images, labels and
simulator-only ground truth (dense depth, instance ids). Entry point: :func:`generate`.

    >>> from simipu.synth import generate
    >>> generate("data/synth", frames=100, seed=0)   # doctest: +SKIP
"""
from .camera import KITTI_IMAGE_SIZE, kitti_calib, lidar2img
from .writer import generate, make_frame

__all__ = ["generate", "make_frame", "kitti_calib", "lidar2img", "KITTI_IMAGE_SIZE"]
