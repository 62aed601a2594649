"""What training sees: one pre-training sample, its two kinds of pairs, and their pictures.

- :func:`sample_pairs` runs a SimIPU model (eval mode, no gradient) on one sample of
  :class:`simipu.pipeline.PretrainDataset` and returns the downsampled locations of both views, the
  matched pairs M1 (Eq. 3) and the point-to-pixel pairs M2 (Eq. 6) with their learned cosine similarities;
- :func:`plot_training_sample` draws the sample as the model receives it — both augmented views, the
  resized / flipped / normalised image (shown de-normalised) with the projected points, the matched pairs —
  like mmdetection3d's ``browse_dataset --aug``; ``simipu browse`` writes it (:func:`browse_frame`);
- :class:`HeldOutFigures` logs the point-to-pixel and matched-pair figures of a fixed held-out frame to
  TensorBoard every ``train.image_every`` steps.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot, so logging from a notebook cell
shows nothing extra. Colours follow :mod:`simipu.viz.matches`: depth on ``turbo``, similarity on
``coolwarm`` in [−1, 1], pair distance on ``plasma``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..geometry import in_image, project_points, sample_features
from ..matching import apply_affine, match_views
from ..pipeline import collate, denormalize_image
from .clouds import bev_scatter
from .matches import overlay_points, plot_point_matches


def sample_pairs(model, sample: dict, matching: str = "hungarian") -> dict:
    """M1 and M2 of one pre-training sample under ``model`` (eval mode, no gradient, RNG untouched).

    Args:
        model: a :class:`simipu.model.SimIPU` (any device); its train/eval mode is restored afterwards.
        sample: one item of :class:`simipu.pipeline.PretrainDataset`.
        matching: "hungarian" or "greedy".
    Returns:
        dict of numpy arrays: ``l_a`` (M, 3) and ``l_b`` (M, 3) downsampled locations (view a / b frame),
        ``l_a_in_b`` (M, 3) = T(l_a); ``rows``, ``cols`` (K,) the pairs l_a[rows] ↔ l_b[cols];
        ``pair_cos`` (K,) cosine similarity of their point-head embeddings (Eq. 4's positives);
        ``valid`` (M,) bool, l_a inside the image; ``uv`` (P, 2), ``depth`` (P,) those points' pixels in the
        network-input image; ``pixel_cos`` (P,) similarity of image and point-key embeddings (Eq. 7's
        positives); ``pixel_cos_other`` float, mean similarity of the P·(P−1) non-matching pairs.
    """
    device = next(model.parameters()).device
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate([sample]).items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            l_a, f_a = model.point_encoder(batch["points_a"])  # (1, M, 3), (1, M, C)
            l_b, f_b = model.point_encoder(batch["points_b"])
            rows, cols = match_views(l_a, l_b, batch["T_ab"], matching)[0]
            r, c = torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)
            pair_cos = (F.normalize(model.point_head(f_a[0, r]), dim=1)
                        * F.normalize(model.point_head(f_b[0, c]), dim=1)).sum(1)  # (K,)
            feat = model.image_encoder(batch["image"])  # (1, C', Hp/32, Wp/32)
            uv, depth = project_points(l_a, batch["lidar2img"])  # (1, M, 2), (1, M)
            valid = in_image(uv, depth, batch["image_hw"])[0]  # (M,)
            f_g = sample_features(feat, uv, batch["image_hw"], stride=model.image_encoder.stride)[0, valid]
            z_img = F.normalize(model.image_head(f_g), dim=1)  # (P, D)
            z_pts = F.normalize(model.point_key_head(f_a[0, valid]), dim=1)  # (P, D)
            sim = z_img @ z_pts.T  # (P, P)
    finally:
        model.train(was_training)
    P = sim.shape[0]
    other = float((sim.sum() - sim.diagonal().sum()) / max(P * (P - 1), 1))
    l_a_np = l_a[0].cpu().numpy()
    return dict(l_a=l_a_np, l_b=l_b[0].cpu().numpy(),
                l_a_in_b=apply_affine(l_a_np[None], sample["T_ab"][None])[0],
                rows=np.asarray(rows), cols=np.asarray(cols), pair_cos=pair_cos.cpu().numpy(),
                valid=valid.cpu().numpy(), uv=uv[0, valid].cpu().numpy(), depth=depth[0, valid].cpu().numpy(),
                pixel_cos=sim.diagonal().cpu().numpy(), pixel_cos_other=other)


def network_image(sample: dict, img_norm: str) -> np.ndarray:
    """The sample's image as the network receives it (resized, maybe flipped), de-normalised and unpadded:
    (H, W, 3) uint8 RGB."""
    h, w = (int(x) for x in sample["image_hw"])
    return denormalize_image(sample["image"], img_norm)[:h, :w]


def draw_pixel_pairs(ax, sample: dict, pairs: dict, img_norm: str, title: bool = True):
    """Point-to-pixel pairs (M2) on ``ax``: the network-input image, every point of view a projected into it
    (small, by depth), and the in-image downsampled points l_a (large, by learned similarity).

    Returns the scatter of the downsampled points (for a colour bar).
    """
    image = network_image(sample, img_norm)
    uv_all, d_all = project_points(sample["points_a"][:, :3].astype(np.float64), sample["lidar2img"])
    m = in_image(uv_all, d_all, image.shape[:2])
    overlay_points(ax, image, uv_all[m], c=d_all[m], s=1.5, cmap="turbo", vmin=0.0,
                   vmax=float(np.percentile(d_all[m], 98)) if m.any() else 1.0, alpha=0.8)
    sc = ax.scatter(pairs["uv"][:, 0] - 0.5, pairs["uv"][:, 1] - 0.5, c=pairs["pixel_cos"], cmap="coolwarm",
                    vmin=-1, vmax=1, s=14, edgecolors="k", linewidths=0.3)
    if title:
        ax.set_title(f"point-to-pixel pairs (M2): {len(pairs['uv'])} of {len(pairs['valid'])} downsampled points "
                     f"in the {image.shape[1]}x{image.shape[0]} network image\ncosine similarity image<->point: "
                     f"matched {pairs['pixel_cos'].mean():.2f}, other pairs {pairs['pixel_cos_other']:.2f} "
                     f"(small dots: all {int(m.sum())} input points, by depth)", fontsize=9)
    return sc


def draw_matched_pairs(ax, pairs: dict):
    """Matched pairs (M1) on ``ax`` in view b's bird's-eye view; returns the line collection (colour bar)."""
    d = np.linalg.norm(pairs["l_a_in_b"][pairs["rows"]] - pairs["l_b"][pairs["cols"]], axis=1)
    lc = plot_point_matches(ax, pairs["l_a_in_b"], pairs["l_b"], pairs["rows"], pairs["cols"], s=9.0,
                            vmax=max(float(np.percentile(d, 95)), 1e-3) if len(d) else None)
    ax.set_title(f"matched pairs (M1): {len(d)} pairs, distance mean {d.mean():.2f} m, "
                 f"{(d < 0.1).mean():.0%} under 0.1 m\npoint-head cosine similarity of pairs {pairs['pair_cos'].mean():.2f}",
                 fontsize=9)
    return lc


def plot_pixel_pairs(sample: dict, pairs: dict, img_norm: str, title: str = "") -> Figure:
    """One-panel figure of :func:`draw_pixel_pairs` (TensorBoard)."""
    h, w = (int(x) for x in sample["image_hw"])
    fig = Figure(figsize=(11, 11 * h / w + 1.4))
    ax = fig.subplots()
    sc = draw_pixel_pairs(ax, sample, pairs, img_norm)
    fig.colorbar(sc, ax=ax, label="cosine similarity", fraction=0.03, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_matched_pairs(pairs: dict, title: str = "") -> Figure:
    """One-panel figure of :func:`draw_matched_pairs` (TensorBoard)."""
    fig = Figure(figsize=(9, 8), layout="constrained")
    ax = fig.subplots()
    lc = draw_matched_pairs(ax, pairs)
    fig.colorbar(lc, ax=ax, label="pair distance (m)", fraction=0.04, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_training_sample(sample: dict, pairs: dict, img_norm: str, title: str = "") -> Figure:
    """The whole sample as training sees it: view a, view b, the network image with M2, the M1 pairs.

    Args:
        sample: an item of :class:`simipu.pipeline.PretrainDataset`; pairs: :func:`sample_pairs` of it;
        img_norm: the ``data.img_norm`` the sample was normalised with.
    Returns:
        a matplotlib figure: three bird's-eye views in one window on top (view a with the downsampled l_a,
        view b, the matched pairs in view b's frame), the network image across the bottom.
    """
    h, w = (int(x) for x in sample["image_hw"])
    fig = Figure(figsize=(21, 7 + 21 * h / w), layout="constrained")
    axes = fig.subplot_mosaic([["a", "b", "m"], ["img", "img", "img"]], height_ratios=[1.0, 2.6 * h / w])
    ax_a, ax_b, ax_m, ax_img = axes["a"], axes["b"], axes["m"], axes["img"]
    a, b = sample["points_a"], sample["points_b"]
    vmin, vmax = np.percentile(a[:, 2], [1, 99])
    both = np.concatenate([a[:, :2], b[:, :2]])
    lim = dict(xlim=(both[:, 0].min() - 2, both[:, 0].max() + 2), ylim=(both[:, 1].min() - 2, both[:, 1].max() + 2))
    A = sample["T_ab"][:3, :3].astype(np.float64)
    scale = float(abs(np.linalg.det(A)) ** (1 / 3))            # A = s·R_z(θ)·F: det = ±s³
    flip = bool(np.linalg.det(A) < 0)                           # F = diag(1, −1, 1) has det −1
    angle = float(np.degrees(np.arctan2(A[1, 0], A[0, 0])))     # first column: s·(cos θ, sin θ, 0)
    sc = bev_scatter(ax_a, a, s=0.8, vmin=vmin, vmax=vmax, title=f"view a: p_a, {len(a)} points", **lim)
    bev_scatter(ax_b, b, s=0.8, vmin=vmin, vmax=vmax, **lim,
                title=f"view b: p_b = T(p_a); scale {scale:.2f}, BEV flip {flip}, rotation {angle:.0f}°")
    ax_a.scatter(pairs["l_a"][:, 0], pairs["l_a"][:, 1], s=6, facecolors="none", edgecolors="k", linewidths=0.4,
                 label="l_a (downsampled)")
    ax_a.legend(loc="upper right", fontsize=8)
    fig.colorbar(sc, ax=[ax_a, ax_b], label="z (m)", shrink=0.8)
    psc = draw_pixel_pairs(ax_img, sample, pairs, img_norm)
    fig.colorbar(psc, ax=ax_img, label="cosine similarity", shrink=0.8)
    lc = draw_matched_pairs(ax_m, pairs)
    ax_m.set_xlim(*lim["xlim"]), ax_m.set_ylim(*lim["ylim"])
    fig.colorbar(lc, ax=ax_m, label="pair distance (m)", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _dataset_and_index(data_cfg, frame_id: str | None, splits):
    """(PretrainDataset over ``splits``, index of ``frame_id`` in it, or 0 when ``frame_id`` is None)."""
    from ..errors import DataError
    from ..pipeline import PretrainDataset
    dataset = PretrainDataset(data_cfg, split_override=tuple(splits))
    if frame_id is None:
        return dataset, 0
    ids = [f for f, _ in dataset.frames.frames]
    if frame_id not in ids:
        raise DataError(data_cfg.root, f"no frame '{frame_id}' in splits {list(splits)} (frames there: "
                                       f"{', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})")
    return dataset, ids.index(frame_id)


class HeldOutFigures:
    """TensorBoard figures of one fixed frame: the first of the ``val`` split (held out of pre-training),
    or, when the root has no val split, the first training frame (tagged ``train_frame``).

    The sample (its augmentation included) is drawn once, so the figures of successive steps differ only
    by what the model learned. :meth:`log` writes ``{tag}/point_to_pixel`` and ``{tag}/matched_pairs``.
    """

    def __init__(self, cfg):
        from ..errors import DataError
        self.cfg = cfg
        try:
            dataset, _ = _dataset_and_index(cfg.data, None, ("val",))
            self.tag = "heldout"
        except (DataError, ValueError):
            dataset, _ = _dataset_and_index(cfg.data, None, cfg.data.splits)
            self.tag = "train_frame"
        self.frame_id = dataset.frames.frames[0][0]
        self.sample = dataset[0]

    def log(self, writer, model, step: int) -> None:
        pairs = sample_pairs(model, self.sample, self.cfg.model.matching)
        title = f"{self.tag} frame {self.frame_id}, step {step}"
        writer.add_figure(f"{self.tag}/point_to_pixel", plot_pixel_pairs(self.sample, pairs, self.cfg.data.img_norm,
                                                                         title), step)
        writer.add_figure(f"{self.tag}/matched_pairs", plot_matched_pairs(pairs, title), step)


def browse_frame(cfg, frame_id: str | None, out, splits=None, ckpt=None, epoch: int = 0, seed: int = 0) -> Path:
    """Write ``out`` (PNG): frame ``frame_id`` (None: the first) as pre-training sees it (``simipu browse``).

    Args:
        cfg: a :class:`simipu.config.Config` whose data settings make the sample (``data.root`` included).
        splits: where to look for the frame (default ``cfg.data.splits``).
        ckpt: optional SimIPU checkpoint for the model (its model settings are used); without it a freshly
            initialised model (seed ``seed``) downsamples and matches — the similarities are then untrained.
        epoch: which epoch's random augmentation to draw (each epoch draws a new one).
    """
    from ..checkpoint import load_checkpoint, load_model_state, model_state_from
    from ..config import config_from_dict
    from ..model import SimIPU
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must end in .png, got '{out.name}'")
    model_cfg, weights = cfg.model, "untrained model (seed %d)" % seed
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        model_cfg = config_from_dict(state["config"]).model
        torch.manual_seed(seed)
        model = SimIPU(model_cfg)
        load_model_state(model, model_state_from(state, ckpt), state["config"]["model"],
                         config_from_dict(state["config"]).to_dict()["model"], ckpt)
        weights = f"{Path(ckpt).name} (step {state.get('step')})"
    else:
        torch.manual_seed(seed)
        model = SimIPU(model_cfg)
    dataset, index = _dataset_and_index(cfg.data, None if frame_id is None else str(frame_id),
                                        splits or cfg.data.splits)
    dataset.set_epoch(epoch)
    sample = dataset[index]
    frame_id = sample["frame_id"]
    pairs = sample_pairs(model, sample, model_cfg.matching)
    title = (f"{cfg.name}: frame {frame_id} of {cfg.data.root}, epoch {epoch}'s augmentation; "
             f"{dataset.describe_points()}\nmodel: {weights}")
    fig = plot_training_sample(sample, pairs, cfg.data.img_norm, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    return out
