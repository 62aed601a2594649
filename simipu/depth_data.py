"""Data for the downstream depth probe (paper appendix C): images and ground-truth depth of a KITTI-format root.

Ground truth, per frame of ``ROOT/ImageSets/{split}.txt`` (frames live under ``ROOT/training``):

* **dense** — ``training/depth_2/ID.png`` when it exists (written by :mod:`simipu.synth`): uint16, metres × 256,
  0 = no value (sky, or farther than 256 m). Resized to the probe's size with nearest neighbour.
* **sparse** — otherwise (real KITTI), the LiDAR cloud projected into image_2 with ``lidar2img``: each pixel hit
  by a point holds the nearest hit's depth (camera-axis distance, metres), every other pixel is 0. Points are
  projected straight into the resized image (``u' = u·W'/W``), which keeps every point instead of letting a
  nearest-neighbour resize drop most of them.

Images are resized to ``image_size = (W, H)`` (bilinear, aspect ratio not kept — KITTI images are all about
1242×375) and normalised as the encoder was trained: ``imagenet_rgb`` (torchvision weights, the default) or
``caffe_bgr`` (SimIPU's ``data.img_norm``), see :func:`simipu.pipeline.normalize_image`.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import DataError

_FRAME_ID = re.compile(r"^[A-Za-z0-9_\-]+$")


def read_depth_png(path) -> np.ndarray:
    """KITTI-style depth PNG (uint16, metres × 256, 0 = no value) → (H, W) float32 metres, 0 where unknown."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            raw = np.asarray(im)
    except FileNotFoundError:
        raise DataError(path, "depth file does not exist") from None
    except OSError as e:
        raise DataError(path, f"cannot read depth PNG ({e})") from None
    if raw.ndim != 2 or raw.dtype not in (np.uint16, np.int32, np.uint8):
        raise DataError(path, f"expected a single-channel 16-bit PNG (metres x 256), got {raw.dtype} "
                              f"array of shape {raw.shape}")
    return raw.astype(np.float32) / 256.0


def resize_nearest(depth: np.ndarray, out_hw) -> np.ndarray:
    """(H, W) → (H', W') by nearest neighbour: output pixel centre ``(i + 0.5)·H/H'`` reads input row ``⌊·⌋``."""
    H, W = depth.shape
    Ho, Wo = out_hw
    rows = np.minimum(((np.arange(Ho) + 0.5) * H / Ho).astype(np.int64), H - 1)
    cols = np.minimum(((np.arange(Wo) + 0.5) * W / Wo).astype(np.int64), W - 1)
    return depth[rows[:, None], cols[None, :]]


def sparse_depth_map(xyz_lidar: np.ndarray, lidar2img: np.ndarray, image_hw, out_hw=None) -> np.ndarray:
    """Project LiDAR points into image_2 → (H', W') float32 depth map, 0 where no point lands.

    Args:
        xyz_lidar: (N, 3) points in the velodyne frame.
        lidar2img: (4, 4) ``P2 @ R0_rect @ Tr_velo_to_cam`` of the original ``image_hw = (H, W)`` image.
        out_hw: size of the map (default ``image_hw``); pixel coordinates are scaled by ``W'/W`` and ``H'/H``.
    Pixel ``(⌊v'⌋, ⌊u'⌋)`` receives the point (pixel ``i`` covers ``[i, i + 1)``, see :mod:`simipu.geometry`);
    when several points land on one pixel the nearest one wins (the others are hidden behind it).
    """
    from .geometry import in_image, project_points
    H, W = image_hw
    Ho, Wo = out_hw if out_hw is not None else image_hw
    uv, depth = project_points(np.asarray(xyz_lidar, np.float64), np.asarray(lidar2img, np.float64))
    uv = uv * np.array([Wo / W, Ho / H])                                  # (N, 2) pixels of the output map
    keep = in_image(uv, depth, (Ho, Wo))
    u, v, d = uv[keep, 0].astype(np.int64), uv[keep, 1].astype(np.int64), depth[keep]
    out = np.full(Ho * Wo, np.inf)
    np.minimum.at(out, v * Wo + u, d)                                     # nearest point per pixel
    out[np.isinf(out)] = 0.0
    return out.reshape(Ho, Wo).astype(np.float32)


