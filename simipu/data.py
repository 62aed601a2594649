"""KITTI-format frames: calibration, LiDAR points, images, crops, and a dataset over the object layout.

Frames and names (as in mmdetection3d):

* ``xyz_lidar`` — the velodyne frame (x forward, y left, z up, metres); a cloud is ``(N, 4)`` float32
  ``(x, y, z, reflectance)``.
* ``lidar2img = P2 @ R0_rect @ Tr_velo_to_cam`` (4×4, each padded to 4×4) maps homogeneous LiDAR
  points to ``(u·d, v·d, d, 1)``: ``uv_img`` in pixels of the original image (pixel column ``i``
  covers ``[i, i + 1)``, ``u`` right, ``v`` down; see :mod:`simipu.geometry`) and ``d`` the depth along
  the camera axis.

Layout: ``ROOT/{training,testing}/{velodyne,image_2,calib}/ID.{bin,png,txt}`` and
``ROOT/ImageSets/{train,val,test}.txt``. Waymo converted to KITTI format by mmdetection3d uses the
same layout with 7-digit ids, calibration rows ``P0..P4`` and ``Tr_velo_to_cam_0..4`` and the front
camera in ``image_0`` — use ``camera=0`` (and ``point_dims=6``) for it.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

SPLIT_DIRS = {"train": "training", "val": "training", "trainval": "training", "test": "testing"}
ALL_FRAMES = "all"  # the split that needs no ImageSets: every frame of training/ and testing/
REDUCED_DIR = "velodyne_reduced"  # mmdetection3d's camera-view clouds (points inside the image)
_ROW_SIZES = {"P0": 12, "P1": 12, "P2": 12, "P3": 12, "R0_rect": 9, "Tr_velo_to_cam": 12,
              "Tr_imu_to_velo": 12}
_FRAME_ID = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")  # a plain file stem: no '/', no '..'


def _pad4(m: np.ndarray) -> np.ndarray:
    """3×4 or 3×3 → 4×4 homogeneous (identity elsewhere)."""
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out


@dataclass
class Calib:
    """KITTI calibration of one frame (float64). ``camera`` picks ``P{camera}`` for ``lidar2img``."""
    P0: np.ndarray                      # (3, 4) projection of camera 0 (rectified)
    P1: np.ndarray
    P2: np.ndarray                      # left colour camera, image_2
    P3: np.ndarray
    R0_rect: np.ndarray                 # (3, 3) rectifying rotation
    Tr_velo_to_cam: np.ndarray          # (3, 4) velodyne → (unrectified) camera 0
    Tr_imu_to_velo: np.ndarray | None = None
    extra: dict = field(default_factory=dict)  # other rows (P4, Tr_velo_to_cam_0, ...), flat float64
    camera: int = 2

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix of the chosen camera."""
        return getattr(self, f"P{self.camera}") if self.camera < 4 else self.extra[f"P{self.camera}"].reshape(3, 4)

    @property
    def lidar2img(self) -> np.ndarray:
        """(4, 4) ``P @ R0_rect @ Tr_velo_to_cam``: LiDAR → ``(u·d, v·d, d, 1)`` of the original image."""
        return _pad4(self.P) @ _pad4(self.R0_rect) @ _pad4(self.Tr_velo_to_cam)


