"""`simipu tensorboard` serves on a machine without the system libusb, where a plain `tensorboard` stops."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEM_LIBUSB = [p for p in (Path("/lib/x86_64-linux-gnu/libusb-1.0.so.0"), Path("/usr/lib/x86_64-linux-gnu/libusb-1.0.so.0"),
                             Path("/lib/aarch64-linux-gnu/libusb-1.0.so.0")) if p.exists()]


def _without_libusb(command: str) -> list[str]:
    """Run ``command`` in a private mount namespace where the system libusb is an empty file (a fresh machine
    has none at all; either way the dynamic linker cannot use it)."""
    mounts = " && ".join(f"mount --bind /dev/null {p}" for p in SYSTEM_LIBUSB) or "true"
    return ["unshare", "-m", "bash", "-c", f"{mounts} && exec {command}"]


def _can_hide_libusb() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


needs_namespace = pytest.mark.skipif(not _can_hide_libusb(), reason="needs root and unshare to hide the system libusb")


@needs_namespace
@pytest.mark.slow
def test_plain_tensorboard_stops_on_open3d_plugin_without_libusb(tmp_path):
    tensorboard = Path(sys.executable).with_name("tensorboard")
    r = subprocess.run(_without_libusb(f"{tensorboard} --logdir {tmp_path} --host 127.0.0.1 --port 0"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "libusb-1.0" in r.stderr + r.stdout


@needs_namespace
@pytest.mark.slow
def test_simipu_tensorboard_serves_with_the_open3d_plugin_without_system_libusb(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(_without_libusb(f"{sys.executable} -m simipu tensorboard --logdir {tmp_path} "
                                            "--host 127.0.0.1 --port 0"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url, lines, t0 = None, [], time.time()
        while url is None and time.time() - t0 < 120:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            url = m.group(1) if m else None
        assert url, "TensorBoard did not start:\n" + "".join(lines)
        plugins = json.loads(urllib.request.urlopen(url + "data/plugins_listing", timeout=30).read())
        assert "Open3D" in plugins and "scalars" in plugins
    finally:
        proc.terminate()
        proc.wait(timeout=30)
