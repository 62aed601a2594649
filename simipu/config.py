"""Typed configuration: dataclasses with the paper's values as defaults, YAML presets that only override.

A preset is a short YAML file in ``configs/`` (``tiny``, ``kitti``, ``waymo``) or any path to one.
Overrides are ``section.key=value`` strings (command line) or keyword arguments (Python)::

    cfg = load_config("tiny", ["train.max_steps=20", "model.matching=greedy"])
    cfg = load_config("kitti", data__root="/data/kitti")          # keyword form: "__" for "."

An unknown or mistyped key, a value of the wrong type or an impossible value raises
:class:`simipu.errors.ConfigError` naming the key.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # shipped in the wheel; ./configs links here
PRESETS = ("tiny", "kitti", "waymo")
IMG_NORMS = ("caffe_bgr", "imagenet_rgb")  # see simipu.pipeline.normalize_image
IMAGE_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")  # torchvision.models names
_EXP_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
# Bounds on what a config may be, checked before anything is expanded (a preset is ~2 KB, ~300 values):
MAX_CONFIG_BYTES = 1 << 20        # size of a YAML file
MAX_CONFIG_VALUES = 100_000       # values of a tree, each repeat of a YAML alias or shared reference counted
MAX_CONFIG_DEPTH = 16             # nesting of mappings and lists


@dataclass
class DataConfig:
    """Inputs and augmentation; defaults = the released KITTI pipeline (``simipu_kitti.py``)."""
    root: str = "data_samples"
    splits: tuple[str, ...] = ("train", "test")  # paper §4.1: pre-train on train + test, leave val out;
                                                 # "all" = every frame of training/ and testing/
    velodyne_dir: str = "auto"                   # auto: velodyne_reduced/ when present, else velodyne/
    camera: int = 2                              # image_2 / P2 on KITTI; Waymo-in-KITTI-format front = 0
    point_dims: int = 4                          # floats per point in .bin (Waymo converted: 6)
    max_points: int = 5_000_000                  # larger .bin files are refused unread (memory)
    num_points: int = 16384                      # IndoorPointSample(num_points=16384)
    point_range: tuple[float, ...] = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)  # x0 y0 z0 x1 y1 z1
    fov_only: bool = True                        # camera-view cloud: velodyne_reduced, else crop to the FOV
    rot_range: tuple[float, float] = (-math.pi / 2, math.pi / 2)  # GlobalRotScaleTrans.rot_range
    scale_range: tuple[float, float] = (0.75, 1.25)               # .scale_ratio_range
    translation_std: tuple[float, float, float] = (0.0, 0.0, 0.0)  # .translation_std
    center: tuple[float, float, float] = (35.2, 0.0, -1.0)        # .points_center: the rotation centre
    scale_about_center: bool = False             # released: the scale acts about the origin
    flip_prob: float = 0.5                       # bird's-eye-view flip y -> -y (when not sync_flip)
    sync_flip: bool = True                       # RandomFlip3D(sync_2d=True): view b flips with the image
    img_scale_range: tuple[tuple[int, int], tuple[int, int]] = ((640, 192), (2400, 720))  # (w, h)
    img_flip_prob: float = 0.5                   # RandomFlip3D(flip_ratio_bev_horizontal=0.5)
    img_size_divisor: int = 32
    img_norm: str = "caffe_bgr"                  # released img_norm_cfg: BGR, mean (103.53, 116.28, 123.675), std 1
    num_workers: int = 4
    seed: int = 0


@dataclass
class PointEncoderConfig:
    """3DSSD-style multi-scale set abstraction as released for SimIPU (``PointNet2SAMSG`` in
    ``project_cl/configs/simipu/simipu_kitti.py``; "FS" layers output 2·npoint centres)."""
    in_channels: int = 4
    num_points: tuple[Any, ...] = (4096, 1024, (512, 512))
    radii: tuple[tuple[float, ...], ...] = ((0.2, 0.4, 0.8), (0.4, 0.8, 1.6), (1.6, 3.2, 4.8))
    num_samples: tuple[tuple[int, ...], ...] = ((32, 32, 64), (32, 32, 64), (16, 16, 16))
    sa_channels: tuple[Any, ...] = (
        ((32, 32, 64), (32, 32, 64), (64, 64, 128)),
        ((64, 64, 128), (64, 64, 128), (128, 128, 256)),
        ((128, 128, 256), (128, 128, 256), (256, 256, 512)),
    )
    aggregation_channels: tuple[int, ...] = (128, 256, 1024)
    fps_mods: tuple[tuple[str, ...], ...] = (("D-FPS",), ("FS",), ("F-FPS", "D-FPS"))
    fps_sample_range_lists: tuple[tuple[int, ...], ...] = ((-1,), (-1,), (512, -1))
    dilated_group: tuple[bool, ...] = (True, True, True)  # PointNet2SAMSG default: shells for scales > 0
    use_xyz: bool = False        # sa_cfg use_xyz=False as released; True = PointNet++'s default
    bn_eps: float = 1e-3         # norm_cfg=dict(type='BN2d', eps=1e-3, momentum=0.1)
    bn_momentum: float = 0.1


@dataclass
class ModelConfig:
    image_backbone: str = "resnet50"             # img_backbone ResNet depth=50; resnet18/34 also work
    point: PointEncoderConfig = field(default_factory=PointEncoderConfig)
    proj_dim: int = 128                          # pts_intro_out_dim / img_inter_out_dim = 128
    point_proj_hidden: int = 1024
    image_proj_hidden: int = 2048
    temperature: float = 0.07                    # τ of Eq. 4 and Eq. 7
    lambda_intra: float = 1.0                    # λ, Eq. 8
    mu_inter: float = 1.0                        # μ, Eq. 8
    matching: str = "hungarian"                  # or "greedy" (paper Table 5)
    sync_bn: bool = True                         # SyncBN in the image backbone under DDP
    image_bn_eps: float = 1e-3                   # norm_cfg=dict(type='SyncBN', eps=1e-3, momentum=0.01)
    image_bn_momentum: float = 0.01


@dataclass
class OptimConfig:
    """Hybrid optimisation of the paper's appendix D."""
    image_lr: float = 0.03                       # SGD, image branch
    image_momentum: float = 0.9
    image_weight_decay: float = 1e-4
    point_lr: float = 1e-3                       # AdamW, point branch
    point_betas: tuple[float, float] = (0.95, 0.99)
    point_weight_decay: float = 0.01
    head_lr: float = 0.03                        # SGD, projection heads (as the image branch)
    head_momentum: float = 0.9
    head_weight_decay: float = 1e-4
    lr_decay: float = 0.99                       # exponential, per epoch
    grad_clip: float = 0.0                       # 0 = off


