"""Command line: ``simipu <command>`` or ``python -m simipu <command>`` (commands listed in the README).

Each command parses its arguments and calls the same Python function a notebook would.
"""
from __future__ import annotations

import argparse
import sys



def _synth(a) -> None:
    from .synth import generate
    generate(a.out, frames=a.frames, seed=a.seed, fov_only=a.fov_only)


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
    summary = pretrain(cfg, resume=a.resume, progress=not a.no_progress)
    print(f"done: {summary['steps']} steps in {summary['wall_seconds']} s; outputs in {summary['out']}")


def _export(a) -> None:
    from .export import export_checkpoint
    print(export_checkpoint(a.ckpt, a.format, a.out))


def _inspect(a) -> None:
    from .viz.matches import inspect_frame
    print(inspect_frame(a.data_root, a.frame, a.out, split=a.split, ckpt=a.ckpt))


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
    s.set_defaults(func=_synth)

    s = sub.add_parser("pretrain", help="SimIPU pre-training (one process, or one of torchrun's)")
    s.add_argument("--config", default="tiny", help="tiny | kitti | waymo | PATH.yaml")
    s.add_argument("--data-root", help="KITTI-format root (overrides data.root)")
    s.add_argument("--out", help="run folder (overrides train.out)")
    s.add_argument("--max-steps", type=int, help="stop after this many steps (overrides train.max_steps)")
    s.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. model.matching=greedy")
    s.set_defaults(func=_pretrain)

    s = sub.add_parser("export", help="export the pre-trained image backbone")
    s.add_argument("ckpt")
    s.add_argument("--format", choices=("torchvision", "mmdet"), default="torchvision")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_export)

    s = sub.add_parser("inspect", help="point-to-pixel matches of one frame as PNG or HTML")
    s.add_argument("--data-root", required=True)
    s.add_argument("--frame", required=True, help="frame id, e.g. 000134")
    s.add_argument("--split", default="training", help="training | testing")
    s.add_argument("--ckpt", help="optional checkpoint: colour matches by learned feature similarity")
    s.add_argument("--out", required=True, help="FILE.png (matplotlib) or FILE.html (plotly)")
    s.set_defaults(func=_inspect)

    s = sub.add_parser("depth-probe", help="downstream monocular depth: fine-tune and evaluate")
    s.add_argument("--data-root", required=True)
    s.add_argument("--init", default="scratch", help="scratch | SimIPU checkpoint | torchvision ResNet state dict")
    s.add_argument("--out", default="runs/depth_probe")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=_depth_probe)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    try:
        args.func(args)
    except (ValueError, CheckpointError, FileNotFoundError) as e:  # ConfigError, DataError are ValueErrors
        print(f"simipu {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if type(e).__name__ != "TrainingDiverged":
            raise
        print(f"simipu {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"simipu {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
