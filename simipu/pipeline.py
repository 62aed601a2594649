"""The pre-training sample: one KITTI frame → two point views and a network-ready image (SPEC §1.1).

Per sample: load → :func:`crop_to_range` → (``fov_only``: :func:`crop_to_fov`) →
:func:`sample_points` (``num_points``) = ``points_a`` → :func:`make_view` = ``points_b``, ``T_ab`` →
image: random-scale resize (keep ratio) → random horizontal flip → ImageNet normalisation → pad to a
multiple of ``img_size_divisor``; ``lidar2img`` becomes ``img_aug @ lidar2img`` (LiDAR → network-input
pixels).

Image sizes: **each sample draws its own scale**; :func:`collate` then pads every image of the batch
(bottom/right, value 0 = the mean colour after normalisation) to the batch's largest height and
width (each already a multiple of 32). Padding never moves pixels, so ``lidar2img`` stays valid;
``image_hw`` keeps each valid (resized, unpadded) size.

Randomness: sample ``i`` of epoch ``e`` uses ``np.random.default_rng([seed, e, i])``, whatever the
worker or process, so data are reproducible and a resumed run sees the same samples. Call
:meth:`PretrainDataset.set_epoch` before each epoch (DataLoader workers copy the dataset when the
iterator is created, so with ``persistent_workers=False``, the default, the new epoch reaches them).
"""
from __future__ import annotations

import numpy as np
import torch

from .data import KittiDataset, crop_to_fov, crop_to_range, sample_points
from .errors import DataError
from .views import flip_image, make_view, pad_image, resize_image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # torchvision ResNet weights
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_NORM_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)
_NORM_SHIFT = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)


def normalize_image(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (H, W, 3) float32, ``(img/255 − mean)/std`` with ImageNet statistics."""
    out = img.astype(np.float32)
    out *= _NORM_SCALE  # in place: one copy instead of four temporaries on a 2400×720 image
    out += _NORM_SHIFT
    return out


def denormalize_image(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """(3, H, W) normalised float → (H, W, 3) uint8 RGB (for pictures and checks)."""
    image = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    rgb = image.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


class PretrainDataset(torch.utils.data.Dataset):
    """SimIPU pre-training samples over a KITTI-format root.

    Args:
        cfg: a :class:`simipu.config.DataConfig` (or any object with its attribute names).
        split_override: splits to use instead of ``cfg.splits``.

    ``dataset[i]`` → dict of numpy arrays: ``points_a`` (N, 4) float32 (x, y, z, reflectance, LiDAR
    frame), ``points_b`` (N, 4) float32 (= T(points_a), shuffled), ``T_ab`` (4, 4) float32, ``image``
    (3, Hp, Wp) float32 normalised, ``lidar2img`` (4, 4) float32 (LiDAR → network-input pixels),
    ``image_hw`` (2,) int64 valid size, ``frame_id`` str.
    """

    def __init__(self, cfg, split_override=None):
        self.cfg = cfg
        self.frames = KittiDataset(cfg.root, split_override or cfg.splits, velodyne_dir=cfg.velodyne_dir,
                                   camera=cfg.camera, point_dims=cfg.point_dims)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.frames)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([int(self.cfg.seed), self.epoch, int(index)])

    def __getitem__(self, index: int) -> dict:
        cfg, rng = self.cfg, self.rng(index)
        frame = self.frames[index]
        points, image = frame["points"], frame["image"]
        kept = crop_to_range(points, cfg.point_range)
        if cfg.fov_only:
            kept = crop_to_fov(kept, frame["calib"].lidar2img, image.shape[:2])
        if len(kept) == 0:
            path = self.frames.paths(frame["frame_id"], frame["split_dir"])["points"]
            raise DataError(path, f"no point left after cropping {len(points)} points to point_range "
                                  f"{tuple(cfg.point_range)}" + (" and the camera view" if cfg.fov_only else ""))
        points_a = sample_points(kept, cfg.num_points, rng)                     # (N, 4)
        points_b, T = make_view(points_a, rng, cfg)                             # (N, 4), shuffled

        image, img_aug = resize_image(image, cfg.img_scale_range, rng)
        if rng.random() < cfg.img_flip_prob:
            image, flip_aug = flip_image(image)
            img_aug = flip_aug @ img_aug
        image_hw = np.array(image.shape[:2], dtype=np.int64)
        image, _ = pad_image(normalize_image(image), cfg.img_size_divisor)     # (Hp, Wp, 3)
        return dict(
            points_a=points_a,
            points_b=points_b,
            T_ab=T.matrix.astype(np.float32),
            image=np.ascontiguousarray(image.transpose(2, 0, 1)),               # (3, Hp, Wp)
            lidar2img=(img_aug @ frame["calib"].lidar2img).astype(np.float32),
            image_hw=image_hw,
            frame_id=frame["frame_id"],
        )


def collate(samples: list[dict]) -> dict:
    """Stack samples into the batch of CONTRACTS.md; images padded to the batch's max (Hp, Wp).

    Returns ``points_a``/``points_b`` (B, N, 4) float32, ``T_ab`` (B, 4, 4) float32, ``image``
    (B, 3, Hp, Wp) float32, ``lidar2img`` (B, 4, 4) float32, ``image_hw`` (B, 2) int64, ``frame_id`` list.
    """
    Hp = max(s["image"].shape[1] for s in samples)
    Wp = max(s["image"].shape[2] for s in samples)
    images = torch.zeros(len(samples), 3, Hp, Wp, dtype=torch.float32)                # (B, 3, Hp, Wp)
    for b, s in enumerate(samples):
        _, h, w = s["image"].shape
        images[b, :, :h, :w] = torch.from_numpy(s["image"])

    def stack(key):
        return torch.from_numpy(np.stack([s[key] for s in samples]))

    return {
        "points_a": stack("points_a"),
        "points_b": stack("points_b"),
        "T_ab": stack("T_ab"),
        "image": images,
        "lidar2img": stack("lidar2img"),
        "image_hw": stack("image_hw"),
        "frame_id": [s["frame_id"] for s in samples],
    }
