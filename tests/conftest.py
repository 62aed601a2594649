"""Shared fixtures: the real KITTI frames beside the repo, and small KITTI-format roots under tmp_path."""
from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

KITTI_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "kitti_real"

# KITTI frame 000002 (testing) calibration, the numbers of its calib file.
KITTI_P2 = [[7.215377e+02, 0.0, 6.095593e+02, 4.485728e+01],
            [0.0, 7.215377e+02, 1.728540e+02, 2.163791e-01],
            [0.0, 0.0, 1.0, 2.745884e-03]]


@pytest.fixture(scope="session")
def kitti_real() -> Path:
    """``../shared/kitti_real``: training/000134 and testing/000002 (FOV-cropped clouds); skip if absent."""
    if not (KITTI_REAL / "training").is_dir():
        pytest.skip(f"real KITTI frames not found at {KITTI_REAL}")
    return KITTI_REAL


@pytest.fixture
def kitti_real_root(kitti_real, tmp_path) -> Path:
    """A KITTI root under tmp_path linking the real frames, with ImageSets train.txt / test.txt."""
    root = tmp_path / "kitti"
    for split_dir in ("training", "testing"):
        for sub in (kitti_real / split_dir).iterdir():
            (root / split_dir / sub.name).mkdir(parents=True)
            for f in sub.iterdir():
                os.symlink(f, root / split_dir / sub.name / f.name)
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "train.txt").write_text("000134\n")
    (root / "ImageSets" / "test.txt").write_text("000002\n")
    return root


@pytest.fixture
def make_frame(tmp_path):
    """Factory writing a small synthetic KITTI-format frame: ``make_frame(id, split_dir="training", ...)``.

    Points are random in front of the camera; the calibration is KITTI-like (written with
    ``simipu.data.write_calib``); the image is 1242×375 noise. Returns the root.
    """
    from simipu.data import write_calib

    def make(frame_id="000000", split_dir="training", n=500, image_wh=(1242, 375), seed=0, root=None):
        root = Path(root or tmp_path / "root")
        rng = np.random.default_rng(seed)
        d = root / split_dir
        for sub in ("velodyne", "image_2", "calib"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        xyz = np.column_stack([rng.uniform(5, 60, n), rng.uniform(-10, 10, n), rng.uniform(-2, 0.5, n)])
        pts = np.column_stack([xyz, rng.uniform(0, 1, n)]).astype(np.float32)
        pts.tofile(d / "velodyne" / f"{frame_id}.bin")
        Image.fromarray(rng.integers(0, 256, (image_wh[1], image_wh[0], 3), dtype=np.uint8)).save(
            d / "image_2" / f"{frame_id}.png")
        Tr = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
        P = np.array(KITTI_P2)
        write_calib(d / "calib" / f"{frame_id}.txt",
                    dict(P0=P, P1=P, P2=P, P3=P, R0_rect=np.eye(3), Tr_velo_to_cam=Tr))
        return root

    return make


DISK_MB = 8  # a small disk: holds a run's config and logs, not a checkpoint (tiny: ~100 MB) nor an export


def mount_tmpfs(where: Path, options: str) -> bool:
    """Mount a tmpfs at ``where`` (needs root); False when this process may not."""
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True).returncode == 0


class SmallDisk:
    """A folder where writes beyond ``DISK_MB`` MB fail: a real tmpfs of that size, or (``kind ==
    "file_size_limit"``) any folder with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so that the write
    fails with EFBIG), set in a child by ``preexec`` or in this process inside ``applied()``."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind

    def preexec(self) -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (DISK_MB << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    @property
    def child_preexec(self):
        return self.preexec if self.kind == "file_size_limit" else None

    def applied(self):
        """Context: the limit in this process (nothing to do for a tmpfs); restored afterwards."""
        @contextlib.contextmanager
        def limit():
            if self.kind != "file_size_limit":
                yield
                return
            old_limit, old_handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.getsignal(signal.SIGXFSZ)
            self.preexec()
            try:
                yield
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
                signal.signal(signal.SIGXFSZ, old_handler)
        return limit()


@pytest.fixture(params=["tmpfs", "file_size_limit"])
def small_disk(request, tmp_path) -> SmallDisk:
    """A full-disk fault, each way in turn: a real 8 MB tmpfs (skipped when this process may not mount
    one), and a file-size limit of 8 MB on an ordinary folder."""
    where = tmp_path / "small_disk"
    if request.param == "tmpfs":
        if not mount_tmpfs(where, f"size={DISK_MB}m"):
            pytest.skip("cannot mount a tmpfs here (not root?); the file-size-limit variant runs instead")
        yield SmallDisk(where, "tmpfs")
        subprocess.run(["umount", "-l", str(where)], check=False)
        return
    where.mkdir()
    yield SmallDisk(where, "file_size_limit")


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nothing may be written to: a read-only tmpfs mount when possible (root ignores permission
    bits), else, for a user who is not root, a folder without write permission."""
    where = tmp_path / "read_only"
    if mount_tmpfs(where, "ro,size=1m"):
        yield where
        subprocess.run(["umount", "-l", str(where)], check=False)
    elif os.geteuid() != 0:
        where.chmod(0o555)
        yield where
        where.chmod(0o755)
    else:
        pytest.skip("root without permission to mount: no read-only file system to test on")


# --- Processes a test leaves behind ---------------------------------------------------------------------------
# A child that outlives its test (a server, a browser helper, a training run) keeps the suite's output pipe open,
# so a CI that reads it to the end waits forever after the last test has passed. On Linux this process becomes a
# child subreaper: such orphans are re-parented here instead of to init. After every test (and a garbage
# collection) its new children must be gone within a grace period; any that are not are killed and the test
# fails with their command lines, and whatever the notebooks' kernels left is killed when the session ends.
_PR_SET_CHILD_SUBREAPER = 36
_HAS_PROC = Path("/proc/self/task").is_dir()   # Linux: children are listed there
LEFT_BEHIND_GRACE_S = 15.0


def _children() -> dict[int, str]:
    """Live (not zombie) children of this process, {pid: command line}; reaps the zombies among them."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (task / "children").read_text().split())
    alive = {}
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        else:
            alive[pid] = cmd
    return alive


def _kill(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def pytest_configure(config):
    if _HAS_PROC:
        import ctypes
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def pytest_sessionfinish(session, exitstatus):
    if _HAS_PROC:
        left = _children()
        if left:
            print("\n[conftest] killing processes left running at the end of the session:\n  "
                  + "\n  ".join(f"{pid}: {cmd[:200]}" for pid, cmd in left.items()), flush=True)
            _kill(left)


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    if not _HAS_PROC:
        yield
        return
    before = set(_children())
    yield
    gc.collect()   # what only an uncollected object kept alive (a DataLoader iterator in a traceback) ends here
    deadline = time.monotonic() + LEFT_BEHIND_GRACE_S
    while True:
        left = {pid: cmd for pid, cmd in _children().items() if pid not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if left:
        _kill(left)
        pytest.fail("the test left processes running (killed now):\n  "
                    + "\n  ".join(f"{pid}: {cmd[:300]}" for pid, cmd in left.items()), pytrace=False)
