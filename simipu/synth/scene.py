"""A procedural street: road with lanes, sidewalks, buildings, parked and moving cars,
pedestrians, cyclists, poles and trees, laid out in a *street frame* and moved into the
KITTI velodyne frame of an ego car driving in a right-hand lane.

Frames: street frame = x along the street, y left, z up, road surface at z = 0.
LiDAR (velodyne) frame = x forward, y left, z up, origin at the sensor 1.73 m above the road:
``X_street = R_s @ X_lidar + ego`` with ``street_from_lidar = [[R_s, ego], [0, 1]]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .objects import car, cyclist, pedestrian, pole, tree
from .primitives import ASPHALT, FACADE, GRASS, SIDEWALK, Mesh, MeshBuilder, box, linear, rot_x, rot_y, rot_z

LIDAR_HEIGHT = 1.73  # m above the road, KITTI's Velodyne HDL-64E mounting
FACADE_COLOURS = np.array([[0.55, 0.5, 0.4], [0.62, 0.6, 0.55], [0.45, 0.2, 0.12], [0.5, 0.38, 0.2],
                           [0.35, 0.35, 0.36], [0.55, 0.45, 0.35], [0.4, 0.45, 0.42], [0.6, 0.55, 0.45]])


@dataclass
class StreetLayout:
    """Where the road, lanes and markings are, in the street frame (metres)."""
    road_right: float            # y of the right road edge (negative)
    road_left: float             # y of the left road edge
    curb_height: float
    sidewalk_width: tuple[float, float]  # (right, left)
    lines: list[tuple[float, bool]] = field(default_factory=list)  # (y, dashed) lane markings
    crossing: tuple[float, float] | None = None  # cross street (x centre, width)
    crosswalk_x: float | None = None             # x centre of a zebra crossing, 4 m wide


@dataclass
class Thing:
    """A labelled object (KITTI class Car / Pedestrian / Cyclist) in the LiDAR frame."""
    cls: str
    instance: int
    mesh: Mesh                  # object frame (x heading, z up, bottom centre at 0)
    pose: np.ndarray            # (4, 4) LiDAR-from-object
    dims: tuple[float, float, float]  # (h, w, l) metres

    @property
    def yaw(self) -> float:
        """Heading angle about the LiDAR z axis (rad); 0 = driving along +x."""
        return float(np.arctan2(self.pose[1, 0], self.pose[0, 0]))


@dataclass
class Scene:
    """One frame's world: all triangles in the LiDAR frame plus what the renderers need."""
    mesh: Mesh
    things: list[Thing]
    layout: StreetLayout
    street_from_lidar: np.ndarray  # (4, 4)
    sun: np.ndarray                # (3,) unit vector towards the sun, LiDAR frame

    def to_street(self, xyz: np.ndarray) -> np.ndarray:
        """LiDAR-frame points (N, 3) -> street frame (N, 3)."""
        return linear(xyz, self.street_from_lidar[:3, :3]) + self.street_from_lidar[:3, 3].astype(xyz.dtype)


class _Placer:
    """Keeps footprints (x, y, radius) of placed objects so new ones do not overlap."""

    def __init__(self):
        self.spots: list[tuple[float, float, float]] = []

    def free(self, x: float, y: float, r: float) -> bool:
        return all((x - a) ** 2 + (y - b) ** 2 > (r + c) ** 2 for a, b, c in self.spots)

    def take(self, x: float, y: float, r: float) -> bool:
        if not self.free(x, y, r):
            return False
        self.spots.append((x, y, r))
        return True


def _layout(rng: np.random.Generator) -> tuple[StreetLayout, float]:
    """Random lanes, parking, sidewalks and markings; returns the layout and the ego y."""
    lane = rng.uniform(3.0, 3.6)
    n_right, n_left = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    park_r, park_l = rng.random() < 0.7, rng.random() < 0.6
    right = -(n_right * lane + park_r * 2.2)
    left = n_left * lane + park_l * 2.2
    lines = [(0.0, n_right == 1 and n_left == 1)]
    lines += [(-k * lane, True) for k in range(1, n_right)] + [(k * lane, True) for k in range(1, n_left)]
    lines += [(-n_right * lane + 0.2 * (not park_r), False), (n_left * lane - 0.2 * (not park_l), False)]
    crossing = (float(rng.uniform(30, 70)), float(rng.uniform(9, 14))) if rng.random() < 0.5 else None
    crosswalk = crossing[0] - crossing[1] / 2 - 4 if crossing else (float(rng.uniform(15, 45)) if rng.random() < 0.3 else None)
    layout = StreetLayout(right, left, float(rng.uniform(0.1, 0.16)),
                          (float(rng.uniform(2.0, 4.5)), float(rng.uniform(2.0, 4.5))), lines, crossing, crosswalk)
    ego_y = -(int(rng.integers(n_right)) + 0.5) * lane
    return layout, ego_y


