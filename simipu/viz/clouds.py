"""Pictures of point clouds: bird's-eye views, the two views of SimIPU, sampling coverage, ball neighbourhoods.

Every function takes plain numpy arrays (torch tensors are converted) in the LiDAR frame
(``x`` forward, ``y`` left, ``z`` up, metres). Bird's-eye views (BEV) draw ``x`` to the right and ``y``
up, with equal axis scales, so a car looks like a car. Matplotlib figures are returned (not shown);
:func:`plotly_two_views` returns an interactive ``plotly.graph_objects.Figure``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle


def _np(x) -> np.ndarray:
    """numpy view of a numpy array or a (CPU or not) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def bev_scatter(ax, xyz, c=None, s: float = 0.5, cmap: str = "viridis", title: str | None = None,
                xlim=None, ylim=None, **kwargs):
    """Bird's-eye view of a cloud on ``ax``: ``x`` right, ``y`` up, equal scales.

    Args:
        ax: a matplotlib axis.
        xyz: (N, ≥2) points (only x and y are drawn).
        c: values per point (N,) mapped through ``cmap`` (e.g. height ``z``), or one colour name
            (``"0.7"``, ``"tab:red"``); default height.
        s: marker size; cmap: colormap for numeric ``c``; xlim/ylim: optional (lo, hi) metres.
    Returns:
        the ``PathCollection`` of the scatter (pass it to ``fig.colorbar``).
    """
    xyz = _np(xyz)
    if c is None:
        c = xyz[:, 2] if xyz.shape[1] > 2 else "k"
    if isinstance(c, str):
        sc = ax.scatter(xyz[:, 0], xyz[:, 1], color=c, s=s, linewidths=0, **kwargs)   # one colour
    else:
        sc = ax.scatter(xyz[:, 0], xyz[:, 1], c=_np(c), s=s, cmap=cmap, linewidths=0, **kwargs)
    ax.set_aspect("equal")
    ax.set(xlabel="x (m, forward)", ylabel="y (m, left)")
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    return sc


def plot_two_views(xyz_a, xyz_b, T=None, center=None, s: float = 0.5, figsize=(16, 5.5)):
    """The two views of one cloud side by side in BEV (coloured by height, same colour scale).

    Args:
        xyz_a: (N, ≥3) view a (original LiDAR frame).
        xyz_b: (M, ≥3) view b = T(view a) (any order).
        T: optional :class:`simipu.views.ViewTransform`; adds a third panel with ``T⁻¹(view b)`` drawn
            over view a (they must coincide) and names θ, s and the flip in the titles.
        center: optional (3,) centre c of T, drawn as a red cross in every panel.
    All panels share one BEV window, so the scale s of T shows.

    Returns:
        the matplotlib figure.
    """
    xyz_a, xyz_b = _np(xyz_a)[:, :3], _np(xyz_b)[:, :3]
    n = 3 if T is not None else 2
    fig, axes = plt.subplots(1, n, figsize=figsize)
    vmin, vmax = np.percentile(xyz_a[:, 2], [1, 99])
    both = np.concatenate([xyz_a, xyz_b])
    lo, hi = both[:, :2].min(0) - 2, both[:, :2].max(0) + 2          # one window for all panels
    lim = dict(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    sc = bev_scatter(axes[0], xyz_a, s=s, vmin=vmin, vmax=vmax, title="view a: $p_a$", **lim)
    title_b = "view b: $p_b = T(p_a)$"
    if T is not None:
        title_b += f"\nθ = {np.degrees(T.angle):.0f}°, s = {T.scale:.2f}, flip = {T.flip_y}"
    bev_scatter(axes[1], xyz_b, s=s, vmin=vmin, vmax=vmax, title=title_b, **lim)
    if T is not None:
        back = _np(T.inverse(xyz_b.astype(np.float64)))
        bev_scatter(axes[2], xyz_a, c="0.75", s=3 * s, **lim)
        bev_scatter(axes[2], back, c="tab:red", s=s / 2, title="$T^{-1}(p_b)$ (red) over $p_a$ (grey)", **lim)
    if center is not None:
        for ax in axes:
            ax.plot(center[0], center[1], "r+", ms=14, mew=2)
    fig.colorbar(sc, ax=axes, label="z (m)", shrink=0.8)
    return fig


def plotly_two_views(xyz_a, xyz_b, max_points: int = 2500, seed: int = 0, title: str = "two views"):
    """Interactive 3D scatter of both views (plotly), at most ``max_points`` per view.

    Args:
        xyz_a, xyz_b: (N, ≥3) the two views; a random subset is drawn to keep the notebook light.
    Returns:
        a ``plotly.graph_objects.Figure`` (call ``.show()``), with equal axis scales.
    """
    import plotly.graph_objects as go

    rng = np.random.default_rng(seed)
    traces = []
    for name, xyz, colour in (("view a", _np(xyz_a), "royalblue"), ("view b", _np(xyz_b), "crimson")):
        keep = rng.choice(len(xyz), min(max_points, len(xyz)), replace=False)
        p = xyz[keep]
        traces.append(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name,
                                   marker=dict(size=1.5, color=colour, opacity=0.7)))
    fig = go.Figure(traces)
    fig.update_layout(title=title, height=500, margin=dict(l=0, r=0, t=40, b=0),
                      scene=dict(aspectmode="data", xaxis_title="x", yaxis_title="y", zaxis_title="z"))
    return fig


