"""Pictures of SimIPU's two kinds of pairs, and ``simipu inspect``.

- point ↔ point (M1, Eq. 3): :func:`plot_point_matches` draws, in bird's-eye view, a line from each
  ``T(l_a[i])`` to its partner ``l_b[j]``, coloured by the distance between them;
- point ↔ pixel (M2, Eq. 6): :func:`plot_point_to_pixel` (matplotlib) and :func:`plotly_point_to_pixel`
  (interactive) show where LiDAR points land in the image; :func:`wrong_matches` measures, with a
  simulator's instance ground truth, how often the pixel (or the stride-32 feature cell) a point lands
  on belongs to another object (occlusion / parallax between LiDAR and camera);
- :func:`inspect_frame` writes those pictures for any frame of any KITTI-format root (the CLI's
  ``simipu inspect``), optionally coloured by a checkpoint's learned point-pixel similarity.

Pixel convention of :mod:`simipu.geometry`: pixel ``i`` covers ``[i, i + 1)``, so the pixel under ``uv`` is
``floor(uv)``. Arrays are numpy (torch tensors are converted); points are in the LiDAR frame.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from PIL import Image

from ..data import REDUCED_DIR, SPLIT_DIRS, crop_to_range, load_image, load_points, read_calib, sample_points
from ..errors import DataError
from ..geometry import in_image, project_points, sample_image
from .clouds import _np, bev_scatter

FORMATS = (".png", ".html")


# ----------------------------------------------------------------------------- point ↔ point (M1)
def plot_point_matches(ax, xyz_a_in_b, xyz_b, rows, cols, vmax: float | None = None, s: float = 4.0,
                       title: str | None = None, cmap: str = "plasma"):
    """BEV of matched pairs: ``T(l_a)`` (blue dots), ``l_b`` (orange dots), a line per pair coloured by length.

    Args:
        ax: matplotlib axis.
        xyz_a_in_b: (N, 3) view-a locations brought into view b's frame, ``T(l_a)``.
        xyz_b: (M, 3) view-b locations ``l_b``.
        rows, cols: (K,) int pairs ``xyz_a_in_b[rows[k]] ↔ xyz_b[cols[k]]`` (from ``simipu.matching``).
        vmax: top of the colour scale in metres (default: the largest distance).
    Returns:
        the ``LineCollection`` (pass it to ``fig.colorbar``).
    """
    a, b = _np(xyz_a_in_b)[:, :3], _np(xyz_b)[:, :3]
    rows, cols = np.asarray(rows), np.asarray(cols)
    d = np.linalg.norm(a[rows] - b[cols], axis=1)  # (K,)
    order = np.argsort(d)  # long lines last, on top
    segs = np.stack([a[rows, :2], b[cols, :2]], 1)[order]  # (K, 2, 2)
    lc = LineCollection(segs, array=d[order], cmap=cmap, linewidths=1.0)
    lc.set_clim(0, vmax if vmax is not None else max(float(d.max(initial=0)), 1e-6))
    bev_scatter(ax, b, c="tab:orange", s=s, label="$l_b$")
    bev_scatter(ax, a, c="tab:blue", s=s, label="$T(l_a)$")
    ax.add_collection(lc)
    ax.legend(loc="upper right", fontsize=8, markerscale=3)
    if title:
        ax.set_title(title)
    return lc


# ----------------------------------------------------------------------------- point ↔ pixel (M2)
def pixel_of(uv) -> np.ndarray:
    """(N, 2) continuous pixel coordinates → (N, 2) int64 indices ``(col, row)`` of the pixel under each."""
    return np.floor(_np(uv)).astype(np.int64)


def cell_majority(instance_img: np.ndarray, cell: int) -> np.ndarray:
    """Most frequent instance id of every ``cell × cell`` block of an (H, W) id image.

    Blocks follow the feature-grid convention of ``simipu.geometry`` (block ``j`` covers pixels
    ``[j·cell, (j + 1)·cell)``); the image is padded at the bottom/right, and padding does not vote.
    Returns (ceil(H/cell), ceil(W/cell)) int64.
    """
    ids = np.asarray(instance_img, dtype=np.int64)
    H, W = ids.shape
    h, w = -(-H // cell), -(-W // cell)
    rr, cc = np.divmod(np.arange(H * W), W)
    block = (rr // cell) * w + cc // cell  # (H·W,) block of each pixel
    n_ids = int(ids.max()) + 1
    votes = np.bincount(block * n_ids + ids.ravel(), minlength=h * w * n_ids).reshape(h * w, n_ids)
    return votes.argmax(1).reshape(h, w)


def wrong_matches(instance_img: np.ndarray, uv, point_ids, cell: int = 1) -> np.ndarray:
    """Which point-to-pixel matches pair a point with another object? (N,) bool.

    A point of instance ``point_ids[n]`` lands at ``uv[n]``. With ``cell = 1`` the match is wrong when the
    pixel under it shows another instance (the camera sees something else there: occlusion, parallax
    between LiDAR and camera, a point grazing an edge). With ``cell = s`` the point is compared with the
    majority instance of its ``s × s`` block — what a stride-``s`` feature cell mostly describes.

    Args:
        instance_img: (H, W) int instance ids (0 = stuff: road, buildings, sky...).
        uv: (N, 2) pixel coordinates, all inside the image (mask first with ``in_image``).
        point_ids: (N,) int instance id per point.
        cell: block size in pixels (1 = the pixel itself).
    """
    col, row = pixel_of(uv).T
    if cell == 1:
        seen = np.asarray(instance_img)[row, col]
    else:
        seen = cell_majority(instance_img, cell)[row // cell, col // cell]
    return seen != np.asarray(point_ids)


def _depth_colours(depth, vmax=None):
    return dict(c=_np(depth), cmap="turbo", vmin=0.0, vmax=vmax or float(np.percentile(_np(depth), 98)))


def draw_cell_grid(ax, image_hw, stride: int = 32, **kwargs):
    """Draw the boundaries of the stride-``stride`` feature cells over an image shown with ``imshow``."""
    H, W = image_hw
    style = dict(color="w", lw=0.4, alpha=0.5) | kwargs
    for x in range(0, W + 1, stride):
        ax.axvline(x - 0.5, **style)  # imshow puts pixel i's centre at i: its left edge is at i - 0.5
    for y in range(0, H + 1, stride):
        ax.axhline(y - 0.5, **style)


def overlay_points(ax, image, uv, c, s: float = 2.0, title: str | None = None, **kwargs):
    """Image with points drawn at their pixels (matplotlib ``imshow`` puts pixel i's centre at i, so
    a continuous ``u`` is drawn at ``u − 0.5``). Returns the scatter (for a colour bar)."""
    uv = _np(uv)
    ax.imshow(image)
    sc = ax.scatter(uv[:, 0] - 0.5, uv[:, 1] - 0.5, c=c, s=s, linewidths=0, **kwargs)
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return sc


def bev_forward_up(ax, xyz, s: float = 1.0, title: str | None = None, **style):
    """Bird's-eye view drawn like the camera sees it: ``x`` (forward) up, ``y`` (left) to the left.

    Left in this picture is left in the image, so the two can be read side by side.
    Returns the scatter (for a colour bar).
    """
    xyz = _np(xyz)
    sc = ax.scatter(xyz[:, 1], xyz[:, 0], s=s, linewidths=0, **style)
    ax.set_aspect("equal")
    ax.invert_xaxis()  # +y (left) on the left
    ax.set(xlabel="y (m, left)", ylabel="x (m, forward)")
    if title:
        ax.set_title(title, fontsize=10)
    return sc


def plot_point_to_pixel(image, xyz, uv, depth, wrong=None, colour=None, colour_label: str = "depth (m)",
                        title: str | None = None, s: float = 2.0, width: float = 17.0):
    """Static picture of point-to-pixel matches: the image with the projected points, and the same points
    in a bird's-eye view drawn forward-up (left = left, as in the image).

    Args:
        image: (H, W, 3) uint8.
        xyz: (N, 3) in-image points (LiDAR frame); uv (N, 2) their pixels; depth (N,) their depths.
        wrong: optional (N,) bool, matches to circle in red (e.g. from :func:`wrong_matches`).
        colour: optional (N,) values to colour by instead of depth (e.g. a learned similarity in [−1, 1]).
        title: figure title; width: figure width in inches (the height follows the panels).
    Returns:
        the matplotlib figure.
    """
    xyz, uv, depth = _np(xyz)[:, :3], _np(uv), _np(depth)
    H, W = image.shape[:2]
    extent = np.ptp(xyz[:, :2], axis=0) + 1e-6 if len(xyz) else np.ones(2)
    bev_ratio = float(np.clip(extent[1] / extent[0], 0.35, 1.2))  # width / height of the BEV panel
    fig, (ax_img, ax_bev) = plt.subplots(1, 2, figsize=(width, width / (W / H + bev_ratio) + 1.3),
                                         gridspec_kw=dict(width_ratios=[W / H, bev_ratio], wspace=0.12))
    if colour is None:
        style = _depth_colours(depth)
    else:
        style = dict(c=_np(colour), cmap="coolwarm", vmin=-1.0, vmax=1.0)
    sc = overlay_points(ax_img, image, uv, s=s, title="points projected into the image", **style)
    bev_forward_up(ax_bev, xyz, s=s, title="the same points from above", **style)
    if wrong is not None and np.any(wrong):
        w = np.asarray(wrong)
        ax_img.scatter(uv[w, 0] - 0.5, uv[w, 1] - 0.5, s=18, facecolors="none", edgecolors="r", linewidths=0.6,
                       label="pixel shows another object")
        ax_img.legend(loc="lower right", fontsize=8)
        ax_bev.scatter(xyz[w, 1], xyz[w, 0], s=10, facecolors="none", edgecolors="r", linewidths=0.5)
    fig.colorbar(sc, ax=[ax_img, ax_bev], label=colour_label, shrink=0.9, pad=0.015, fraction=0.03)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _png_data_uri(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plotly_point_to_pixel(image, xyz, uv, depth, instance_ids=None, similarity=None, max_points: int = 5000,
                          seed: int = 0, title: str = "point-to-pixel matches"):
    """Interactive view: 3D points coloured like their pixel (left) and the image with the points (right).

    Both traces carry the same ``customdata`` per point — (u, v, depth, instance id[, similarity]) — so
    hovering a 3D point or its marker in the image tells where it lands. At most ``max_points`` points
    (a random subset) keep the figure light.

    Args:
        image: (H, W, 3) uint8; xyz (N, 3) in-image points; uv (N, 2) their pixels; depth (N,).
        instance_ids: optional (N,) int, shown on hover (−1 when unknown).
        similarity: optional (N,) learned cosine similarity; then image markers are coloured by it.
    Returns:
        a ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    xyz, uv, depth = _np(xyz)[:, :3], _np(uv), _np(depth)
    n = len(xyz)
    keep = np.sort(np.random.default_rng(seed).choice(n, min(n, max_points), replace=False))
    xyz, uv, depth = xyz[keep], uv[keep], depth[keep]
    ids = np.full(len(keep), -1) if instance_ids is None else np.asarray(instance_ids)[keep]
    rgb = sample_image(image, uv).round().astype(int)
    rgb_str = [f"rgb({r},{g},{b})" for r, g, b in rgb]
    custom = np.column_stack([uv, depth, ids] + ([np.asarray(similarity)[keep]] if similarity is not None else []))
    hover = "u=%{customdata[0]:.1f}, v=%{customdata[1]:.1f}<br>depth=%{customdata[2]:.2f} m<br>instance=%{customdata[3]:.0f}"
    if similarity is not None:
        hover += "<br>cos sim=%{customdata[4]:.2f}"
    H, W = image.shape[:2]
    fig = make_subplots(rows=2, cols=1, specs=[[{"type": "scene"}], [{"type": "xy"}]], row_heights=[0.6, 0.4],
                        vertical_spacing=0.04, subplot_titles=("3D points, coloured like their pixel",
                                                               "image with the projected points"))
    fig.add_trace(go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers", customdata=custom,
                               marker=dict(size=2, color=rgb_str), hovertemplate=hover, name="3D"), 1, 1)
    fig.add_trace(go.Image(source=_png_data_uri(image), x0=0, y0=0, dx=1, dy=1, hoverinfo="skip"), 2, 1)
    if similarity is None:
        marker = dict(size=3, color=depth, colorscale="Turbo", cmin=0, cmax=float(np.percentile(depth, 98)),
                      colorbar=dict(title="depth (m)", len=0.35, y=0.2))
    else:
        marker = dict(size=3, color=custom[:, 4], colorscale="RdBu", reversescale=True, cmin=-1, cmax=1,
                      colorbar=dict(title="cos sim", len=0.35, y=0.2))
    # go.Image puts pixel i's centre at i, so a continuous u is drawn at u − 0.5
    fig.add_trace(go.Scattergl(x=uv[:, 0] - 0.5, y=uv[:, 1] - 0.5, mode="markers", customdata=custom,
                               marker=marker, hovertemplate=hover, name="pixels"), 2, 1)
    fig.update_xaxes(range=[-0.5, W - 0.5], showgrid=False, row=2, col=1)
    fig.update_yaxes(range=[H - 0.5, -0.5], showgrid=False, scaleanchor="x", row=2, col=1)
    fig.update_layout(title=title, height=900, showlegend=False, margin=dict(l=10, r=10, t=60, b=10),
                      scene=dict(aspectmode="data", xaxis_title="x (fwd)", yaxis_title="y (left)", zaxis_title="z"))
    return fig


