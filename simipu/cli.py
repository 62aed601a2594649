"""Command line: ``simipu <command>`` or ``python -m simipu <command>`` (commands listed in the README).

Each command parses its arguments and calls the same Python function a notebook would.
"""
from __future__ import annotations

import argparse
import sys



def _synth(a) -> None:
    from ._open3d import import_open3d
    from .synth import generate
    import_open3d()  # without the synth extra, fail with one line before any output
    mode = "add" if a.add else "overwrite" if a.overwrite else None
    root = generate(a.out, frames=a.frames, seed=a.seed, fov_only=a.fov_only, existing=mode)
    print(f"wrote {a.frames} frames to {root}")


def _pretrain(a) -> None:
    from .config import load_config
    from .train import pretrain
    overrides = list(a.overrides)
    if a.data_root:
        overrides.append(f"data.root={a.data_root}")
    if a.out:
        overrides.append(f"train.out={a.out}")
    if a.max_steps is not None:
        overrides.append(f"train.max_steps={a.max_steps}")
    cfg = load_config(a.config, overrides)
    summary = pretrain(cfg, resume=a.resume, progress=not a.no_progress,
                       allow_config_change=a.allow_config_change)
    print(f"done: {summary['steps']} steps in {summary['wall_seconds']} s; outputs in {summary['out']}")


def _export(a) -> None:
    from .export import export_checkpoint
    print(export_checkpoint(a.ckpt, a.format, a.out))


def _inspect(a) -> None:
    from .viz.matches import inspect_frame
    data = None
    if a.config or a.overrides:  # the frame is read with the config's data options
        from .config import load_config
        data = load_config(a.config or "kitti", list(a.overrides) + [f"data.root={a.data_root}"]).data
    print(inspect_frame(a.data_root, a.frame, a.out, split=a.split, ckpt=a.ckpt, data=data))


def _browse(a) -> None:
    from .config import load_config
    from .viz.training import browse_frame
    cfg = load_config(a.config, list(a.overrides) + ([f"data.root={a.data_root}"] if a.data_root else []))
    splits = a.split.split(",") if a.split else None
    print(browse_frame(cfg, a.frame, a.out, splits=splits, ckpt=a.ckpt, epoch=a.epoch))


def _depth_probe(a) -> None:
    from .depth import run_depth_probe
    result = run_depth_probe(a.data_root, init=a.init, out=a.out, overrides=a.overrides)
    print(result)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simipu", description="SimIPU: 2D image + 3D LiDAR contrastive pre-training")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic KITTI-format dataset")
    s.add_argument("--out", required=True, help="output root folder")
    s.add_argument("--frames", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fov-only", action="store_true", help="keep only LiDAR points inside the camera view")
    existing = s.add_mutually_exclusive_group()
    existing.add_argument("--add", action="store_true",
                          help="--out holds a dataset: add frames with new ids after its last one")
    existing.add_argument("--overwrite", action="store_true",
                          help="--out holds a dataset: delete its synthetic frames and splits, write new ones")
    s.set_defaults(func=_synth)

    s = sub.add_parser("pretrain", help="SimIPU pre-training (one process, or one of torchrun's)")
    s.add_argument("--config", default="tiny", help="tiny | kitti | waymo | PATH.yaml")
    s.add_argument("--data-root", help="KITTI-format root (overrides data.root)")
    s.add_argument("--out", help="run folder (overrides train.out)")
    s.add_argument("--max-steps", type=int, help="stop after this many steps (overrides train.max_steps)")
    s.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    s.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: continue although settings differ from the checkpoint's (new ones apply)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. model.matching=greedy")
    s.set_defaults(func=_pretrain)

    s = sub.add_parser("export", help="export the pre-trained image backbone (and a model card beside it)")
    s.add_argument("ckpt")
    s.add_argument("--format", default="torchvision",  # checked by export_checkpoint (no torch import here)
                   help="torchvision (bare keys) | mmdet (backbone.*) | mmdet3d-fusion (img_backbone.*, MVX-Net)")
    s.add_argument("--out", required=True, help="FILE.pth, or FILE.safetensors for the torchvision format")
    s.set_defaults(func=_export)

    s = sub.add_parser("inspect", help="point-to-pixel matches of one frame as PNG or HTML")
    s.add_argument("--data-root", required=True)
    s.add_argument("--frame", required=True, help="frame id, e.g. 000134")
    s.add_argument("--split", default="training", help="training | testing")
    s.add_argument("--ckpt", help="optional checkpoint: colour matches by learned feature similarity")
    s.add_argument("--out", required=True, help="FILE.png (matplotlib) or FILE.html (plotly)")
    s.add_argument("--config", help="tiny | kitti | waymo | PATH.yaml: read the frame with its data options "
                                    "(data.velodyne_dir, data.camera, data.point_dims); default KITTI's")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.camera=0 data.point_dims=6")
    s.set_defaults(func=_inspect)

    s = sub.add_parser("browse", help="one sample as pre-training sees it: both augmented views, the network "
                                      "image, point-to-pixel and matched pairs (PNG)")
    s.add_argument("--config", default="tiny", help="tiny | kitti | waymo | PATH.yaml (its data pipeline)")
    s.add_argument("--data-root", help="KITTI-format root (overrides data.root)")
    s.add_argument("--frame", help="frame id (default: the first frame of the splits)")
    s.add_argument("--split", help="comma-separated splits to look in (default: the config's data.splits)")
    s.add_argument("--ckpt", help="SimIPU checkpoint whose model downsamples and matches (default: untrained)")
    s.add_argument("--epoch", type=int, default=0, help="whose random augmentation to draw (default 0)")
    s.add_argument("--out", required=True, help="FILE.png")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.img_flip_prob=1")
    s.set_defaults(func=_browse)

    s = sub.add_parser("depth-probe", help="downstream monocular depth: fine-tune and evaluate")
    s.add_argument("--data-root", required=True)
    s.add_argument("--init", default="scratch", help="scratch | SimIPU checkpoint | torchvision ResNet state dict")
    s.add_argument("--out", default="runs/depth_probe")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=_depth_probe)
    sub.add_parser("tensorboard", help="TensorBoard with Open3D's libusb loaded; every argument passes through "
                                       "(simipu tensorboard --logdir runs)", add_help=False)
    return p


def _one_line(e: BaseException) -> str:
    """The message on one line. An error re-raised from a DataLoader worker carries the worker's traceback:
    its last line is the original error."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "worker" in lines[0]:
        return lines[-1]
    return " ".join(lines) or type(e).__name__


def main(argv=None) -> int:
    """Run a command. Exit codes: 0 done; 2 a user, data, checkpoint or output error (one line on stderr);
    1 a diverged run; 128 + N stopped by signal N (SIGINT 130, SIGTERM 143) after saving a checkpoint."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["tensorboard"]:              # TensorBoard parses its own flags
        from .board import run_tensorboard
        return run_tensorboard(argv[1:])
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .extras import MissingExtraError
    try:
        args.func(args)
    except (ValueError, CheckpointError, OSError, MissingExtraError) as e:  # ConfigError, DataError, OutputError are ValueErrors
        print(f"simipu {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if type(e).__name__ != "TrainingDiverged":
            raise
        print(f"simipu {args.command}: stopped: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # TrainingInterrupted (SIGINT/SIGTERM, checkpoint saved) or Ctrl-C
        print(f"simipu {args.command}: interrupted" + (f": {e}" if str(e) else ""), file=sys.stderr)
        return 128 + getattr(e, "signum", 2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
