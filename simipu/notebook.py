"""What every notebook's first cell needs: where the data is, where runs go, figures that render anywhere.

``setup()`` is called once at the top of each notebook (and of each student copy, wherever it was
written):

- it finds ``data_samples/`` without assuming the notebook sits in ``notebooks/`` (see :func:`find_data_samples`);
- it picks a folder for run outputs (``<repository>/runs/notebooks``, or ``./runs/notebooks`` elsewhere);
- it makes plotly figures render offline in JupyterLab, classic Notebook, VS Code and HTML exports, with
  plotly.js embedded once per notebook (:func:`configure_plotly`);
- it keeps Open3D from starting its browser visualiser (and printing WebRTC banners) in a kernel.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "SIMIPU_DATA_SAMPLES"       # a data_samples/ folder anywhere on disk
KITTI_ENV = "SIMIPU_KITTI_ROOT"        # a real KITTI root, for the notebooks that can read one
_MARKER = Path("training") / "velodyne"


def _is_data_root(path: Path) -> bool:
    return (path / _MARKER).is_dir()


def find_data_samples(start: Path | None = None) -> Path:
    """The shipped synthetic frames, looked for in this order.

    1. ``$SIMIPU_DATA_SAMPLES`` (an error if it is set but holds no ``training/velodyne/``);
    2. ``data_samples/`` in ``start`` (default: the working directory) or any folder above it, so a student
       copy written to ``student_notebooks/`` or ``notebooks/week1/`` still finds the repository's data;
    3. ``data_samples/`` beside the installed ``simipu`` package (a source checkout or editable install).

    Raises FileNotFoundError naming every place it looked.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        if not _is_data_root(Path(env)):
            raise FileNotFoundError(f"${DATA_ENV}={env} holds no {_MARKER}/: point it at the data_samples/ "
                                    "folder of the simipu repository")
        return Path(env).resolve()
    start = Path.cwd() if start is None else Path(start)
    tried = []
    for folder in (start.resolve(), *start.resolve().parents):
        tried.append(folder / "data_samples")
        if _is_data_root(tried[-1]):
            return tried[-1]
    beside_package = Path(__file__).resolve().parents[1] / "data_samples"
    tried.append(beside_package)
    if _is_data_root(beside_package):
        return beside_package
    raise FileNotFoundError(
        f"data_samples/ not found: looked in {tried[0]} and every folder above it, and at {beside_package}. "
        f"Run the notebook inside a clone of the simipu repository, or set {DATA_ENV}=/path/to/data_samples")


@dataclass(frozen=True)
class NotebookPaths:
    """``data``: the synthetic frames; ``kitti``: ``$SIMIPU_KITTI_ROOT`` or ``data``; ``runs``: run outputs."""
    data: Path
    kitti: Path
    runs: Path


def configure_plotly() -> str:
    """Render plotly figures offline everywhere; returns the renderer string.

    ``plotly_mimetype`` is what JupyterLab and VS Code draw; ``notebook`` adds an HTML rendering for classic
    Notebook and for ``nbconvert --to html``, with plotly.js embedded in the page by the first figure only (no
    CDN, so it works offline); ``png`` adds a static image for where no JavaScript runs (GitHub's preview, PDF
    export, an untrusted notebook), when kaleido and a Chrome/Chromium it can drive are installed (the
    ``notebooks`` extra brings kaleido). Outside a kernel (a script, a terminal) figures open in the browser.
    """
    import plotly.io as pio

    renderer = "plotly_mimetype+notebook" + ("+png" if static_images_available() else "") if _in_kernel() else "browser"
    pio.renderers.default = renderer
    return renderer


def static_images_available() -> bool:
    """Whether plotly can write PNGs: kaleido imports and finds a Chrome or Chromium (on PATH, its usual
    places, ``$BROWSER_PATH`` or kaleido's own download)."""
    try:
        import kaleido  # noqa: F401
        from choreographer.browsers.chromium import Chromium
        return Chromium.find_browser(skip_local=False) is not None
    except Exception:  # not installed, or a choreographer without this API: no static images, nothing else lost
        return False


def _in_kernel() -> bool:
    ip = sys.modules.get("IPython")
    shell = ip.get_ipython() if ip is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def has_display() -> bool:
    """Whether a native window can open: always on macOS and Windows, on Linux only with X11 or Wayland."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def setup(plotly: bool = True) -> NotebookPaths:
    """Find the data, choose the runs folder, configure figures and Open3D; print where things are."""
    os.environ.setdefault("OPEN3D_DISABLE_WEB_VISUALIZER", "true")   # no WebRTC server or banners in a kernel
    data = find_data_samples()
    kitti = Path(os.environ.get(KITTI_ENV) or data)
    repo = data.parent if (data.parent / "simipu").is_dir() and os.access(data.parent, os.W_OK) else Path.cwd()
    runs = repo / "runs" / "notebooks"
    if plotly:
        configure_plotly()
    print(f"data: {kitti}" + ("" if kitti == data else f" (synthetic frames: {data})") + f"\nruns: {runs}")
    return NotebookPaths(data=data, kitti=kitti, runs=runs)


__all__ = ["find_data_samples", "setup", "configure_plotly", "static_images_available", "has_display",
           "NotebookPaths"]