# ----------------------------------------------------------------------------- one frame, any root
def load_frame(data_root, frame_id: str, split: str = "training", velodyne_dir: str = "velodyne", camera: int = 2,
               point_dims: int = 4) -> dict:
    """One frame by id: dict(points (N, 4), image (H, W, 3), calib, instance_img (H, W) or None,
    point_ids (N,) or None). ``split`` is a folder (training/testing) or a split name (train/val/test).

    ``velodyne_dir`` (``"auto"``: ``velodyne_reduced`` when present), ``camera`` (``image_{camera}``,
    ``P{camera}``) and ``point_dims`` (floats per point) are the data options of the config, so a
    Waymo-in-KITTI-format root (camera 0, 6 floats) reads like KITTI. Unknown ids and missing folders raise
    :class:`DataError` naming what was looked for.
    """
    root = Path(data_root)
    split_dir = SPLIT_DIRS.get(split, split)
    d = root / split_dir
    if not root.is_dir():
        raise DataError(root, "data root does not exist")
    if velodyne_dir == "auto":
        velodyne_dir = REDUCED_DIR if (d / REDUCED_DIR).is_dir() else "velodyne"
    if not (d / velodyne_dir).is_dir():
        raise DataError(d, f"no {velodyne_dir}/ folder: '{split}' is not a split folder of this root "
                           f"(expected {root}/training or {root}/testing)")
    frame_id = str(frame_id)
    velo = d / velodyne_dir / f"{frame_id}.bin"
    if Path(frame_id).name != frame_id or frame_id.startswith(".") or not velo.is_file():
        known = sorted(p.stem for p in (d / velodyne_dir).glob("*.bin"))
        raise DataError(velo, f"no frame '{frame_id}' in {d} (frames there: "
                              f"{', '.join(known[:5])}{', ...' if len(known) > 5 else ''})")
    points = load_points(velo, point_dims)
    image = load_image(d / f"image_{camera}" / f"{frame_id}.png")
    calib = read_calib(d / "calib" / f"{frame_id}.txt", camera=camera)
    inst_path = d / f"instance_{camera}" / f"{frame_id}.png"
    ids_path = d / "velodyne_instance" / f"{frame_id}.bin"           # ids of the points of velodyne/
    instance_img = point_ids = None
    if velodyne_dir == "velodyne" and inst_path.is_file() and ids_path.is_file():
        instance_img = np.asarray(Image.open(inst_path), dtype=np.int64)
        point_ids = np.fromfile(ids_path, dtype="<i4").astype(np.int64)
        if len(point_ids) != len(points) or instance_img.shape != image.shape[:2]:
            raise DataError(ids_path, f"{len(point_ids)} instance ids / instance image {instance_img.shape} "
                                      f"do not fit {len(points)} points / image {image.shape[:2]}")
    return dict(points=points, image=image, calib=calib, instance_img=instance_img, point_ids=point_ids)


