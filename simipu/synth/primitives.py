"""Triangle-mesh primitives and a builder that tags every triangle with what it is made of.

All shapes are built in a local frame (x forward, y left, z up) and placed with a rotation R
(3, 3) and a translation t (3,): ``world = local @ R.T + t``. Winding is not relied on:
the renderer and the LiDAR both use two-sided normals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Material ids, one per triangle; textures.py and lidar.py give each its look and reflectivity.
ASPHALT, SIDEWALK, CURB, GRASS, FACADE, ROOF, PAINT, GLASS, TIRE, SKIN, CLOTH, \
    TRUNK, FOLIAGE, METAL, SIGN, LAMP = range(16)
MATERIAL_NAMES = ("asphalt", "sidewalk", "curb", "grass", "facade", "roof", "paint", "glass",
                  "tire", "skin", "cloth", "trunk", "foliage", "metal", "sign", "lamp")

_BOX_TRIS = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
                      [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]])


def linear(x: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``x @ M.T`` for many points x (N, 3) and a small matrix M (3, 3), in x's dtype.

    (numpy's matmul is ~10x slower than einsum for an inner dimension of 3.)
    """
    return np.einsum("ij,kj->ik", x, np.asarray(M, dtype=x.dtype))


def rot_z(a: float) -> np.ndarray:
    """Rotation (3, 3) by angle a (rad) about z (yaw)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(a: float) -> np.ndarray:
    """Rotation (3, 3) by angle a (rad) about y (pitch; positive tips +x down)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(a: float) -> np.ndarray:
    """Rotation (3, 3) by angle a (rad) about x (roll)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def frustum(bottom: tuple[float, float], top: tuple[float, float], z0: float, z1: float,
            top_shift: float = 0.0):
    """A box whose top face (length, width) differs from its bottom face; centred on x=y=0.

    Returns vertices (8, 3) and triangles (12, 3).
    """
    (lb, wb), (lt, wt) = bottom, top
    v = [(-lb / 2, -wb / 2, z0), (lb / 2, -wb / 2, z0), (lb / 2, wb / 2, z0), (-lb / 2, wb / 2, z0),
         (-lt / 2 + top_shift, -wt / 2, z1), (lt / 2 + top_shift, -wt / 2, z1),
         (lt / 2 + top_shift, wt / 2, z1), (-lt / 2 + top_shift, wt / 2, z1)]
    return np.array(v, dtype=np.float64), _BOX_TRIS.copy()


def box(size, center=(0.0, 0.0, 0.0)):
    """Axis-aligned box of size (lx, ly, lz) centred at ``center``: vertices (8, 3), triangles (12, 3)."""
    lx, ly, lz = size
    v, f = frustum((lx, ly), (lx, ly), -lz / 2, lz / 2)
    return v + np.asarray(center, dtype=np.float64), f


def cylinder(radius: float, height: float, segments: int = 12, radius_top: float | None = None):
    """Closed cylinder (or cone frustum) along +z from z=0 to z=height: vertices, triangles."""
    rt = radius if radius_top is None else radius_top
    a = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a)], axis=1)
    bottom = np.concatenate([ring * radius, np.zeros((segments, 1))], axis=1)
    top = np.concatenate([ring * rt, np.full((segments, 1), height)], axis=1)
    v = np.concatenate([bottom, top, [[0, 0, 0], [0, 0, height]]])
    i = np.arange(segments)
    j = (i + 1) % segments
    sides = np.concatenate([np.stack([i, j, j + segments], 1), np.stack([i, j + segments, i + segments], 1)])
    caps = np.concatenate([np.stack([np.full(segments, 2 * segments), j, i], 1),
                           np.stack([np.full(segments, 2 * segments + 1), i + segments, j + segments], 1)])
    return v, np.concatenate([sides, caps])


def sphere(radius: float, n_lat: int = 8, n_lon: int = 12, rng: np.random.Generator | None = None,
           bumpiness: float = 0.0):
    """UV sphere centred at 0; with ``rng`` each vertex radius is scaled by 1 ± bumpiness (crowns)."""
    lat = np.linspace(0.0, np.pi, n_lat + 1)[1:-1]
    lon = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    v = np.stack([np.sin(la) * np.cos(lo), np.sin(la) * np.sin(lo), np.cos(la)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 0, 1]], v, [[0, 0, -1]]])
    if rng is not None and bumpiness > 0:
        v = v * (1.0 + rng.uniform(-bumpiness, bumpiness, (len(v), 1)))
    tris = []
    for r in range(n_lat - 1):  # a handful of rings: this loop is over rings, not pixels
        for c in range(n_lon):
            a, b = 1 + r * n_lon + c, 1 + r * n_lon + (c + 1) % n_lon
            if r == 0:
                tris.append([0, a, b])
            if r < n_lat - 2:
                tris += [[a, a + n_lon, b], [b, a + n_lon, b + n_lon]]
            else:
                tris.append([len(v) - 1, b, a])
    return v * radius, np.array(tris)


@dataclass
class Mesh:
    """A triangle soup with per-triangle attributes.

    vertices (V, 3) float32, triangles (T, 3) uint32, material (T,) uint8, albedo (T, 3) float32
    linear RGB, instance (T,) int32 (0 = stuff), param (T, 4) float32 (texture parameters).
    """
    vertices: np.ndarray
    triangles: np.ndarray
    material: np.ndarray
    albedo: np.ndarray
    instance: np.ndarray
    param: np.ndarray

    def transformed(self, R: np.ndarray, t: np.ndarray) -> "Mesh":
        """The same mesh with vertices mapped by v -> R v + t."""
        v = self.vertices.astype(np.float64) @ np.asarray(R).T + np.asarray(t)
        return Mesh(v.astype(np.float32), self.triangles, self.material, self.albedo,
                    self.instance, self.param)


class MeshBuilder:
    """Collects placed primitives; ``build()`` concatenates them into one :class:`Mesh`."""

    def __init__(self):
        self._parts: list[tuple] = []
        self._n_vertices = 0

    def add(self, shape, material: int, albedo, instance: int = 0, param=(0.0, 0.0, 0.0, 0.0),
            R: np.ndarray | None = None, t=(0.0, 0.0, 0.0)) -> "MeshBuilder":
        """Add ``shape`` = (vertices (V, 3), triangles (T, 3)) placed by R, t."""
        v, f = shape
        v = np.asarray(v, dtype=np.float64)
        if R is not None:
            v = v @ np.asarray(R).T
        v = v + np.asarray(t, dtype=np.float64)
        n = len(f)
        self._parts.append((v, np.asarray(f) + self._n_vertices, np.full(n, material, np.uint8),
                            np.tile(np.asarray(albedo, np.float32), (n, 1)),
                            np.full(n, instance, np.int32), np.tile(np.asarray(param, np.float32), (n, 1))))
        self._n_vertices += len(v)
        return self

    def add_mesh(self, mesh: Mesh, R: np.ndarray | None = None, t=(0.0, 0.0, 0.0)) -> "MeshBuilder":
        """Add a whole :class:`Mesh` (keeping its attributes) placed by R, t."""
        m = mesh.transformed(np.eye(3) if R is None else R, t)
        self._parts.append((m.vertices.astype(np.float64), m.triangles.astype(np.int64) + self._n_vertices,
                            m.material, m.albedo, m.instance, m.param))
        self._n_vertices += len(m.vertices)
        return self

    def build(self) -> Mesh:
        if not self._parts:
            raise ValueError("MeshBuilder.build: nothing was added")
        v, f, m, a, i, p = (np.concatenate(x) for x in zip(*self._parts))
        return Mesh(v.astype(np.float32), f.astype(np.uint32), m, a.astype(np.float32), i, p)
