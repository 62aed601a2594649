"""KITTI's left colour camera (image_2): calibration and a ray-cast, shaded renderer.

Calibration is KITTI's 2011_09_26 recording (P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo),
the one most object-benchmark frames use: the camera sits ~0.27 m ahead of and ~0.08 m below
the LiDAR. Pixel column i, row j covers [i, i+1) x [j, j+1) (simipu's convention, see
:mod:`simipu.geometry`) and is rendered by the ray through its centre (u, v) = (i + 0.5, j + 0.5): ``X_rect = C2 + s * K^-1 (u, v, 1)`` in the rectified camera frame, C2 the centre of
camera 2; along that ray ``s`` equals the depth that ``lidar2img = P2 @ R0_rect @ Tr_velo_to_cam``
assigns, so the depth image and LiDAR projection agree exactly.
"""
from __future__ import annotations

import numpy as np

from .primitives import FACADE, GLASS, LAMP, PAINT, linear
from .scene import Scene
from .textures import sky_colour, surface_colour, window_mask

KITTI_IMAGE_SIZE = (1242, 375)  # (width, height)
_K = [7.215377e02, 0.0, 6.095593e02, 0.0, 7.215377e02, 1.728540e02, 0.0, 0.0, 1.0]
KITTI_CALIB = {
    "P0": np.array([*_K[:3], 0.0, *_K[3:6], 0.0, *_K[6:], 0.0]).reshape(3, 4),
    "P1": np.array([*_K[:3], -3.875744e02, *_K[3:6], 0.0, *_K[6:], 0.0]).reshape(3, 4),
    "P2": np.array([*_K[:3], 4.485728e01, *_K[3:6], 2.163791e-01, *_K[6:], 2.745884e-03]).reshape(3, 4),
    "P3": np.array([*_K[:3], -3.395242e02, *_K[3:6], 2.199936e00, *_K[6:], 2.729905e-03]).reshape(3, 4),
    "R0_rect": np.array([9.999239e-01, 9.837760e-03, -7.445048e-03, -9.869795e-03, 9.999421e-01,
                         -4.278459e-03, 7.402527e-03, 4.351614e-03, 9.999631e-01]).reshape(3, 3),
    "Tr_velo_to_cam": np.array([7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03,
                                1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02,
                                9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01]).reshape(3, 4),
    "Tr_imu_to_velo": np.array([9.999976e-01, 7.553071e-04, -2.035826e-03, -8.086759e-01,
                                -7.854027e-04, 9.998898e-01, -1.482298e-02, 3.195559e-01,
                                2.024406e-03, 1.482454e-02, 9.998881e-01, -7.997231e-01]).reshape(3, 4),
}


def _hom(m: np.ndarray) -> np.ndarray:
    """Pad a (3, 3) or (3, 4) matrix to (4, 4)."""
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out


def kitti_calib(image_size: tuple[int, int] = KITTI_IMAGE_SIZE) -> dict[str, np.ndarray]:
    """KITTI matrices for an image of ``image_size`` = (W, H): P0..P3 rows scaled by W/1242, H/375."""
    sx, sy = image_size[0] / KITTI_IMAGE_SIZE[0], image_size[1] / KITTI_IMAGE_SIZE[1]
    calib = {k: v.copy() for k, v in KITTI_CALIB.items()}
    for k in ("P0", "P1", "P2", "P3"):
        calib[k] = np.diag([sx, sy, 1.0]) @ calib[k]
    return calib


def lidar2img(calib: dict[str, np.ndarray]) -> np.ndarray:
    """(4, 4) P2 @ R0_rect @ Tr_velo_to_cam: LiDAR xyz1 -> (u*d, v*d, d, 1)."""
    return _hom(calib["P2"]) @ _hom(calib["R0_rect"]) @ _hom(calib["Tr_velo_to_cam"])


def pixel_rays(calib: dict[str, np.ndarray], image_size: tuple[int, int]) -> np.ndarray:
    """Rays (H, W, 6) float32 in the LiDAR frame: origin = camera-2 centre, direction with unit depth."""
    W, H = image_size
    P2 = calib["P2"]
    K_inv = np.linalg.inv(P2[:, :3])
    centre_rect = -K_inv @ P2[:, 3]  # (3,) camera 2 in the rectified frame
    v, u = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5  # pixel centres
    d_rect = linear(np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3), K_inv)  # (H*W, 3), z = 1
    rect_from_lidar = _hom(calib["R0_rect"]) @ _hom(calib["Tr_velo_to_cam"])
    lidar_from_rect = np.linalg.inv(rect_from_lidar)
    origin = lidar_from_rect[:3, :3] @ centre_rect + lidar_from_rect[:3, 3]
    d_lidar = linear(d_rect, lidar_from_rect[:3, :3])  # affine map: the ray parameter is unchanged
    rays = np.concatenate([np.broadcast_to(origin, d_lidar.shape), d_lidar], -1)
    return rays.reshape(H, W, 6).astype(np.float32)