def checkpoint_similarity(ckpt, points: np.ndarray, image: np.ndarray, lidar2img: np.ndarray, seed: int = 0):
    """Cosine similarity of Eq. 7's pair for each downsampled point of a frame, with a SimIPU checkpoint.

    The frame goes through the checkpoint's own data settings (range crop, ``num_points``, the middle
    of its image scale range, no flip), the point encoder gives ``l_a, f_a``; each in-image location's
    image feature ``f_g`` goes through ``image_head`` and ``f_a`` through ``point_key_head``.

    Returns:
        xyz (P, 3) in-image locations, uv (P, 2) their pixels in the *original* image, depth (P,),
        cos (P,) similarity of matched pairs, cos_other (float) mean similarity to the other points.
    """
    import torch
    import torch.nn.functional as F

    from ..checkpoint import load_checkpoint, load_model_state, model_state_from, stored_config
    from ..geometry import sample_features
    from ..model import SimIPU
    from ..pipeline import normalize_image
    from ..views import pad_image, resize_image

    state = load_checkpoint(ckpt)
    cfg = stored_config(state, ckpt)
    model = SimIPU(cfg.model)
    load_model_state(model, model_state_from(state, ckpt), state["config"].get("model"), cfg.to_dict()["model"], ckpt)
    model.eval()
    kept = crop_to_range(points, cfg.data.point_range)
    if len(kept) == 0:
        raise ValueError(f"no point of the frame lies in the checkpoint's point_range {cfg.data.point_range}")
    pts = sample_points(kept, cfg.data.num_points, np.random.default_rng(seed))
    scale = tuple(int(round((a + b) / 2)) for a, b in zip(*cfg.data.img_scale_range))
    img, img_aug = resize_image(image, scale)
    hw = img.shape[:2]
    img, _ = pad_image(normalize_image(img, cfg.data.img_norm), cfg.data.img_size_divisor)
    with torch.no_grad():
        l_a, f_a = model.point_encoder(torch.from_numpy(pts)[None])  # (1, M, 3), (1, M, C)
        feat = model.image_encoder(torch.from_numpy(img.transpose(2, 0, 1).copy())[None])  # (1, C', h, w)
        l2i = torch.as_tensor(img_aug @ lidar2img, dtype=torch.float32)
        uv, depth = project_points(l_a, l2i[None])  # (1, M, 2), (1, M)
        valid = in_image(uv, depth, torch.tensor([hw]))[0]  # (M,)
        if int(valid.sum()) < 2:
            raise ValueError("fewer than 2 downsampled points project into the image")
        f_g = sample_features(feat, uv, torch.tensor([hw]), stride=model.image_encoder.stride)[0, valid]
        z_img = F.normalize(model.image_head(f_g), dim=1)  # (P, D)
        z_pts = F.normalize(model.point_key_head(f_a[0, valid]), dim=1)  # (P, D)
        sim = z_img @ z_pts.T  # (P, P)
    P = sim.shape[0]
    cos = sim.diagonal().numpy()
    cos_other = float((sim.sum() - sim.diagonal().sum()) / max(P * (P - 1), 1))
    xyz = l_a[0, valid].numpy().astype(np.float64)
    uv0, d0 = project_points(xyz, lidar2img)
    return xyz, uv0, d0, cos, cos_other


