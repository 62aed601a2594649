"""Import Open3D, the ray caster of the synthetic scene generator (`simipu.synth`).

Open3D's Linux wheel links against ``libusb-1.0.so.0`` (for its RealSense support), a system
library that fresh machines and containers often lack. The PyPI package ``libusb-package``
ships that library; when the plain import fails for this reason we load it into the process
with ``RTLD_GLOBAL`` (so the dynamic linker finds its symbols when Open3D is loaded) and try
again. Everything in simipu imports Open3D through :func:`import_open3d`, never directly.
"""
from __future__ import annotations

import ctypes
import importlib
import os
import sys
from types import ModuleType

from .extras import missing_extra

_LIBUSB = "libusb-1.0"


def _preload_libusb() -> str:
    """Load the libusb shipped by ``libusb-package`` globally; return its path."""
    try:
        import libusb_package
    except ImportError:  # pragma: no cover - depends on the environment
        raise missing_extra("libusb_package", "Open3D on this system (it lacks libusb-1.0.so.0)") from None
    path = libusb_package.get_library_path()
    if path is None:  # pragma: no cover - wheel without the bundled library
        raise ImportError("libusb-package has no bundled libusb library on this platform; "
                          "install the system package libusb-1.0-0")
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    return str(path)


def import_open3d() -> ModuleType:
    """Return the ``open3d`` module, preloading libusb from ``libusb-package`` if needed.

    Raises :class:`simipu.extras.MissingExtraError` naming the ``synth`` extra when Open3D is not
    installed, ImportError with an actionable message when it cannot be imported.
    """
    if sys.modules.get("open3d") is not None:
        return sys.modules["open3d"]
    # In a Jupyter kernel Open3D would start its WebRTC visualiser and print banners into the cell; simipu
    # never uses it (figures are matplotlib/plotly, .ply files are written to disk).
    os.environ.setdefault("OPEN3D_DISABLE_WEB_VISUALIZER", "true")
    try:
        return importlib.import_module("open3d")
    except ModuleNotFoundError as err:
        if err.name != "open3d":
            raise
        raise missing_extra("open3d", "the synthetic scene generator (simipu synth)") from None
    except ImportError as err:
        if _LIBUSB not in str(err):
            raise
        # A failed import leaves half-initialised open3d modules behind; drop them first.
        for name in [n for n in sys.modules if n == "open3d" or n.startswith("open3d.")]:
            del sys.modules[name]
        _preload_libusb()
        return importlib.import_module("open3d")