def _in_crossing(lay: StreetLayout, x0: float, x1: float, margin: float = 0.0) -> bool:
    if lay.crossing is None:
        return False
    c, w = lay.crossing
    return x1 > c - w / 2 - margin and x0 < c + w / 2 + margin


def _static_world(b: MeshBuilder, rng, lay: StreetLayout, placer: _Placer):
    """Road, sidewalks, grass, buildings, trees and poles (all 'stuff', instance 0)."""
    x0, x1, far = -60.0, 260.0, 400.0
    b.add(box((x1 - x0, lay.road_left - lay.road_right, 0.2), ((x0 + x1) / 2, (lay.road_left + lay.road_right) / 2, -0.1)),
          ASPHALT, (0.09, 0.09, 0.095))
    segments = [(x0, x1)]
    if lay.crossing:
        c, w = lay.crossing
        segments = [(x0, c - w / 2), (c + w / 2, x1)]
        b.add(box((w, 2 * far, 0.2), (c, 0, -0.1)), ASPHALT, (0.09, 0.09, 0.095))
    for side, edge, sw in ((-1, lay.road_right, lay.sidewalk_width[0]), (1, lay.road_left, lay.sidewalk_width[1])):
        for a, e in segments:
            b.add(box((e - a, sw, lay.curb_height), ((a + e) / 2, edge + side * sw / 2, lay.curb_height / 2)),
                  SIDEWALK, (0.33, 0.32, 0.3))
            b.add(box((e - a, far, 0.2), ((a + e) / 2, edge + side * (sw + far / 2), lay.curb_height - 0.1)),
                  GRASS, (0.07, 0.12, 0.03))
        back = edge + side * sw
        x = x0 + rng.uniform(0, 10)
        while x < x1 - 30:
            width = rng.uniform(8, 26)
            if _in_crossing(lay, x, x + width, 3.0):
                x = lay.crossing[0] + lay.crossing[1] / 2 + 3.0
                continue
            setback, depth, height = rng.uniform(0, 4) * (rng.random() < 0.6), rng.uniform(8, 16), rng.uniform(6, 24)
            y_c = back + side * (setback + depth / 2)
            param = (rng.uniform(2.8, 3.6), rng.uniform(1.6, 3.2), rng.uniform(0.3, 0.6), x)
            colour = FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))] * rng.uniform(0.8, 1.15, 3)
            b.add(box((width, depth, height), (x + width / 2, y_c, lay.curb_height + height / 2)), FACADE, colour,
                  param=param)
            x += width + (rng.uniform(2, 10) if rng.random() < 0.3 else 0.0)
        # Street furniture along the sidewalk: poles near the curb, trees in between.
        for x in np.arange(x0 + rng.uniform(0, 20), 150, rng.uniform(18, 35)):
            if not _in_crossing(lay, x - 1, x + 1) and placer.take(x, edge + side * 0.5, 0.3):
                b.add_mesh(pole(rng), rot_z(np.pi if side > 0 else 0.0), (x, edge + side * 0.5, lay.curb_height))
        if rng.random() < 0.7:
            for x in np.arange(x0 + rng.uniform(0, 10), 160, rng.uniform(8, 16)):
                y = edge + side * min(sw - 0.8, 1.4)
                if not _in_crossing(lay, x - 3, x + 3) and rng.random() < 0.8 and placer.take(x, y, 0.6):
                    b.add_mesh(tree(rng), None, (x, y, lay.curb_height))