def inspect_frame(data_root, frame_id: str, out, split: str = "training", ckpt=None, data=None) -> Path:
    """Write the point-to-pixel pictures of one frame: ``out`` = ``*.png`` (matplotlib) or ``*.html`` (plotly).

    Without ``ckpt``: every LiDAR point that projects into the image, coloured by depth; with the
    simulator's ground truth (``instance_2/`` and ``velodyne_instance/``), wrong matches are circled and
    their shares (pixel and stride-32 cell) are in the title. With ``ckpt`` (a SimIPU checkpoint): the
    checkpoint's downsampled points, coloured by the cosine similarity of their image and point features.
    ``data`` (a :class:`simipu.config.DataConfig`, e.g. of ``waymo``) gives the point folder, camera and
    floats per point; default KITTI's ``velodyne/``, ``image_2``, 4.

    Raises ValueError for another extension, :class:`DataError` for an unknown frame.
    """
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"--out must end in .png (static picture) or .html (interactive), got '{out.name}'")
    options = {} if data is None else dict(velodyne_dir=data.velodyne_dir, camera=data.camera,
                                           point_dims=data.point_dims)
    f = load_frame(data_root, frame_id, split, **options)
    image, lidar2img = f["image"], f["calib"].lidar2img
    H, W = image.shape[:2]
    title = f"{Path(data_root).name}/{split}/{frame_id}"
    sim, ids, wrong = None, None, None
    if ckpt is None:
        xyz = f["points"][:, :3].astype(np.float64)
        uv, depth = project_points(xyz, lidar2img)
        m = in_image(uv, depth, (H, W))
        xyz, uv, depth = xyz[m], uv[m], depth[m]
        title += f": {m.sum()} of {len(m)} points in the image"
        if f["instance_img"] is not None:
            ids = f["point_ids"][m]
            wrong = wrong_matches(f["instance_img"], uv, ids)
            cell = wrong_matches(f["instance_img"], uv, ids, cell=32).mean()
            title += (f"\npoint and image disagree on the object for {wrong.mean():.1%} of points at their pixel, "
                      f"{cell:.1%} at their 32x32 cell (majority)")
    else:
        xyz, uv, depth, sim, other = checkpoint_similarity(ckpt, f["points"], image, lidar2img)
        title += (f": {len(xyz)} downsampled points of {Path(ckpt).name}\ncosine similarity image<->point feature: "
                  f"matched {sim.mean():.2f}, other pairs {other:.2f}")
    from ..outputs import atomic_write  # all or nothing: no half-written file on a full disk
    if out.suffix.lower() == ".png":
        fig = plot_point_to_pixel(image, xyz, uv, depth, wrong=wrong, colour=sim, title=title,
                                  s=2.0 if ckpt is None else 8.0,
                                  colour_label="depth (m)" if sim is None else "cosine similarity")
        try:
            atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
        finally:
            plt.close(fig)
    else:
        fig = plotly_point_to_pixel(image, xyz, uv, depth, instance_ids=ids, similarity=sim,
                                    title=title.replace("\n", "<br>"))  # plotly breaks lines with <br>
        atomic_write(out, lambda f: f.write(fig.to_html(include_plotlyjs=True, full_html=True).encode()))
    return out