def render(scene: Scene, rcs, rays: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Ray-cast and shade one image whose pixel rays (H, W, 6) come from :func:`pixel_rays`.

    Returns ``rgb`` (H, W, 3) uint8, ``depth`` (H, W) float32 metres (camera-2 z, 0 = sky) and
    ``instance`` (H, W) int32 (0 = stuff or sky).
    """
    from .._open3d import import_open3d
    o3d = import_open3d()
    H, W = rays.shape[:2]
    rays = rays.reshape(-1, 6)
    hit = rcs.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()
    prim = hit["primitive_ids"].numpy()
    ok = np.isfinite(t)
    idx = prim[ok].astype(np.int64)
    d = rays[ok, 3:]
    p_l = rays[ok, :3] + t[ok, None] * d  # (M, 3) hit points, LiDAR frame
    n_l = hit["primitive_normals"].numpy()[ok]
    n_l = np.where((np.sum(n_l * d, 1) > 0)[:, None], -n_l, n_l)  # two-sided: face the camera
    R_s = scene.street_from_lidar[:3, :3]
    p_s, n_s = scene.to_street(p_l), linear(n_l, R_s)
    mesh = scene.mesh
    mat, param = mesh.material[idx], mesh.param[idx]
    albedo = surface_colour(mat, mesh.albedo[idx], param, p_s, n_s, scene.layout)

    # Shadow rays towards the sun, started a little off the surface.
    sun_l = scene.sun
    shadow_rays = np.concatenate([p_l + 0.02 * n_l, np.broadcast_to(sun_l, p_l.shape)], 1).astype(np.float32)
    lit = ~rcs.test_occlusions(o3d.core.Tensor(shadow_rays)).numpy().astype(bool)
    sun_s = R_s @ sun_l
    cos_sun = np.clip(n_s @ sun_s, 0, 1) * lit
    sky_amb = np.array([0.32, 0.36, 0.45], np.float32) * (0.6 + 0.4 * n_s[:, 2:3])
    col = albedo * (sky_amb + 1.6 * np.array([1.0, 0.95, 0.85], np.float32) * cos_sun[:, None])

    # Glossy materials reflect the sky (Schlick-like Fresnel): paint, glass and window panes.
    d_s = linear(d, R_s)
    d_s /= np.linalg.norm(d_s, axis=1, keepdims=True)
    cos_v = np.clip(-np.sum(d_s * n_s, 1), 0, 1)
    glass = mat == GLASS
    facade = mat == FACADE
    glass[facade] = window_mask(p_s[facade], n_s[facade], param[facade])[0]
    gloss = np.where(glass, 0.03, np.where(mat == PAINT, 0.04, 0.0))  # reflectance at normal incidence
    fresnel = gloss + np.where(glass, 0.35, 0.25) * (1 - cos_v) ** 5 * (gloss > 0)
    shiny = gloss > 0
    reflect = d_s[shiny] + 2 * cos_v[shiny, None] * n_s[shiny]
    col[shiny] += sky_colour(reflect, sun_s) * (fresnel[shiny] * (0.4 + 0.6 * lit[shiny]))[:, None]
    col[mat == LAMP] += 0.1 * mesh.albedo[idx][mat == LAMP]

    # Aerial perspective towards the horizon colour.
    fog = np.exp(-t[ok] / 450.0)[:, None]
    col = col * fog + np.array([0.7, 0.76, 0.85], np.float32) * (1 - fog)

    image = np.empty((H * W, 3), np.float32)
    image[ok] = col
    d_sky = linear(rays[~ok, 3:], R_s)
    image[~ok] = sky_colour(d_sky / np.linalg.norm(d_sky, axis=1, keepdims=True), sun_s)
    v, u = np.mgrid[0:H, 0:W]
    vignette = 1 - 0.25 * (((u - W / 2) / W) ** 2 + ((v - H / 2) / W) ** 2).reshape(-1, 1)
    image = (1 - np.exp(-1.35 * image * vignette)) ** (1 / 2.2)  # soft highlight roll-off, then gamma
    image = image * 255 + rng.normal(0, 1.2, image.shape)
    rgb = np.clip(np.round(image), 0, 255).astype(np.uint8).reshape(H, W, 3)

    depth = np.where(ok, t, 0).astype(np.float32).reshape(H, W)
    inst = np.zeros(H * W, np.int32)
    inst[ok] = mesh.instance[idx]
    return {"rgb": rgb, "depth": depth, "instance": inst.reshape(H, W)}
