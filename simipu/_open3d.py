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
import sys
from types import ModuleType

_LIBUSB = "libusb-1.0"


def _preload_libusb() -> str:
    """Load the libusb shipped by ``libusb-package`` globally; return its path."""
    try:
        import libusb_package
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "open3d needs libusb-1.0.so.0, which this system lacks; install it with "
            "`pip install libusb-package` (or `apt-get install libusb-1.0-0`)") from err
    path = libusb_package.get_library_path()
    if path is None:  # pragma: no cover - wheel without the bundled library
        raise ImportError("libusb-package has no bundled libusb library on this platform; "
                          "install the system package libusb-1.0-0")
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    return str(path)


def import_open3d() -> ModuleType:
    """Return the ``open3d`` module, preloading libusb from ``libusb-package`` if needed.

    Raises ImportError with an actionable message when Open3D cannot be imported.
    """
    if "open3d" in sys.modules:
        return sys.modules["open3d"]
    try:
        return importlib.import_module("open3d")
    except ImportError as err:
        if _LIBUSB not in str(err):
            raise
        # A failed import leaves half-initialised open3d modules behind; drop them first.
        for name in [n for n in sys.modules if n == "open3d" or n.startswith("open3d.")]:
            del sys.modules[name]
        _preload_libusb()
        return importlib.import_module("open3d")