def read_calib(path, camera: int = 2) -> Calib:
    """Parse a KITTI calibration text file (``KEY: 12 numbers`` per line) into a :class:`Calib`.

    Required rows: ``P0``–``P3``, ``R0_rect`` and ``Tr_velo_to_cam`` (or, Waymo-style,
    ``Tr_velo_to_cam_{camera}``). Extra rows are kept in ``.extra``. Raises :class:`DataError` on a
    missing file or row, a garbled number, a wrong number of values or a duplicated row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not a key
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read calibration file ({e})") from None
    rows: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, values = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise DataError(path, f"line {lineno} is not 'KEY: numbers' (got {line[:60]!r})")
        if key in rows:
            raise DataError(path, f"row '{key}' appears twice (second time on line {lineno})")
        try:
            rows[key] = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            raise DataError(path, f"row '{key}' (line {lineno}) holds something that is not a number: "
                                  f"{values.strip()[:80]!r}") from None
        if not np.isfinite(rows[key]).all():
            raise DataError(path, f"row '{key}' (line {lineno}) holds NaN or inf")
    if "Tr_velo_to_cam" not in rows and f"Tr_velo_to_cam_{camera}" in rows:
        rows["Tr_velo_to_cam"] = rows[f"Tr_velo_to_cam_{camera}"]       # Waymo via mmdetection3d
    missing = [k for k in _ROW_SIZES if k != "Tr_imu_to_velo" and k not in rows]
    if camera >= 4 and f"P{camera}" not in rows:
        missing.append(f"P{camera}")
    if missing:
        raise DataError(path, f"missing calibration rows {missing} (expected P0-P3, R0_rect, Tr_velo_to_cam)")
    for key, size in _ROW_SIZES.items():
        if key in rows and rows[key].size != size:
            shape = "3x3" if size == 9 else "3x4"
            raise DataError(path, f"row '{key}' has {rows[key].size} values, expected {size} ({shape})")
    mats = {k: rows.pop(k).reshape(3, -1) for k in list(_ROW_SIZES) if k in rows}
    return Calib(**mats, extra=rows, camera=camera)


def write_calib(path, calib) -> None:
    """Write a :class:`Calib` or a dict of matrices in KITTI's text format (``%.12e``, as KITTI does).

    Rows: P0–P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo (when given), then extras; a blank last
    line like the KITTI files. Values keep 13 significant digits (relative error ≤ 5e-13).
    """
    if isinstance(calib, Calib):
        rows = {k: getattr(calib, k) for k in _ROW_SIZES}
        rows.update(calib.extra)
    else:
        rows = dict(calib)
    lines = []
    for key in list(_ROW_SIZES) + [k for k in rows if k not in _ROW_SIZES]:
        if rows.get(key) is None:
            continue
        values = np.asarray(rows[key], dtype=np.float64).ravel()
        if key in _ROW_SIZES and values.size != _ROW_SIZES[key]:
            raise ValueError(f"calibration row {key} needs {_ROW_SIZES[key]} values, got {values.size}")
        lines.append(f"{key}: " + " ".join(f"{v:.12e}" for v in values))
    Path(path).write_text("\n".join(lines) + "\n\n")


def load_points(path, point_dims: int = 4, mmap: bool = False, max_points: int | None = None) -> np.ndarray:
    """Read a velodyne ``.bin`` (float32 × ``point_dims`` per point) → ``(N, 4)`` float32 xyz + reflectance.

    The file is opened with ``np.memmap`` and checked in chunks, so memory stays at one copy of the
    kept columns (a 10-million-point file: 160 MB); ``mmap=True`` returns a read-only memory-mapped
    view instead (no copy; only ``point_dims == 4`` and clean files), good for sampling huge clouds.
    Points with NaN/inf coordinates are **dropped with a warning** (a few bad returns should not
    kill a long run); a file that is empty, not a multiple of ``4·point_dims`` bytes or only bad
    points raises :class:`DataError`. So does a file of more than ``max_points`` points (default
    :data:`MAX_POINTS`; the ``data.max_points`` setting), refused from its size before anything is read,
    and a file whose rows clearly hold another number of floats than ``point_dims`` although its size
    divides (see :func:`_stride_mismatch`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "point cloud file does not exist")
    size, row = path.stat().st_size, 4 * point_dims
    if size == 0:
        raise DataError(path, "point cloud file is empty (expected float32 x, y, z, reflectance rows)")
    if size % row:
        raise DataError(path, f"size {size} bytes is not a multiple of {row} bytes "
                              f"({point_dims} float32 per point): truncated or not a velodyne .bin")
    cap = MAX_POINTS if max_points is None else max_points
    if size // row > cap:
        raise DataError(path, f"{size // row} points ({size / 2**20:.0f} MiB) is more than the cap of {cap} "
                              f"(data.max_points; KITTI frames hold about 120 000); refused unread")
    raw = np.memmap(path, dtype=np.float32, mode="r", shape=(size // row, point_dims))
    other = _stride_mismatch(path, size, point_dims)
    if other:
        raise DataError(path, f"the rows look like {other} float32 per point, not {point_dims} (data.point_dims): "
                              f"read as {other}, consecutive points are far closer together, as in a LiDAR sweep")
    chunk = 1 << 20
    bad = [np.flatnonzero(~np.isfinite(raw[i:i + chunk, :4]).all(1)) + i for i in range(0, len(raw), chunk)]
    bad = np.concatenate(bad)
    if len(bad) == len(raw):
        raise DataError(path, "every point has NaN or inf coordinates")
    if len(bad):
        warnings.warn(f"{path}: dropped {len(bad)} of {len(raw)} points with NaN/inf values", stacklevel=2)
        return np.delete(np.asarray(raw[:, :4]), bad, axis=0)
    if mmap and point_dims == 4:
        return raw
    return np.array(raw[:, :4], dtype=np.float32)


MAX_POINTS = 5_000_000  # 80 MB as float32 xyzr; a KITTI sweep is ~120 k points, a Waymo top LiDAR ~180 k.


def _stride_mismatch(path: Path, size: int, point_dims: int, rows: int = 4096) -> int | None:
    """Another row width (3–8 floats) that fits this file much better than ``point_dims``, or ``None``.

    A file read with the wrong width passes the size check whenever its size happens to divide (a 4-float
    file of 5·k points read as 5 floats). Its "x, y, z" then cycle through other fields, so consecutive
    points jump by tens of metres, whereas a LiDAR sweep is stored in scan order and consecutive points
    are centimetres to a metre apart. The median step between the first ``rows`` consecutive points is
    compared for each width that divides the size; another width wins only when its median step is under
    a fifth of ``point_dims``'s and it is not a multiple or divisor of it (those keep whole points
    together and look just as ordered). A shuffled cloud looks disordered under every width and passes.
    """
    def median_step(width: int) -> float:
        n = min(rows, size // (4 * width))
        if n < 16:
            return float("inf")
        xyz = np.fromfile(path, dtype=np.float32, count=n * width).reshape(n, width)[:, :3].astype(np.float64)
        step = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
        step = step[np.isfinite(step)]
        return float(np.median(step)) if len(step) else float("inf")

    ours = median_step(point_dims)
    if not np.isfinite(ours):  # too few points to judge
        return None
    for width in range(3, 9):
        if width == point_dims or width % point_dims == 0 or point_dims % width == 0 or size % (4 * width):
            continue
        if median_step(width) * 5 < ours:
            return width
    return None


MAX_IMAGE_PIXELS = 64_000_000  # 8000 x 8000; KITTI's 1242 x 375 is 0.47 M. Larger images are refused unread.
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def load_image(path) -> np.ndarray:
    """Read an image file → ``(H, W, 3)`` uint8 RGB.

    8-bit grey, palette, RGBA, CMYK... are converted to RGB; 16-bit PNGs are scaled to 8 bits
    (``round(v / 257)``; PIL itself keeps the high byte of 16-bit RGB). Floating-point and 32-bit integer
    images, and images larger than ``MAX_IMAGE_PIXELS`` (checked from the header, before decoding: a
    decompression bomb is refused unread) raise :class:`DataError`.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DataError(path, f"image is {w}x{h} = {w * h / 1e6:.0f} M pixels, more than "
                                      f"simipu.data.MAX_IMAGE_PIXELS = {MAX_IMAGE_PIXELS / 1e6:.0f} M; not decoded")
            im.load()
            if im.mode in _SIXTEEN_BIT or (im.mode == "I" and im.format == "PNG"):  # 16-bit PNG
                grey = (np.asarray(im).astype(np.uint32) + 128) // 257
                return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
            if im.mode in ("F", "I"):
                raise DataError(path, f"{'floating-point' if im.mode == 'F' else '32-bit integer'} {im.format} "
                                      f"image (PIL mode {im.mode}); expected an 8-bit or 16-bit camera image")
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(path, "image file does not exist") from None
    except Image.DecompressionBombError as e:
        raise DataError(path, f"image refused unread: {e}") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DataError(path, f"cannot read image ({e})") from None


def check_image_matches_calib(image_hw, calib: Calib, path) -> None:
    """Principal point of ``calib.P`` outside the image → :class:`DataError`; far from centre → warning."""
    H, W = image_hw
    cx, cy = calib.P[0, 2], calib.P[1, 2]
    if not (0 <= cx < W and 0 <= cy < H):
        raise DataError(path, f"principal point ({cx:.1f}, {cy:.1f}) of P{calib.camera} lies outside the "
                              f"{W}x{H} image: calibration and image do not belong together")
    if abs(cx - W / 2) > 0.25 * W or abs(cy - H / 2) > 0.25 * H:     # KITTI: within 5%
        warnings.warn(f"{path}: image is {W}x{H} but the calibration's principal point is "
                      f"({cx:.1f}, {cy:.1f}), far from the centre; check image and calibration", stacklevel=2)


def crop_to_range(points: np.ndarray, point_range) -> np.ndarray:
    """Keep points with ``x0 ≤ x < x1, y0 ≤ y < y1, z0 ≤ z < z1``; ``point_range = (x0, y0, z0, x1, y1, z1)``."""
    lo, hi = np.asarray(point_range[:3]), np.asarray(point_range[3:])
    xyz = points[:, :3]
    return points[((xyz >= lo) & (xyz < hi)).all(1)]


def crop_to_fov(points: np.ndarray, lidar2img: np.ndarray, image_hw) -> np.ndarray:
    """Keep points in front of the camera that project inside the ``(H, W)`` image."""
    from .geometry import in_image, project_points
    uv, depth = project_points(points[:, :3].astype(np.float64), lidar2img)
    return points[in_image(uv, depth, image_hw)]


def sample_points(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of ``points`` (N, C): without replacement when N ≥ n, else all N plus n − N repeats."""
    N = len(points)
    if N == 0:
        raise ValueError("cannot sample from an empty point cloud")
    if N >= n:
        idx = rng.choice(N, n, replace=False)           # Floyd's algorithm for n ≪ N: O(n) memory
    else:
        idx = np.concatenate([rng.permutation(N), rng.integers(0, N, n - N)])
    return np.asarray(points[idx], dtype=np.float32)


def resolve_velodyne_dir(root, splits, velodyne_dir: str = "auto") -> str:
    """The point folder to read: ``velodyne_dir`` itself, or for ``"auto"`` ``velodyne_reduced`` when
    every split folder of ``splits`` has one (the released SimIPU config reads it), else ``velodyne``."""
    if velodyne_dir != "auto":
        return velodyne_dir
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    dirs = {d for s in splits for d in (("training", "testing") if s == ALL_FRAMES else (SPLIT_DIRS.get(s),))
            if d and (Path(root) / d).is_dir()}
    if dirs and all((Path(root) / d / REDUCED_DIR).is_dir() for d in dirs):
        return REDUCED_DIR
    return "velodyne"


class KittiDataset:
    """Raw frames of a KITTI-format root, over one or several ImageSets splits.

    ``splits`` name files ``ROOT/ImageSets/{split}.txt`` (train/val/trainval → ``training/``, test →
    ``testing/``). A root without ``ImageSets/`` is refused, because then nothing says which frames
    are val and pre-training would silently use them; the split ``"all"`` takes every frame of
    ``training/`` and ``testing/`` on purpose. Duplicate ids are dropped with a warning; an id that is
    not a plain file name, an id with files missing on disk or a missing split file raise
    :class:`DataError`. ``velodyne_dir="auto"`` reads ``velodyne_reduced/`` when present (see
    :func:`resolve_velodyne_dir`).

    ``dataset[i]`` → ``dict(frame_id: str, split_dir: str, points (N, 4) float32 xyz_lidar + reflectance,
    image (H, W, 3) uint8 RGB, calib: Calib)``.
    """

    def __init__(self, root, splits=("train", "test"), velodyne_dir: str = "velodyne", camera: int = 2,
                 point_dims: int = 4, max_points: int | None = None):
        self.root = Path(root)
        self.max_points = max_points
        if isinstance(splits, str):
            splits = (splits,)
        unknown = [s for s in splits if s not in SPLIT_DIRS and s != ALL_FRAMES]
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; known: {sorted(SPLIT_DIRS) + [ALL_FRAMES]}")
        if not self.root.is_dir():
            raise DataError(self.root, "data root does not exist")
        self.velodyne_dir = resolve_velodyne_dir(self.root, splits, velodyne_dir)
        self.camera, self.point_dims = camera, point_dims
        self.image_dir = f"image_{camera}"
        frames: list[tuple[str, str]] = []
        for split in splits:
            frames += self._split_frames(split)
        seen, self.frames = set(), []
        for f in frames:
            if f in seen:
                warnings.warn(f"{self.root}: frame {f[1]}/{f[0]} listed more than once; keeping one", stacklevel=2)
            else:
                seen.add(f)
                self.frames.append(f)
        if not self.frames:
            raise DataError(self.root, f"no frames found for splits {list(splits)}")

    def _split_frames(self, split: str) -> list[tuple[str, str]]:
        if split == ALL_FRAMES:
            return [(p.stem, d) for d in ("training", "testing")
                    for p in sorted((self.root / d / self.velodyne_dir).glob("*.bin"))]
        split_dir = SPLIT_DIRS[split]
        sets = self.root / "ImageSets"
        if not sets.is_dir():
            raise DataError(self.root, f"no ImageSets/ folder, so split '{split}' is unknown (without it, "
                                       f"'val' frames would be used like any other). Add ImageSets/"
                                       f"{{train,val,test}}.txt with one frame id per line (mmdetection3d's "
                                       f"KITTI split files, or `simipu synth` output), or set "
                                       f"data.splits=[{ALL_FRAMES}] to use every frame on purpose")
        list_file = sets / f"{split}.txt"
        if not list_file.is_file():
            raise DataError(list_file, f"split file for '{split}' does not exist "
                                       f"(found: {sorted(p.name for p in sets.glob('*.txt'))})")
        ids = []
        for lineno, line in enumerate(list_file.read_text(encoding="utf-8-sig").splitlines(), 1):
            fid = line.strip()
            if not fid:
                continue
            if not _FRAME_ID.match(fid):
                raise DataError(list_file, f"line {lineno}: frame id {fid!r} is not a plain file name "
                                           f"(ids must not contain '/', '..' or spaces)")
            ids.append(fid)
        missing = [i for i in ids if not all(p.is_file() for p in self.paths(i, split_dir).values())]
        if missing:
            raise DataError(list_file, f"{len(missing)} listed frame(s) missing on disk under "
                                       f"{self.root / split_dir} (e.g. {missing[:3]}; expected "
                                       f"{self.velodyne_dir}/ID.bin, {self.image_dir}/ID.png, calib/ID.txt)")
        return [(i, split_dir) for i in ids]

    def paths(self, frame_id: str, split_dir: str) -> dict[str, Path]:
        d = self.root / split_dir
        return {"points": d / self.velodyne_dir / f"{frame_id}.bin",
                "image": d / self.image_dir / f"{frame_id}.png",
                "calib": d / "calib" / f"{frame_id}.txt"}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        frame_id, split_dir = self.frames[index]
        paths = self.paths(frame_id, split_dir)
        calib = read_calib(paths["calib"], camera=self.camera)
        image = load_image(paths["image"])
        check_image_matches_calib(image.shape[:2], calib, paths["image"])
        points = load_points(paths["points"], self.point_dims, max_points=self.max_points)
        return dict(frame_id=frame_id, split_dir=split_dir, points=points, image=image, calib=calib)