@dataclass
class TrainConfig:
    epochs: int = 100                            # KITTI 100, Waymo 10
    batch_size: int = 4                          # per GPU (process)
    max_steps: int = 0                           # 0 = run all epochs
    seed: int = 0
    out: str = "runs/simipu"
    device: str = "auto"                         # auto | cpu | cuda | cuda:1 ...
    precision: str = "auto"                      # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    dist_backend: str = "auto"                   # torchrun: auto (NCCL on CUDA, gloo on CPU) | nccl | gloo
                                                 # (gloo lets several processes share one GPU)
    ckpt_every: int = 0                          # steps between checkpoints; 0 = once per epoch
    keep_last: int = 3
    log_every: int = 10
    image_every: int = 50                        # steps between TensorBoard figures of a held-out frame; 0 = off
    logger: str = "tensorboard"                  # or "wandb": TensorBoard and Weights & Biases (extra simipu[wandb])
    threads: int = 0                             # torch CPU threads; 0 = auto (train.auto_threads)


@dataclass
class Config:
    name: str = "kitti"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(x):
    """Tuples to lists recursively, so the dict is YAML/JSON friendly."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# annotation -> (accepted Python types, how to say it); bool is never taken for a number
_SCALARS = {bool: ((bool,), "true or false"), int: ((int,), "an integer"),
            float: ((int, float), "a number"), str: ((str,), "a string")}


def _coerce(key: str, value, typ):
    """Check ``value`` against the annotation ``typ``: scalars strictly, tuples element by element."""
    origin = typing.get_origin(typ)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return _build(typ, value, key + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        args = typing.get_args(typ)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif args and len(args) != len(value):
            raise ConfigError(f"config key '{key}' must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, t) for i, (v, t) in enumerate(zip(value, args)))
    if typ is Any:  # nested lists of numbers (num_points, sa_channels)
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(f"{key}[{i}]", v, Any) for i, v in enumerate(value))
        return _coerce(key, value, int)
    if typ in _SCALARS:
        accepted, words = _SCALARS[typ]
        if not isinstance(value, accepted) or (isinstance(value, bool) and typ is not bool):
            raise ConfigError(f"config key '{key}' must be {words}, got {value!r}")
        return float(value) if typ is float else value
    return value


def _build(cls, values: dict, prefix: str = ""):
    """Instantiate dataclass ``cls`` from a (partial) nested dict, defaults elsewhere."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names, key=str)
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' (known in this section: "
                          f"{', '.join(sorted(names))})")
    kwargs = {k: _coerce(prefix + k, v, hints[k]) for k, v in values.items()}
    return cls(**kwargs)


