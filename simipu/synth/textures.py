"""Procedural textures, evaluated at ray hits in the street frame (vectorised numpy).

Everything here maps hit points ``p`` (N, 3) and two-sided normals ``n`` (N, 3), both in the
street frame (x along the street, y left, z up), plus the hit triangles' material, albedo
(N, 3) and texture parameters (N, 4), to a linear-RGB surface colour (N, 3). The lane-marking
and window masks are shared with the LiDAR (markings are bright, glass drops returns).
"""
from __future__ import annotations

import numpy as np

from .primitives import ASPHALT, FACADE, FOLIAGE, GRASS, SIDEWALK, TRUNK
from .scene import StreetLayout


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Integer lattice hash -> float in [0, 1); same inputs, same output on every machine."""
    h = (ix.astype(np.int64).astype(np.uint32) * np.uint32(374761393)
         + iy.astype(np.int64).astype(np.uint32) * np.uint32(668265263) + np.uint32(seed * 2654435761 % 2**32))
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    return ((h ^ (h >> np.uint32(16))) & np.uint32(0xFFFFFF)).astype(np.float32) / np.float32(0x1000000)


def value_noise(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Smooth 2-D value noise in [0, 1) with unit lattice spacing; x, y (N,) -> (N,)."""
    fx, fy = np.floor(x), np.floor(y)
    tx, ty = x - fx, y - fy
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    a, b = _hash(fx, fy, seed), _hash(fx + 1, fy, seed)
    c, d = _hash(fx, fy + 1, seed), _hash(fx + 1, fy + 1, seed)
    return (a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty


def fbm(x: np.ndarray, y: np.ndarray, seed: int = 0, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value noise, in [0, 1)."""
    total, amp, norm = np.zeros_like(x, dtype=np.float32), 1.0, 0.0
    for o in range(octaves):
        total += amp * value_noise(x * 2 ** o, y * 2 ** o, seed + o)
        norm += amp
        amp *= 0.5
    return total / norm


def marking_mask(p: np.ndarray, lay: StreetLayout) -> np.ndarray:
    """(N,) bool: painted road markings (lane lines 0.15 m wide, 3 m dashes every 9 m, zebra)."""
    x, y = p[:, 0], p[:, 1]
    on_road = (y > lay.road_right) & (y < lay.road_left) & (np.abs(p[:, 2]) < 0.05)
    if lay.crossing is not None:
        on_road &= np.abs(x - lay.crossing[0]) > lay.crossing[1] / 2
    m = np.zeros(len(p), bool)
    for y_line, dashed in lay.lines:
        line = np.abs(y - y_line) < 0.075
        m |= line & ((np.mod(x, 9.0) < 3.0) if dashed else True)
    if lay.crosswalk_x is not None:
        m |= (np.abs(x - lay.crosswalk_x) < 2.0) & (np.mod(y, 1.0) < 0.5)
    return m & on_road


def facade_coords(p: np.ndarray, n: np.ndarray, param: np.ndarray):
    """(u along the wall from the building corner, v height above its base) for facade hits."""
    u = np.where(np.abs(n[:, 1]) > np.abs(n[:, 0]), p[:, 0] - param[:, 3], p[:, 1])
    return u, p[:, 2]


def window_mask(p: np.ndarray, n: np.ndarray, param: np.ndarray):
    """(N,) bool windows and (N,) bool frames on facades; param = (floor h, spacing, width frac, x0)."""
    u, v = facade_coords(p, n, param)
    floor_h, spacing, frac = np.maximum(param[:, 0], 1e-3), np.maximum(param[:, 1], 1e-3), param[:, 2]
    fu, fv = np.mod(u, spacing) / spacing, np.mod(v, floor_h) / floor_h
    inside = (np.abs(fu - 0.5) < frac / 2) & (fv > 0.3) & (fv < 0.85) & (v > 0.7 * floor_h)
    shop = (v < floor_h) & (v > 0.4) & (v < 0.85 * floor_h) & (np.abs(fu - 0.5) < 0.4) & (param[:, 3] % 3 < 1)
    frame = (np.abs(fu - 0.5) < frac / 2 + 0.05) & (fv > 0.27) & (fv < 0.88) & ~inside & (v > 0.7 * floor_h)
    return (inside | shop) & (np.abs(n[:, 2]) < 0.5), frame & (np.abs(n[:, 2]) < 0.5)


def surface_colour(material: np.ndarray, albedo: np.ndarray, param: np.ndarray, p: np.ndarray,
                   n: np.ndarray, lay: StreetLayout) -> np.ndarray:
    """Linear-RGB albedo (N, 3) after textures; windows are returned black (the renderer adds glass)."""
    col = albedo.copy()
    grain = value_noise(p[:, 0] * 23.0, p[:, 1] * 23.0 + p[:, 2] * 17.0, 7)
    for mat, fn in ((ASPHALT, _asphalt), (SIDEWALK, _sidewalk), (GRASS, _grass), (FACADE, _facade),
                    (FOLIAGE, _foliage), (TRUNK, _trunk)):
        k = material == mat
        if k.any():
            col[k] = fn(col[k], p[k], n[k], param[k], grain[k], lay)
    return col


def _asphalt(col, p, n, param, grain, lay):
    patches = fbm(p[:, 0] * 0.15, p[:, 1] * 0.15, 11, 3)
    tone = 0.75 + 0.35 * patches + 0.25 * (grain - 0.5)  # repaired patches and grit
    col = col * tone[:, None]
    paint = marking_mask(p, lay)
    col[paint] = 0.62 + 0.1 * grain[paint, None]
    return col


def _sidewalk(col, p, n, param, grain, lay):
    vertical = np.abs(n[:, 2]) < 0.5
    slab = (np.mod(p[:, 0], 1.2) < 0.03) | (np.mod(p[:, 1], 1.2) < 0.03)
    tone = 0.85 + 0.25 * fbm(p[:, 0] * 0.8, p[:, 1] * 0.8, 5, 2) + 0.15 * (grain - 0.5)
    tone = np.where(slab & ~vertical, tone * 0.6, tone)
    tone = np.where(vertical, 1.25, tone)  # the granite curb face
    return col * tone[:, None]


def _grass(col, p, n, param, grain, lay):
    f = fbm(p[:, 0] * 0.3, p[:, 1] * 0.3, 3, 3)
    dirt = np.array([0.16, 0.11, 0.06], np.float32)
    mix = np.clip((f - 0.55) * 3.0, 0, 1)[:, None]
    return (col * (0.7 + 0.6 * grain[:, None])) * (1 - mix) + dirt * mix


def _facade(col, p, n, param, grain, lay):
    roof = np.abs(n[:, 2]) > 0.5
    u, v = facade_coords(p, n, param)
    stain = 0.85 + 0.3 * fbm(u * 0.3, v * 0.3, 13, 3)
    col = col * (stain * (0.92 + 0.16 * grain))[:, None]
    glass, frame = window_mask(p, n, param)
    floor_line = (np.mod(v, param[:, 0]) < 0.12) & (v > 1.0)
    col[floor_line] *= 0.75
    col[frame] = 0.55
    col[glass] = 0.0
    col[roof] = 0.12 + 0.05 * grain[roof, None]
    return col


def _foliage(col, p, n, param, grain, lay):
    offset = param[:, 0]  # a per-tree random offset, so that no two crowns look alike
    leaves = fbm(p[:, 0] * 2.5 + p[:, 2] * 1.7 + offset, p[:, 1] * 2.5 - p[:, 2] * 1.3 + offset, 29, 3)
    return col * (0.45 + 1.2 * leaves)[:, None] * (0.8 + 0.4 * grain[:, None])


def _trunk(col, p, n, param, grain, lay):
    bark = value_noise(np.arctan2(p[:, 1], p[:, 0]) * 6.0, p[:, 2] * 8.0, 17)
    return col * (0.7 + 0.6 * bark)[:, None]


def sky_colour(d: np.ndarray, sun: np.ndarray) -> np.ndarray:
    """Linear-RGB sky radiance for unit view directions d (N, 3) in the street frame (z up)."""
    up = np.clip(d[:, 2], -0.2, 1.0)
    horizon = np.array([0.75, 0.82, 0.92], np.float32)
    zenith = np.array([0.18, 0.35, 0.75], np.float32)
    t = np.clip(up * 2.2, 0, 1) ** 0.6
    col = horizon * (1 - t[:, None]) + zenith * t[:, None]
    clouds = fbm(d[:, 0] / (up + 0.08) * 2.0, d[:, 1] / (up + 0.08) * 2.0, 23, 4)
    cover = np.clip((clouds - 0.5) * 2.5, 0, 1)[:, None] * (up > 0)[:, None]
    col = col * (1 - cover * 0.8) + 0.95 * cover * 0.8
    glow = np.clip(d @ sun, 0, 1) ** 64
    return col + glow[:, None] * np.array([1.5, 1.3, 1.0], np.float32)
