"""KITTI ``label_2`` lines for the labelled things of a synthetic frame.

KITTI label line (15 fields): type, truncated (0..1), occluded (0 visible, 1 partly, 2 largely),
alpha (observation angle, rad), 2D box x1 y1 x2 y2 (pixels, image_2), h w l (m), x y z of the
box's bottom centre in the rectified camera frame (m), rotation_y (rad, about camera y;
-pi/2 = driving away from the camera along +z).
"""
from __future__ import annotations

import numpy as np

from .camera import _hom, lidar2img
from .scene import Scene, Thing, raycasting_scene


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def _area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_corners(thing: Thing) -> np.ndarray:
    """The 8 corners (8, 3) of the thing's 3-D box in the LiDAR frame."""
    h, w, l = thing.dims
    x, y, z = np.meshgrid([-l / 2, l / 2], [-w / 2, w / 2], [0.0, h], indexing="ij")
    local = np.stack([x.ravel(), y.ravel(), z.ravel(), np.ones(8)], 1)
    return (local @ thing.pose.T)[:, :3]


def _occlusion(thing: Thing, rays: np.ndarray, instance: np.ndarray, box: tuple[int, int, int, int]) -> int:
    """0/1/2 from the visible fraction of the thing's own silhouette inside its 2-D box."""
    from .._open3d import import_open3d
    o3d = import_open3d()
    x1, y1, x2, y2 = box
    step = max(1, int(np.ceil(np.sqrt((x2 - x1 + 1) * (y2 - y1 + 1) / 6000))))
    sub_rays = rays[y1:y2 + 1:step, x1:x2 + 1:step]
    alone = raycasting_scene(thing.mesh.transformed(thing.pose[:3, :3], thing.pose[:3, 3]))
    silhouette = np.isfinite(alone.cast_rays(o3d.core.Tensor(np.ascontiguousarray(sub_rays)))["t_hit"].numpy())
    visible = instance[y1:y2 + 1:step, x1:x2 + 1:step] == thing.instance
    frac = (visible & silhouette).sum() / max(1, silhouette.sum())
    return 0 if frac > 0.8 else (1 if frac > 0.4 else 2)


def kitti_labels(scene: Scene, calib: dict[str, np.ndarray], rays: np.ndarray, instance: np.ndarray,
                 min_pixels: int = 20) -> tuple[list[str], np.ndarray]:
    """Label lines for things visible in the image, and an instance-id renumbering.

    rays (H, W, 6) are the camera's pixel rays (LiDAR frame), instance (H, W) the rendered
    instance image. Returns ``lines`` and ``new_id`` (K+1,) int32 mapping old instance ids to new
    ones, so that instance ``k`` (1 <= k <= len(lines)) is the object of label line ``k``;
    unlabelled things get the ids after those; 0 stays 0.
    """
    H, W = instance.shape
    counts = np.bincount(instance.ravel(), minlength=len(scene.things) + 1)
    l2i = lidar2img(calib)
    rect_from_lidar = _hom(calib["R0_rect"]) @ _hom(calib["Tr_velo_to_cam"])
    lines, order = [], []
    for thing in scene.things:
        if counts[thing.instance] < min_pixels:
            continue
        corners = np.concatenate([box_corners(thing), np.ones((8, 1))], 1)
        uvd = corners @ l2i.T
        if np.all(uvd[:, 2] > 0.1):
            uv = uvd[:, :2] / uvd[:, 2:3]
            full = (*uv.min(0), *uv.max(0))
            clipped = (max(full[0], 0), max(full[1], 0), min(full[2], W - 1), min(full[3], H - 1))
            truncated = 1.0 - _area(clipped) / max(_area(full), 1e-9)
        else:  # part of the box is behind the camera: take the visible pixels' box
            vs, us = np.nonzero(instance == thing.instance)
            clipped, truncated = (us.min(), vs.min(), us.max(), vs.max()), 1.0
        ibox = tuple(int(round(c)) for c in clipped)
        occluded = _occlusion(thing, rays, instance, ibox)
        bottom = rect_from_lidar @ thing.pose @ np.array([0.0, 0.0, 0.0, 1.0])
        heading = rect_from_lidar[:3, :3] @ thing.pose[:3, 0]
        rotation_y = _wrap(np.arctan2(-heading[2], heading[0]))
        alpha = _wrap(rotation_y - np.arctan2(bottom[0], bottom[2]))
        h, w, l = thing.dims
        lines.append(f"{thing.cls} {truncated:.2f} {occluded:d} {alpha:.2f} "
                     f"{clipped[0]:.2f} {clipped[1]:.2f} {clipped[2]:.2f} {clipped[3]:.2f} "
                     f"{h:.2f} {w:.2f} {l:.2f} {bottom[0]:.2f} {bottom[1]:.2f} {bottom[2]:.2f} {rotation_y:.2f}")
        order.append(thing.instance)
    rest = [t.instance for t in scene.things if t.instance not in set(order)]
    new_id = np.zeros(len(scene.things) + 1, np.int32)
    new_id[np.array(order + rest, dtype=np.int64)] = np.arange(1, len(scene.things) + 1, dtype=np.int32)
    return lines, new_id
