"""Write synthetic frames in the exact KITTI object layout, plus simulator-only ground truth.

Layout under ``out``::

    training/velodyne/NNNNNN.bin           (N, 4) float32 x y z reflectance, velodyne frame
    training/image_2/NNNNNN.png            (H, W, 3) uint8 RGB, left colour camera
    training/calib/NNNNNN.txt              KITTI calib text (P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo)
    training/label_2/NNNNNN.txt            KITTI label lines (Car / Pedestrian / Cyclist)
    training/depth_2/NNNNNN.png            (H, W) uint16, camera-2 depth in metres x 256, 0 = no value
    training/instance_2/NNNNNN.png         (H, W) uint16 instance id per pixel, 0 = stuff / sky
    training/velodyne_instance/NNNNNN.bin  (N,) int32 instance id per point, same order as velodyne
    ImageSets/{train,val,trainval}.txt

Instance ids 1..L are the objects of label lines 1..L of that frame (in order); higher ids
are things that are not labelled (outside or hardly visible in the image).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..data import write_calib
from .camera import KITTI_IMAGE_SIZE, kitti_calib, lidar2img, pixel_rays, render
from .labels import kitti_labels
from .lidar import scan
from .scene import make_scene, raycasting_scene

FOLDERS = ("velodyne", "image_2", "calib", "label_2", "depth_2", "instance_2", "velodyne_instance")


def fov_mask(xyz: np.ndarray, calib: dict[str, np.ndarray], image_size: tuple[int, int]) -> np.ndarray:
    """(N,) bool: LiDAR points (N, 3) that project inside image_2 in front of the camera."""
    W, H = image_size
    uvd = np.concatenate([xyz, np.ones((len(xyz), 1))], 1) @ lidar2img(calib).T
    d = uvd[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = uvd[:, 0] / d, uvd[:, 1] / d
    return (d > 1e-3) & (u >= 0) & (u < W) & (v >= 0) & (v < H)


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator that simulates frame ``index`` of the dataset with seed ``seed``."""
    return np.random.default_rng([seed, index])


def make_frame(seed: int, index: int, image_size: tuple[int, int] = KITTI_IMAGE_SIZE, fov_only: bool = False,
               beams: int = 64, azimuth_step_deg: float = 0.1728) -> dict:
    """Simulate frame ``index`` of the dataset with seed ``seed`` (deterministic in both).

    Returns dict(points (N, 4) f32, point_instance (N,) i32, rgb (H, W, 3) u8, depth (H, W) f32 m,
    instance (H, W) i32, labels list[str], calib dict of matrices).
    """
    rng = frame_rng(seed, index)
    scene = make_scene(rng)  # first draws from rng: make_scene(frame_rng(seed, index)) rebuilds it
    rcs = raycasting_scene(scene.mesh)
    calib = kitti_calib(image_size)
    half_fov = np.degrees(np.arctan2(image_size[0] / 2, calib["P2"][0, 0])) + 4.0
    points, point_inst = scan(scene, rcs, rng, beams=beams, azimuth_step_deg=azimuth_step_deg,
                              azimuth_range_deg=(-half_fov, half_fov) if fov_only else None)
    if fov_only:
        keep = fov_mask(points[:, :3], calib, image_size)
        points, point_inst = points[keep], point_inst[keep]
    rays = pixel_rays(calib, image_size)
    image = render(scene, rcs, rays, rng)
    labels, new_id = kitti_labels(scene, calib, rays, image["instance"])
    return dict(points=points, point_instance=new_id[point_inst], rgb=image["rgb"], depth=image["depth"],
                instance=new_id[image["instance"]], labels=labels, calib=calib)


def write_frame(root: Path, frame_id: str, frame: dict) -> None:
    """Write one simulated frame (from :func:`make_frame`) under ``root/training``."""
    t = root / "training"
    frame["points"].astype("<f4").tofile(t / "velodyne" / f"{frame_id}.bin")
    frame["point_instance"].astype("<i4").tofile(t / "velodyne_instance" / f"{frame_id}.bin")
    Image.fromarray(frame["rgb"]).save(t / "image_2" / f"{frame_id}.png")
    depth = np.round(frame["depth"].astype(np.float64) * 256.0)
    depth[depth > 65535] = 0  # farther than 256 m: no value, as KITTI does
    Image.fromarray(depth.astype(np.uint16)).save(t / "depth_2" / f"{frame_id}.png")
    Image.fromarray(frame["instance"].astype(np.uint16)).save(t / "instance_2" / f"{frame_id}.png")
    write_calib(t / "calib" / f"{frame_id}.txt", frame["calib"])
    (t / "label_2" / f"{frame_id}.txt").write_text("".join(line + "\n" for line in frame["labels"]))


def generate(out: str | Path, frames: int = 16, seed: int = 0, split_val_every: int = 4, progress: bool = True,
             *, fov_only: bool = False, image_size: tuple[int, int] = KITTI_IMAGE_SIZE, beams: int = 64,
             azimuth_step_deg: float = 0.1728, first_id: int = 0) -> Path:
    """Generate ``frames`` synthetic KITTI-format frames under ``out``; returns ``Path(out)``.

    Frame ``first_id + i`` is simulated from ``(seed, first_id + i)`` alone, so the same
    arguments give byte-identical files. Every ``split_val_every``-th frame (the last of each
    group) goes to ``ImageSets/val.txt``, the others to ``train.txt``; ``trainval.txt`` lists all
    (0 puts every frame in train). ``fov_only`` keeps only points seen by image_2.
    ``image_size`` = (W, H) rescales the intrinsics; ``beams``/``azimuth_step_deg`` thin the LiDAR.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if split_val_every < 0:
        raise ValueError(f"split_val_every must be >= 0, got {split_val_every}")
    if len(image_size) != 2 or min(image_size) < 8:
        raise ValueError(f"image_size must be (width, height) of at least 8 pixels, got {image_size}")
    from tqdm.auto import tqdm

    root = Path(out)
    for folder in FOLDERS:
        (root / "training" / folder).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    ids = [f"{first_id + i:06d}" for i in range(frames)]
    for i in tqdm(range(frames), desc="synth frames", unit="frame", disable=not progress):
        frame = make_frame(seed, first_id + i, tuple(image_size), fov_only, beams, azimuth_step_deg)
        write_frame(root, ids[i], frame)
    val = [f for i, f in enumerate(ids) if split_val_every and i % split_val_every == split_val_every - 1]
    train = [f for f in ids if f not in set(val)]
    for name, split in (("train", train), ("val", val), ("trainval", ids)):
        (root / "ImageSets" / f"{name}.txt").write_text("".join(f + "\n" for f in split))
    return root
