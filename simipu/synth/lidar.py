"""A 64-beam spinning LiDAR like KITTI's Velodyne HDL-64E, ray-cast into a :class:`Scene`.

Frame: KITTI velodyne (x forward, y left, z up, origin at the sensor, 1.73 m above the road).
Beam elevations: an upper block of 32 lasers from +2.0 deg to -8.33 deg (1/3 deg apart) and a
lower block of 32 from -8.83 deg to -24.9 deg (1/2 deg apart); horizontal resolution 0.1728 deg
(10 Hz). Each return gets Gaussian range noise, may be dropped (grazing angles, glass, long
range, dark surfaces) and carries a reflectance in [0, 1] from its material and incidence angle.
"""
from __future__ import annotations

import numpy as np

from .primitives import FACADE, GLASS, MATERIAL_NAMES, PAINT, linear
from .scene import Scene
from .textures import marking_mask, window_mask

# Reflectivity per material id (order of primitives.MATERIAL_NAMES): asphalt is dark, road
# paint and signs are retro-reflective, vegetation is bright in the near infrared.
REFLECTIVITY = dict(asphalt=0.22, sidewalk=0.32, curb=0.35, grass=0.5, facade=0.35, roof=0.25, paint=0.25,
                    glass=0.05, tire=0.06, skin=0.35, cloth=0.3, trunk=0.35, foliage=0.5, metal=0.4,
                    sign=0.95, lamp=0.6)
_REFLECTIVITY = np.array([REFLECTIVITY[name] for name in MATERIAL_NAMES], np.float32)


def hdl64_elevations(beams: int = 64) -> np.ndarray:
    """Beam elevation angles (beams,) in degrees, top to bottom, HDL-64E-like."""
    upper = beams // 2
    return np.concatenate([np.linspace(2.0, -8.33, upper), np.linspace(-8.83, -24.9, beams - upper)])


def beam_directions(beams: int = 64, azimuth_step_deg: float = 0.1728,
                    azimuth_range_deg: tuple[float, float] | None = None) -> np.ndarray:
    """Unit ray directions (beams, A, 3) in the LiDAR frame; azimuth 0 = +x, positive = left (+y).

    ``azimuth_range_deg`` = (lo, hi) limits the sweep (e.g. to the camera's field of view).
    """
    lo, hi = azimuth_range_deg if azimuth_range_deg is not None else (-180.0, 180.0)
    az = np.radians(np.arange(lo, hi, azimuth_step_deg))
    el = np.radians(hdl64_elevations(beams))
    e, a = np.meshgrid(el, az, indexing="ij")
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1)


def scan(scene: Scene, rcs, rng: np.random.Generator, beams: int = 64, azimuth_step_deg: float = 0.1728,
         azimuth_range_deg: tuple[float, float] | None = None, max_range: float = 120.0,
         range_noise: float = 0.02, drop_rate: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """One sweep. Returns points (N, 4) float32 (x, y, z, reflectance), LiDAR frame, ring-major
    order, and the instance id of the surface each point hit (N,) int32 (0 = stuff)."""
    from .._open3d import import_open3d
    o3d = import_open3d()
    d = beam_directions(beams, azimuth_step_deg, azimuth_range_deg).reshape(-1, 3)
    rays = np.concatenate([np.zeros_like(d), d], 1).astype(np.float32)
    hit = rcs.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()
    ok = t < max_range
    d, t, idx = d[ok], t[ok].astype(np.float64), hit["primitive_ids"].numpy()[ok].astype(np.int64)
    n = hit["primitive_normals"].numpy()[ok]
    cos_inc = np.abs(np.sum(n * d, 1))  # (M,) incidence cosine
    mesh = scene.mesh
    mat = mesh.material[idx]
    p_s = scene.to_street(d * t[:, None])
    n_s = linear(n, scene.street_from_lidar[:3, :3])
    refl = _REFLECTIVITY[mat].copy()
    refl[marking_mask(p_s, scene.layout)] = 0.8
    refl[mat == PAINT] = 0.12 + 0.4 * mesh.albedo[idx[mat == PAINT]].mean(1)
    panes = mat == FACADE
    panes[panes] = window_mask(p_s[panes], n_s[panes], mesh.param[idx[panes]])[0]
    refl[panes] = 0.05
    r = refl * (0.5 + 0.5 * cos_inc) * (1 - 0.3 * t / max_range) + rng.normal(0, 0.02, len(t))
    r = np.clip(r, 0.0, 1.0)
    # Ray drop: always a little, more at grazing incidence, on glass, far away and on dark surfaces.
    p_drop = (drop_rate + 0.4 * (1 - cos_inc) ** 4 + 0.5 * ((mat == GLASS) | panes)
              + 0.3 * (t / max_range) ** 2 + 0.3 * (r < 0.02))
    keep = rng.random(len(t)) >= p_drop
    t_noisy = t + rng.normal(0, range_noise, len(t))
    xyz = d * t_noisy[:, None]
    points = np.concatenate([xyz, r[:, None]], 1).astype(np.float32)[keep]
    return points, mesh.instance[idx][keep].astype(np.int32)
