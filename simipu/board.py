"""``simipu tensorboard ARGS...``: TensorBoard, after loading what Open3D's plugin needs.

TensorBoard imports every plugin registered under the ``tensorboard_plugins`` entry point. Open3D registers
one (``open3d.visualization.tensorboard_plugin``), so a plain ``tensorboard --logdir ...`` imports Open3D, and
Open3D's Linux wheel links ``libusb-1.0.so.0``: on a machine without that system library TensorBoard stops
before it serves anything. This command imports Open3D through :func:`simipu._open3d.import_open3d` (which
loads the copy of libusb shipped by the ``libusb-package`` dependency when the system has none), then runs
TensorBoard's own ``main`` in the same process with the same arguments.
"""
from __future__ import annotations

import sys


def run_tensorboard(argv: list[str]) -> int:
    """Run TensorBoard with ``argv`` (e.g. ``["--logdir", "runs"]``); returns its exit code."""
    from ._open3d import import_open3d

    try:
        import_open3d()
    except ImportError as e:  # TensorBoard still works without Open3D's plugin: say why it is missing
        print(f"simipu tensorboard: Open3D cannot be imported ({e}); TensorBoard will skip its plugin",
              file=sys.stderr)
    from tensorboard import main as tensorboard_main

    sys.argv = ["tensorboard", *argv]
    try:
        tensorboard_main.run_main()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


__all__ = ["run_tensorboard"]
