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


EXISTING = (None, "add", "overwrite")
SPLITS = ("train", "val", "trainval")


def _existing_frames(root: Path) -> list[str]:
    """Ids of the frames under ``root/training`` (any of the generator's folders) and in its split files."""
    ids = {p.stem for folder in FOLDERS for p in (root / "training" / folder).glob("*.*")}
    for name in SPLITS:
        f = root / "ImageSets" / f"{name}.txt"
        if f.is_file():
            ids.update(line.strip() for line in f.read_text(encoding="utf-8-sig").splitlines() if line.strip())
    return sorted(ids)


def _clear(root: Path) -> None:
    """Delete what the generator writes: its folders' files under ``training/`` and its split files."""
    for folder in FOLDERS:
        for p in (root / "training" / folder).glob("*.*"):
            p.unlink()
    for name in SPLITS:
        (root / "ImageSets" / f"{name}.txt").unlink(missing_ok=True)


def generate(out: str | Path, frames: int = 16, seed: int = 0, split_val_every: int = 4, progress: bool = True,
             *, fov_only: bool = False, image_size: tuple[int, int] = KITTI_IMAGE_SIZE, beams: int = 64,
             azimuth_step_deg: float = 0.1728, first_id: int | None = None, existing: str | None = None) -> Path:
    """Generate ``frames`` synthetic KITTI-format frames under ``out``; returns ``Path(out)``.

    Frame ``i`` (its id) is simulated from ``(seed, i)`` alone, so the same arguments give byte-identical
    files. Frame ``i`` goes to ``ImageSets/val.txt`` when ``i % split_val_every == split_val_every - 1``,
    otherwise to ``train.txt``; ``trainval.txt`` lists all (``split_val_every=0`` puts every frame in train).
    ``fov_only`` keeps only points seen by image_2. ``image_size`` = (W, H) rescales the intrinsics;
    ``beams``/``azimuth_step_deg`` thin the LiDAR. Ids start at ``first_id`` (default 0).

    A non-empty ``out`` is refused (:class:`ValueError`) unless ``existing`` says what to do:
    ``"add"`` writes frames with new ids after the last one there (``first_id`` defaults to it + 1; an id
    in use is refused) and appends them to the split files, keeping every listed frame — adding 8 frames
    to 8 gives the files of 16 at once; ``"overwrite"`` first deletes what the generator writes (the files of
    its ``training/`` folders and ``ImageSets/{train,val,trainval}.txt``), other files are left alone.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if split_val_every < 0:
        raise ValueError(f"split_val_every must be >= 0, got {split_val_every}")
    if len(image_size) != 2 or min(image_size) < 8:
        raise ValueError(f"image_size must be (width, height) of at least 8 pixels, got {image_size}")
    if existing not in EXISTING:
        raise ValueError(f"existing must be None, 'add' or 'overwrite', got {existing!r}")
    from tqdm.auto import tqdm

    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is a file, not a folder")
    present = _existing_frames(root) if root.is_dir() else []
    if root.is_dir() and any(root.iterdir()) and existing is None:
        raise ValueError(f"{root} is not empty ({len(present)} frames there); refusing to write over it. "
                         f"Use --add (existing='add') to add frames with new ids, --overwrite "
                         f"(existing='overwrite') to replace its frames, or another folder")
    if existing == "overwrite":
        _clear(root)
        present = []
    if first_id is None:
        numeric = [int(i) for i in present if i.isdigit()]
        first_id = max(numeric) + 1 if numeric else 0
    ids = [f"{first_id + i:06d}" for i in range(frames)]
    clash = sorted(set(ids) & set(present))
    if clash:
        raise ValueError(f"{root}: frame ids {clash[:3]} are in use; choose first_id after {present[-1]}")
    splits = {name: [] for name in SPLITS}
    for name in SPLITS:
        f = root / "ImageSets" / f"{name}.txt"
        if f.is_file():
            splits[name] = [line.strip() for line in f.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    for folder in FOLDERS:
        (root / "training" / folder).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(frames), desc="synth frames", unit="frame", disable=not progress):
        frame = make_frame(seed, first_id + i, tuple(image_size), fov_only, beams, azimuth_step_deg)
        write_frame(root, ids[i], frame)
    for fid in ids:
        is_val = split_val_every and int(fid) % split_val_every == split_val_every - 1
        splits["val" if is_val else "train"].append(fid)
        splits["trainval"].append(fid)
    for name, split in splits.items():  # written last: a killed run leaves the old lists, listing whole frames
        (root / "ImageSets" / f"{name}.txt").write_text("".join(f + "\n" for f in split))
    return root