def coverage(xyz, idx) -> tuple[float, float]:
    """How well the samples ``xyz[idx]`` cover the cloud: distance from each point to its nearest sample.

    Args:
        xyz: (N, 3) points; idx: (S,) int indices of the samples.
    Returns:
        ``(mean, max)`` over the N points of the distance (metres) to the nearest sample; lower is
        better. FPS greedily minimises the max (it is a 2-approximation of the best possible).
    """
    from scipy.spatial import cKDTree

    xyz = _np(xyz)[:, :3]
    d, _ = cKDTree(xyz[_np(idx)]).query(xyz)
    return float(d.mean()), float(d.max())


def plot_sampling_coverage(xyz, samples: dict, s_cloud: float = 0.5, s_sample: float = 9.0,
                           highlight=None, highlight_name: str = "highlighted points", figsize=None,
                           xlim=None, ylim=None):
    """One BEV panel per sampling method (stacked in rows): the cloud in grey, the samples in red.

    Args:
        xyz: (N, 3) the cloud.
        samples: ``{name: (S,) indices}``, e.g. ``{"random": ..., "D-FPS": ..., "F-FPS": ...}``.
        highlight: optional (N,) bool, e.g. points on objects; drawn in cyan under the samples, samples
            on them drawn in blue, and the fraction of samples among them added to each title.
        highlight_name: what the highlighted points are, for the titles.
        xlim, ylim: optional BEV window (metres).
    Returns:
        the matplotlib figure. Titles give the coverage (:func:`coverage`): mean and max distance from
        a point to its nearest sample.
    """
    xyz = _np(xyz)[:, :3]
    n = len(samples)
    fig, axes = plt.subplots(n, 1, figsize=figsize or (13, 3.4 * n), squeeze=False)
    hl = None if highlight is None else _np(highlight).astype(bool)
    for ax, (name, idx) in zip(axes[:, 0], samples.items()):
        idx = _np(idx).astype(np.int64)
        bev_scatter(ax, xyz, c="0.55", s=s_cloud, xlim=xlim, ylim=ylim)
        mean, worst = coverage(xyz, idx)
        title = f"{name}: {len(idx)} samples; nearest-sample distance mean {mean:.2f} m, max {worst:.1f} m"
        on = np.zeros(len(idx), dtype=bool)
        if hl is not None:
            bev_scatter(ax, xyz[hl], c="tab:cyan", s=3 * s_cloud, xlim=xlim, ylim=ylim)
            on = hl[idx]
            title += (f"\n{on.mean():.0%} of the samples on {highlight_name} "
                      f"(blue; cyan: all {hl.mean():.0%} of the cloud)")
        bev_scatter(ax, xyz[idx[~on]], c="tab:red", s=s_sample, xlim=xlim, ylim=ylim)
        bev_scatter(ax, xyz[idx[on]], c="tab:blue", s=s_sample, xlim=xlim, ylim=ylim)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_neighbourhoods(xyz, centers, groups, radii, window: float | None = None, s: float = 2.0,
                        figsize=(7, 6)):
    """Ball-query neighbourhoods in BEV: the cloud, a few centres, their ball(s) and grouped points.

    Args:
        xyz: (N, 3) the cloud.
        centers: (S, 3) ball centres (a handful, so the picture stays readable).
        groups: list with one (S, K) int index array per radius (the output of ``ball_query``).
        radii: one radius per entry of ``groups`` (metres); drawn as dashed / dotted circles. Members
            of the first radius are filled dots, of the others rings. (In BEV a ball looks like a disc:
            a grey point inside a circle lies above/below the ball, or beyond the first K in index order.)
        window: half size (metres) of a BEV window around the centres' mean; None = whole cloud.
    Returns:
        the matplotlib figure.
    """
    xyz, centers = _np(xyz)[:, :3], _np(centers)[:, :3]
    fig, ax = plt.subplots(figsize=figsize)
    xlim = ylim = None
    if window is not None:
        mid = centers[:, :2].mean(0)
        xlim, ylim = (mid[0] - window, mid[0] + window), (mid[1] - window, mid[1] + window)
        inside = (np.abs(xyz[:, :2] - mid) < window).all(1)
        xyz_shown = xyz[inside]
    else:
        xyz_shown = xyz
    bev_scatter(ax, xyz_shown, c="0.75", s=s, xlim=xlim, ylim=ylim)
    colours = plt.cm.tab10(np.arange(len(centers)) % 10)
    styles = ["--", ":", "-.", "-"]
    for j, (idx, r) in enumerate(zip(groups, radii)):
        idx = _np(idx)
        for i, c in enumerate(centers):
            members = xyz[np.unique(idx[i])]
            if j == 0:      # first radius: filled dots; larger radii: rings around the members
                ax.scatter(members[:, 0], members[:, 1], s=2.5 * s, color=colours[i], linewidths=0, zorder=4)
            else:
                ax.scatter(members[:, 0], members[:, 1], s=(4 + 3 * j) * s, facecolors="none",
                           edgecolors=colours[i], linewidths=0.7, zorder=3)
            ax.add_patch(Circle(c[:2], r, fill=False, ls=styles[j % len(styles)], color=colours[i], lw=1.2))
    ax.scatter(centers[:, 0], centers[:, 1], marker="x", s=50, c="k", zorder=5, label="centres")
    ax.set_title("ball query: " + ", ".join(f"r = {r} m ({_np(g).shape[-1]} nbrs)"
                                           for r, g in zip(radii, groups)), fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_sa_stages(stages: list, names: list[str], s=(0.3, 1.0, 4.0, 6.0), ncols: int = 2, figsize=None):
    """BEV of the cloud entering and leaving each set abstraction layer (the points shrink, layer by layer).

    Args:
        stages: list of (N_i, 3) locations, e.g. ``[input, sa1_xyz, sa2_xyz, sa3_xyz]``.
        names: one title per stage; the number of distinct locations is added.
        s: marker size per stage (later stages have fewer points, drawn bigger).
        ncols: panels per row.
    Returns:
        the matplotlib figure.
    """
    n = len(stages)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (7 * ncols, 3.3 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    first = _np(stages[0])
    vmin, vmax = np.percentile(first[:, 2], [1, 99])
    for i, (ax, xyz, name) in enumerate(zip(axes.flat, stages, names)):
        xyz = _np(xyz)
        distinct = len(np.unique(xyz, axis=0))
        bev_scatter(ax, xyz, s=s[min(i, len(s) - 1)], vmin=vmin, vmax=vmax,
                    title=f"{name}: {len(xyz)} points ({distinct} distinct), colour: z")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
