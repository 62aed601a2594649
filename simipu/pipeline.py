"""The pre-training sample: one KITTI frame → two point views and a network-ready image (paper §3.1).

Per sample, in the order of the released ``train_pipeline`` (``project_cl/configs/simipu/simipu_kitti.py``):
load (``velodyne_reduced/`` when present) → :func:`crop_to_range` → (``fov_only`` and no
``velodyne_reduced``: :func:`crop_to_fov`, the same camera-view cloud computed on the fly) →
:func:`sample_points` (``num_points``) = ``points_a`` → image: random-scale resize (keep ratio) →
random horizontal flip → :func:`make_view` = ``points_b``, ``T_ab`` (flipped with the image when
``sync_flip``) → image normalisation (``img_norm``) → pad to a multiple of ``img_size_divisor``;
``lidar2img`` becomes ``img_aug @ lidar2img`` (LiDAR → network-input pixels).

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

from .data import REDUCED_DIR, KittiDataset, crop_to_fov, crop_to_range, sample_points
from .errors import DataError
from .views import flip_image, make_view, pad_image, resize_image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # torchvision ResNet weights
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# The released img_norm_cfg (mmdetection's caffe-style): BGR channel order, per-channel mean on 0-255
# pixels, std 1 (``mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0], to_rgb=False``).
CAFFE_BGR_MEAN = np.array([103.530, 116.280, 123.675], dtype=np.float32)
# mode -> (channel order taken from RGB, scale, shift): out = rgb[..., order] * scale + shift
_NORMS = {
    "imagenet_rgb": ([0, 1, 2], (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32),
                     (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)),
    "caffe_bgr": ([2, 1, 0], np.ones(3, np.float32), -CAFFE_BGR_MEAN),
}


def _norm(mode: str):
    if mode not in _NORMS:
        raise ValueError(f"image normalisation must be one of {sorted(_NORMS)}, got {mode!r}")
    return _NORMS[mode]


def normalize_image(img: np.ndarray, mode: str = "caffe_bgr") -> np.ndarray:
    """(H, W, 3) uint8 RGB → (H, W, 3) float32 network input.

    ``caffe_bgr`` (released SimIPU, and its downstream configs): channels reordered to BGR, minus
    (103.530, 116.280, 123.675), on 0-255 values. ``imagenet_rgb`` (torchvision's weights):
    ``(rgb/255 − mean)/std`` with ImageNet statistics. Both map the mean colour to 0, the padding value.
    """
    order, scale, shift = _norm(mode)
    out = img[..., order].astype(np.float32)
    out *= scale  # in place: one copy instead of four temporaries on a 2400×720 image
    out += shift
    return out


def denormalize_image(image: np.ndarray | torch.Tensor, mode: str = "caffe_bgr") -> np.ndarray:
    """(3, H, W) normalised float → (H, W, 3) uint8 RGB (for pictures and checks); inverse of
    :func:`normalize_image` with the same ``mode``."""
    order, scale, shift = _norm(mode)
    image = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    values = (image.transpose(1, 2, 0) - shift) / scale
    rgb = values[..., np.argsort(order)]
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


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
                                   camera=cfg.camera, point_dims=cfg.point_dims,
                                   max_points=cfg.max_points)
        # velodyne_reduced/ holds the camera-view cloud already; otherwise fov_only crops on the fly
        self.crop_fov = cfg.fov_only and self.frames.velodyne_dir != REDUCED_DIR
        self.epoch = 0

    def describe_points(self) -> str:
        """One line for the log: which point folder is read and whether the cloud is the camera view."""
        where = f"{self.frames.root}/*/{self.frames.velodyne_dir}/"
        if self.frames.velodyne_dir == REDUCED_DIR:
            return f"points: {where} (camera-view clouds, as the released config reads)"
        if self.crop_fov:
            return f"points: {where} cropped to the image_{self.frames.camera} field of view on the fly"
        return f"points: {where} whole scans (fov_only=false: points outside the image take no part in L_inter)"

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
        if self.crop_fov:
            kept = crop_to_fov(kept, frame["calib"].lidar2img, image.shape[:2])
        if len(kept) == 0:
            path = self.frames.paths(frame["frame_id"], frame["split_dir"])["points"]
            raise DataError(path, f"no point left after cropping {len(points)} points to point_range "
                                  f"{tuple(cfg.point_range)}" + (" and the camera view" if self.crop_fov else ""))
        points_a = sample_points(kept, cfg.num_points, rng)                     # (N, 4)

        image, img_aug = resize_image(image, cfg.img_scale_range, rng)
        flipped = bool(rng.random() < cfg.img_flip_prob)
        if flipped:
            image, flip_aug = flip_image(image)
            img_aug = flip_aug @ img_aug
        # RandomFlip3D(sync_2d=True): view b's bird's-eye-view flip is the image's flip
        points_b, T = make_view(points_a, rng, cfg, flip=flipped if cfg.sync_flip else None)  # (N, 4)
        image_hw = np.array(image.shape[:2], dtype=np.int64)
        image, _ = pad_image(normalize_image(image, cfg.img_norm), cfg.img_size_divisor)  # (Hp, Wp, 3)
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
    """Stack samples into a training batch; images padded to the batch's max (Hp, Wp).

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