def _things(rng, lay: StreetLayout, ego_y: float, placer: _Placer) -> list[tuple]:
    """Place cars, pedestrians and cyclists; returns (cls, mesh, dims, x, y, z, yaw) in the street frame."""
    out: list[tuple] = []

    def put(cls, made, x, y, z, yaw):
        mesh, dims = made
        if placer.take(x, y, 0.5 * np.hypot(dims[1], dims[2]) + 0.1):
            out.append((cls, mesh, dims, x, y, z, yaw))

    placer.take(0.0, ego_y, 3.2)  # the ego car itself
    for side, edge in ((-1, lay.road_right), (1, lay.road_left)):
        is_park = abs(edge) - max(abs(y) for y, _ in lay.lines if np.sign(y) == side) > 1.5
        if is_park:
            x = rng.uniform(-30, -10)
            while x < 110:
                made = car(rng, 0)
                l = made[1][2]
                if rng.random() < 0.8 and not _in_crossing(lay, x - 5, x + l + 5):
                    put("Car", made, x + l / 2, edge - side * (made[1][1] / 2 + 0.2), 0.0,
                        (0.0 if side < 0 else np.pi) + rng.normal(0, 0.03))
                x += l + rng.uniform(0.7, 3.0) + (rng.uniform(5, 20) if rng.random() < 0.15 else 0.0)
    lane_ys = sorted({y for y, _ in lay.lines} | {lay.road_right, lay.road_left})
    for a, b_ in zip(lane_ys[:-1], lane_ys[1:]):
        if b_ - a > 4.0 or b_ - a < 2.5:
            continue  # parking strip or a thin gap, not a driving lane
        y = (a + b_) / 2
        for x in np.sort(rng.uniform(-40, 100, rng.integers(0, 5))):
            put("Car", car(rng, 0), x, y + rng.normal(0, 0.2), 0.0, (0.0 if y < 0 else np.pi) + rng.normal(0, 0.03))
    for _ in range(rng.integers(2, 12)):
        side = rng.choice([-1, 1])
        edge, sw = (lay.road_right, lay.sidewalk_width[0]) if side < 0 else (lay.road_left, lay.sidewalk_width[1])
        yaw = rng.choice([0.0, np.pi]) + rng.normal(0, 0.3) if rng.random() < 0.8 else rng.uniform(-np.pi, np.pi)
        put("Pedestrian", pedestrian(rng, 0), rng.uniform(3, 60), edge + side * rng.uniform(0.4, sw - 0.4),
            lay.curb_height, yaw)
    if lay.crosswalk_x is not None:
        for _ in range(rng.integers(0, 4)):
            put("Pedestrian", pedestrian(rng, 0), lay.crosswalk_x + rng.uniform(-1.5, 1.5),
                rng.uniform(lay.road_right, lay.road_left), 0.0, rng.choice([-1, 1]) * np.pi / 2 + rng.normal(0, 0.2))
    for _ in range(rng.integers(0, 4)):
        y = lay.road_right + rng.uniform(0.5, 1.2) if rng.random() < 0.7 else lay.road_left - rng.uniform(0.5, 1.2)
        put("Cyclist", cyclist(rng, 0), rng.uniform(-20, 60), y, 0.0, (0.0 if y < 0 else np.pi) + rng.normal(0, 0.1))
    return out


def make_scene(rng: np.random.Generator) -> Scene:
    """Build one random street scene seen from an ego car (all randomness from ``rng``)."""
    lay, ego_y = _layout(rng)
    placer = _Placer()
    b = MeshBuilder()
    _static_world(b, rng, lay, placer)
    placed = _things(rng, lay, ego_y, placer)
    R_s = rot_z(rng.normal(0, 0.03)) @ rot_y(rng.normal(0, 0.006)) @ rot_x(rng.normal(0, 0.005))
    ego = np.array([rng.normal(0, 0.5), ego_y + rng.normal(0, 0.2), LIDAR_HEIGHT])
    street_from_lidar = np.eye(4)
    street_from_lidar[:3, :3], street_from_lidar[:3, 3] = R_s, ego
    lidar_from_street = np.linalg.inv(street_from_lidar)
    things = []
    for k, (cls, mesh, dims, x, y, z, yaw) in enumerate(placed, start=1):
        mesh.instance[:] = k
        street_from_obj = np.eye(4)
        street_from_obj[:3, :3], street_from_obj[:3, 3] = rot_z(yaw), (x, y, z)
        b.add_mesh(mesh, street_from_obj[:3, :3], street_from_obj[:3, 3])
        things.append(Thing(cls, k, mesh, lidar_from_street @ street_from_obj, dims))
    elevation, azimuth = rng.uniform(np.radians(25), np.radians(65)), rng.uniform(-np.pi, np.pi)
    sun_s = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    world = b.build().transformed(lidar_from_street[:3, :3], lidar_from_street[:3, 3])
    return Scene(world, things, lay, street_from_lidar, R_s.T @ sun_s)


def raycasting_scene(mesh: Mesh):
    """An Open3D ``RaycastingScene`` holding ``mesh`` as geometry 0 (primitive id = triangle index)."""
    from .._open3d import import_open3d
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(mesh.triangles, np.uint32)))
    return scene
