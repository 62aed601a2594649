"""How far the released SimIPU code samples image features from where points project.

Run:  python benchmarks/release_pad_shape.py [--batches 5000] [--batch-size 4]

The release's ``point_sample`` (``project_cl/decorator/inter_intro_decorator_moco_better.py``) maps a pixel u of
sample i to the grid coordinate ``u / w_i * 2 - 1``, with ``w_i`` that sample's own padded width, but samples the
feature map of the whole batch, which is padded to the batch's largest image. Every sample draws its own resize
scale (``Resize(img_scale=[(640, 192), (2400, 720)], multiscale_mode='range', keep_ratio=True)``), so a smaller
sample is read at about ``W_batch / w_i`` times its true position. This script draws the released scales for a
KITTI-sized image with simipu's own resize rule and prints how often a sample is read at the right place and how
far off the image centre lands (in stride-32 feature cells). simipu samples each point where it projects.
"""
from __future__ import annotations

import argparse

import numpy as np

from simipu.config import load_config
from simipu.views import rescale_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = load_config("kitti").data
    (w0, h0), (w1, h1) = cfg.img_scale_range
    W, H, stride, div = 1242, 375, 32, cfg.img_size_divisor
    rng = np.random.default_rng(args.seed)
    right, errors = 0, []
    for _ in range(args.batches):
        sizes = []
        for _ in range(args.batch_size):  # mmdetection's "range" mode: long and short edge drawn separately
            scale = (int(rng.integers(max(w0, h0), max(w1, h1) + 1)), int(rng.integers(min(w0, h0), min(w1, h1) + 1)))
            w, h = rescale_size(W, H, scale)
            sizes.append((w, h, -(-w // div) * div, -(-h // div) * div))
        w_batch, h_batch = max(s[2] for s in sizes), max(s[3] for s in sizes)
        for w, h, w_pad, h_pad in sizes:
            right += (w_pad, h_pad) == (w_batch, h_batch)
            u, v = w / 2, h / 2  # the image centre
            released = (u / w_pad * (w_batch / stride - 1), v / h_pad * (h_batch / stride - 1))  # align_corners=True
            true = (u / stride - 0.5, v / stride - 0.5)  # the cell the pixel lies in
            errors.append(np.hypot(released[0] - true[0], released[1] - true[1]))
    errors = np.array(errors)
    print(f"{args.batches} batches of {args.batch_size}, released resize range {cfg.img_scale_range}, seed {args.seed}")
    print(f"samples read on their own padded size (right place up to the grid convention): "
          f"{right / errors.size:.1%}")
    print(f"image-centre misplacement in stride-{stride} cells: median {np.median(errors):.1f}, "
          f"90th percentile {np.percentile(errors, 90):.1f}, max {errors.max():.1f}")


if __name__ == "__main__":
    main()
