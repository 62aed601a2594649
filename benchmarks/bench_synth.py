"""Seconds per synthetic KITTI frame (full size 1242x375, 64 beams, 360-degree sweep, all files written).

    python benchmarks/bench_synth.py [--frames 5] [--fov-only]

Prints the machine (processor, cores), then the time of each stage for every frame and the mean
seconds per frame. The first frame also pays for importing Open3D; it is reported but left out of
the mean when more than one frame runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fov-only", action="store_true")
    args = parser.parse_args()

    from simipu.synth.writer import FOLDERS, make_frame, write_frame

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in FOLDERS:
            (root / "training" / folder).mkdir(parents=True)
        for i in range(args.frames):
            start = time.perf_counter()
            frame = make_frame(args.seed, i, fov_only=args.fov_only)
            simulated = time.perf_counter()
            write_frame(root, f"{i:06d}", frame)
            end = time.perf_counter()
            totals.append(end - start)
            print(f"frame {i}: simulate {simulated - start:.2f} s, write {end - simulated:.2f} s, "
                  f"total {end - start:.2f} s ({len(frame['points'])} points, {len(frame['labels'])} labels)")
    steady = totals[1:] if len(totals) > 1 else totals
    print(f"seconds per frame: {np.mean(steady):.2f} (mean of {len(steady)}, "
          f"{'fov-only' if args.fov_only else '360-degree'} LiDAR, image 1242x375)")


if __name__ == "__main__":
    main()