def normalise_image(image: np.ndarray, size, img_norm: str = "imagenet_rgb") -> np.ndarray:
    """(H, W, 3) uint8 RGB → (3, H', W') float32, resized to ``size = (W', H')``, normalised by
    :func:`simipu.pipeline.normalize_image` (``imagenet_rgb`` for torchvision weights, ``caffe_bgr`` for SimIPU's)."""
    from .pipeline import normalize_image
    resized = np.asarray(Image.fromarray(image).resize(tuple(size), Image.BILINEAR))
    return normalize_image(resized, img_norm).transpose(2, 0, 1).copy()


def read_split(root, split: str) -> list[str]:
    """Frame ids of ``ROOT/ImageSets/{split}.txt`` (all under ``training/``)."""
    list_file = Path(root) / "ImageSets" / f"{split}.txt"
    if not list_file.is_file():
        raise DataError(list_file, f"split file for '{split}' does not exist (the depth probe trains on "
                                   f"ImageSets/train.txt and evaluates on ImageSets/val.txt)")
    ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    bad = [i for i in ids if not _FRAME_ID.match(i)]
    if bad:
        raise DataError(list_file, f"frame id {bad[0]!r} is not a plain file name")
    if not ids:
        raise DataError(list_file, "lists no frames")
    return ids


class DepthDataset(torch.utils.data.Dataset):
    """Images and ground-truth depth of one split of a KITTI-format root, at the probe's resolution.

    ``dataset[i]`` → dict(image (3, H, W) float32 normalised, depth (1, H, W) float32 metres with 0 = no
    ground truth, frame_id str), with ``(W, H) = image_size``. ``flip_prob`` flips image and depth together
    (training augmentation). ``source`` says per frame where the ground truth came from.
    """

    def __init__(self, root, split: str = "train", image_size=(384, 128), flip_prob: float = 0.0,
                 velodyne_dir: str = "velodyne", img_norm: str = "imagenet_rgb"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "data root does not exist")
        self.ids = read_split(self.root, split)
        self.image_size, self.flip_prob, self.velodyne_dir = tuple(image_size), flip_prob, velodyne_dir
        self.img_norm = img_norm
        d = self.root / "training"
        missing = [i for i in self.ids if not (d / "image_2" / f"{i}.png").is_file()]
        if missing:
            raise DataError(d / "image_2", f"{len(missing)} frame(s) of ImageSets/{split}.txt have no image "
                                           f"(e.g. {missing[:3]}; expected image_2/ID.png)")
        self.source = {}
        for i in self.ids:
            if (d / "depth_2" / f"{i}.png").is_file():
                self.source[i] = "dense"
            elif (d / velodyne_dir / f"{i}.bin").is_file() and (d / "calib" / f"{i}.txt").is_file():
                self.source[i] = "sparse"
            else:
                raise DataError(d, f"frame {i} has no ground-truth depth: expected depth_2/{i}.png, or "
                                   f"{velodyne_dir}/{i}.bin and calib/{i}.txt to project LiDAR points")

    def __len__(self) -> int:
        return len(self.ids)

    def depth(self, frame_id: str, image_hw) -> np.ndarray:
        """(H', W') float32 ground-truth depth at the probe's size; ``image_hw`` is the original image size."""
        from .data import load_points, read_calib
        W, H = self.image_size
        d = self.root / "training"
        if self.source[frame_id] == "dense":
            dense = read_depth_png(d / "depth_2" / f"{frame_id}.png")
            if dense.shape != tuple(image_hw):
                raise DataError(d / "depth_2" / f"{frame_id}.png", f"depth map is {dense.shape[::-1]} (W, H) "
                                f"but its image is {tuple(image_hw)[::-1]}; expected the same size")
            return resize_nearest(dense, (H, W))
        calib = read_calib(d / "calib" / f"{frame_id}.txt")
        points = load_points(d / self.velodyne_dir / f"{frame_id}.bin")
        return sparse_depth_map(points[:, :3], calib.lidar2img, image_hw, (H, W))

    def __getitem__(self, index: int) -> dict:
        from .data import load_image
        frame_id = self.ids[index]
        rgb = load_image(self.root / "training" / "image_2" / f"{frame_id}.png")
        image = normalise_image(rgb, self.image_size, self.img_norm)     # (3, H, W)
        depth = self.depth(frame_id, rgb.shape[:2])[None]                 # (1, H, W)
        if self.flip_prob > 0 and torch.rand(()).item() < self.flip_prob:   # torch RNG: seeded per worker
            image, depth = image[:, :, ::-1].copy(), depth[:, :, ::-1].copy()
        return dict(image=torch.from_numpy(image), depth=torch.from_numpy(depth), frame_id=frame_id)