def _set_nested(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key '{dotted}': '{p}' is not a section")
    node[parts[-1]] = value


def check_tree_size(tree, where: str) -> None:
    """Refuse a config tree that is too large once shared parts are expanded (YAML aliases, references in a
    pickled checkpoint: a few hundred bytes can stand for gigabytes) or too deep. Counts without expanding:
    at most ``MAX_CONFIG_VALUES`` steps, whatever the tree."""
    budget, stack = MAX_CONFIG_VALUES, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{where}: nested deeper than {MAX_CONFIG_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else ()
        budget -= 1 + len(children)
        if budget < 0:
            raise ConfigError(f"{where}: more than {MAX_CONFIG_VALUES} values once YAML aliases or shared "
                              f"references are expanded (a config holds a few hundred)")
        stack.extend((child, depth + 1) for child in children)


def parse_overrides(overrides) -> dict:
    """``["train.max_steps=20", "model.matching=greedy"]`` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        key, raw = item.split("=", 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"override '{key}': value longer than {MAX_CONFIG_BYTES} characters")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
            if isinstance(value, str) and _EXP_NUMBER.fullmatch(value):
                value = float(value)  # YAML 1.1 reads "1e-3" as text; users mean a number
        except (yaml.YAMLError, RecursionError) as e:
            raise ConfigError(f"override '{item[:80]}': cannot parse value ({e})") from None
        check_tree_size(value, f"override '{key}'")
        _set_nested(tree, key.strip(), value)
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def preset_path(name: str) -> Path:
    """Resolve a preset name (``tiny``) or a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        return p
    candidate = CONFIG_DIR / f"{name}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown config preset '{name}' (presets: {', '.join(PRESETS)}; "
                          f"or give a path to a .yaml file)")
    return candidate


def load_config(name: str = "tiny", overrides=None, **kwargs) -> Config:
    """Load a preset or YAML path, apply ``key=value`` overrides and keyword overrides, validate."""
    path = preset_path(name)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes; a config file may hold at most {MAX_CONFIG_BYTES}")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    check_tree_size(tree, str(path))
    tree.setdefault("name", path.stem)
    tree = _merge(tree, parse_overrides(overrides))
    tree = _merge(tree, parse_overrides(f"{k.replace('__', '.')}={_yaml_repr(v)}" for k, v in kwargs.items()))
    cfg = _build(Config, tree)
    validate(cfg)
    return cfg


def _yaml_repr(v) -> str:
    return yaml.safe_dump(_plain(v), default_flow_style=True).strip().removesuffix("...").strip()


def config_from_dict(tree: dict) -> Config:
    """Rebuild a :class:`Config` from ``Config.to_dict()`` output (e.g. stored in a checkpoint)."""
    if not isinstance(tree, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(tree).__name__}")
    check_tree_size(tree, "config")
    cfg = _build(Config, tree)
    validate(cfg)
    return cfg


def layer_centres(num_points, fps_mods) -> int:
    """Centres a SA layer outputs: npoint per sample range, 2·npoint for an "FS" range."""
    counts = num_points if isinstance(num_points, tuple) else (num_points,)
    return sum(n * (2 if mode == "FS" else 1) for n, mode in zip(counts, fps_mods))


# Every number of a config is finite and >= 0 unless its key is below; rules by key, then by name ending.
_SIGNED = ("data.point_range", "data.rot_range", "data.center", "model.point.fps_sample_range_lists")
_AT_LEAST_ONE = ("data.num_points", "data.max_points", "data.img_scale_range", "data.img_size_divisor", "model.point.num_points",
                 "model.point.num_samples", "model.point.sa_channels", "model.point.aggregation_channels",
                 "model.proj_dim", "model.point_proj_hidden", "model.image_proj_hidden", "train.epochs",
                 "train.batch_size", "train.keep_last", "train.log_every")
_RULES = {  # key or name ending -> (test, what it must be)
    "model.point.radii": (lambda v: v > 0, "> 0"),
    "model.temperature": (lambda v: v > 0, "> 0"),
    "data.scale_range": (lambda v: v > 0, "> 0"),
    "data.point_dims": (lambda v: v >= 4, ">= 4 (x, y, z, reflectance, then any extra floats)"),
    "optim.lr_decay": (lambda v: 0 < v <= 1, "in (0, 1] (the learning rate is multiplied by it every epoch)"),
    "_lr": (lambda v: 0 <= v <= 1e3, "in [0, 1000] (the paper's rates are 0.03 and 0.001; a rate near "
                                      "float32's limit overflows inside the optimiser)"),
    "_eps": (lambda v: v > 0, "> 0"),
    "bn_momentum": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "betas": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "prob": (lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
}


def _numbers(node, field_key: str = "", full: str = ""):
    """``(field key, full key, value)`` of every number in a config tree, e.g.
    ``("model.point.radii", "model.point.radii[0][1]", 0.8)``; bools are not numbers."""
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            dot = "." if field_key else ""
            yield from _numbers(getattr(node, f.name), field_key + dot + f.name, full + dot + f.name)
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _numbers(item, field_key, f"{full}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield field_key, full, node


def check_numbers(cfg, prefix: str = "") -> None:
    """Every number of the dataclass tree ``cfg`` is finite and in its range (``_RULES``; default >= 0),
    or :class:`ConfigError` names its key. New fields are covered by the default and their name."""
    for field_key, full, v in _numbers(cfg, prefix.rstrip("."), prefix.rstrip(".")):
        if not math.isfinite(v):
            raise ConfigError(f"config key '{full}' must be a finite number, got {v}")
        name = field_key.rsplit(".", 1)[-1]
        rule = _RULES.get(field_key) or next((r for end, r in _RULES.items() if name.endswith(end)), None)
        if rule is None and field_key in _AT_LEAST_ONE:
            rule = (lambda x: x >= 1, ">= 1")
        if rule is None and field_key not in _SIGNED:
            rule = (lambda x: x >= 0, ">= 0")
        if rule is not None and not rule[0](v):
            raise ConfigError(f"config key '{full}' must be {rule[1]}, got {v}")


def check_device(spec: str, key: str = "train.device") -> None:
    """``auto`` or a device torch can parse (``cpu``, ``cuda``, ``cuda:1``, ``mps``...); not whether it exists."""
    if spec == "auto":
        return
    import torch
    try:
        torch.device(spec)
    except (RuntimeError, ValueError):
        raise ConfigError(f"config key '{key}' must be auto, cpu, cuda or cuda:N, got '{spec}'") from None


def validate(cfg: Config) -> None:
    """Impossible values fail here, before any data is read."""
    d, p, m, t = cfg.data, cfg.model.point, cfg.model, cfg.train
    check_numbers(cfg)
    check_device(t.device)
    if p.in_channels != 4:
        raise ConfigError(f"config key 'model.point.in_channels' must be 4 (the pipeline feeds x, y, z and "
                          f"reflectance), got {p.in_channels}")
    if d.rot_range[0] > d.rot_range[1]:
        raise ConfigError(f"data.rot_range must be (lo, hi) with lo <= hi, got {d.rot_range}")
    if d.num_points <= 0:
        raise ConfigError(f"data.num_points must be positive, got {d.num_points}")
    if len(d.point_range) != 6 or any(d.point_range[i] >= d.point_range[i + 3] for i in range(3)):
        raise ConfigError(f"data.point_range must be (x0, y0, z0, x1, y1, z1) with mins < maxes, "
                          f"got {d.point_range}")
    if not 0 < d.scale_range[0] <= d.scale_range[1]:
        raise ConfigError(f"data.scale_range must be 0 < lo <= hi, got {d.scale_range}")
    for key in ("flip_prob", "img_flip_prob"):
        if not 0.0 <= getattr(d, key) <= 1.0:
            raise ConfigError(f"data.{key} must be a probability in [0, 1], got {getattr(d, key)}")
    if d.img_size_divisor <= 0 or d.img_size_divisor % 32:
        raise ConfigError(f"data.img_size_divisor must be a positive multiple of 32 (ResNet stride), "
                          f"got {d.img_size_divisor}")
    if d.img_norm not in IMG_NORMS:
        raise ConfigError(f"data.img_norm must be one of {', '.join(IMG_NORMS)}, got '{d.img_norm}'")
    n_layers = len(p.num_points)
    for key in ("radii", "num_samples", "sa_channels", "aggregation_channels", "fps_mods",
                "fps_sample_range_lists", "dilated_group"):
        if len(getattr(p, key)) != n_layers:
            raise ConfigError(f"model.point.{key} has {len(getattr(p, key))} layers, "
                              f"model.point.num_points has {n_layers}")
    prev = d.num_points
    for i, n in enumerate(p.num_points):
        counts = n if isinstance(n, tuple) else (n,)
        ranges = p.fps_sample_range_lists[i]
        if len(counts) != len(p.fps_mods[i]) or len(counts) != len(ranges):
            raise ConfigError(f"model.point layer {i + 1}: num_points {n}, fps_mods {p.fps_mods[i]} and "
                              f"fps_sample_range_lists {ranges} need one entry per sample range")
        first = 0
        for k, (count, length) in enumerate(zip(counts, ranges)):
            last = prev if length == -1 else first + length
            if count <= 0 or not first < last <= prev or count > last - first:
                raise ConfigError(f"model.point layer {i + 1}: sample range {k} ({length}, starting at point "
                                  f"{first}) must fit the {prev} points entering the layer and hold at least "
                                  f"num_points {count}")
            first = last
        prev = layer_centres(n, p.fps_mods[i])
        if any(r <= 0 for r in p.radii[i]):
            raise ConfigError(f"model.point.radii[{i}] must be positive, got {p.radii[i]}")
        if len(p.radii[i]) != len(p.num_samples[i]) or len(p.radii[i]) != len(p.sa_channels[i]):
            raise ConfigError(f"model.point layer {i + 1}: radii, num_samples and sa_channels must "
                              f"have one entry per scale")
        if any(k <= 0 for k in p.num_samples[i]):
            raise ConfigError(f"model.point.num_samples[{i}] must be positive, got {p.num_samples[i]}")
        for mod in p.fps_mods[i]:
            if mod not in ("D-FPS", "F-FPS", "FS"):
                raise ConfigError(f"model.point.fps_mods[{i}]: unknown sampling mode '{mod}' "
                                  f"(D-FPS, F-FPS or FS)")
    if m.image_backbone not in IMAGE_BACKBONES:
        raise ConfigError(f"model.image_backbone must be a torchvision ResNet name, got '{m.image_backbone}'")
    if m.matching not in ("hungarian", "greedy"):
        raise ConfigError(f"model.matching must be 'hungarian' or 'greedy', got '{m.matching}'")
    if m.temperature <= 0:
        raise ConfigError(f"model.temperature must be positive, got {m.temperature}")
    if m.lambda_intra < 0 or m.mu_inter < 0 or m.lambda_intra + m.mu_inter == 0:
        raise ConfigError("model.lambda_intra and model.mu_inter must be >= 0 and not both 0")
    if t.batch_size <= 0 or t.epochs <= 0 or t.max_steps < 0 or t.keep_last < 1:
        raise ConfigError("train.batch_size and train.epochs must be positive, train.max_steps >= 0, "
                          "train.keep_last >= 1")
    if t.logger not in ("tensorboard", "wandb"):
        raise ConfigError(f"train.logger must be tensorboard or wandb, got '{t.logger}'")
    if t.image_every < 0:
        raise ConfigError(f"train.image_every must be >= 0 (0 = no figures), got {t.image_every}")
    if t.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"train.precision must be auto, fp32, bf16 or fp16, got '{t.precision}'")
    if t.dist_backend not in ("auto", "nccl", "gloo"):
        raise ConfigError(f"train.dist_backend must be auto, nccl or gloo, got '{t.dist_backend}'")
