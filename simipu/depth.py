"""Downstream check: monocular depth probe (paper appendix C, Table 3).

A UNet-shaped network — a torchvision ResNet encoder and an upsampling decoder with skip connections from
layer3, layer2, layer1 and the stem — predicts depth at half the input resolution, upsampled bilinearly to
the full size. Depth is ``max_depth · sigmoid(logit)`` (positive, at most 80 m on KITTI). It is trained with
the scale-invariant loss (Eq. 9 as used by AdaBins) and evaluated with the seven metrics of Table 3.
The claim to check: a SimIPU pre-trained encoder beats the same encoder trained from scratch::

    run_depth_probe("data_samples", init="scratch", arch="resnet18", steps=200)
    run_depth_probe("data_samples", init="runs/simipu/checkpoints/step_00000100.pt", steps=200)

``init`` is ``"scratch"``, a SimIPU training checkpoint (its ``image_encoder.`` tensors), or a torchvision
ResNet state dict file (ImageNet weights, ``simipu export`` output; ``fc.*`` ignored).

Protocol, sized for CPUs: training and evaluation happen at ``image_size`` (default 384×128) against ground
truth resized the same way (:mod:`simipu.depth_data`); metrics are computed per image over pixels with
``min_depth < d < max_depth`` (predictions clipped to that range) and averaged over the val images. The
paper's Table 3 evaluates KITTI's Eigen split at full resolution; compare scratch and pre-trained runs of
this probe with each other, not with Table 3's numbers.
"""
from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, check_finite, load_checkpoint, model_state_from, stored_arch
from .config import IMG_NORMS, _build, parse_overrides
from .depth_data import DepthDataset
from .errors import ConfigError
from .export import image_backbone_state

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")  # Table 3; delta_k: δ < 1.25^k


@dataclass
class DepthProbeConfig:
    arch: str = "auto"               # resnet18/34/50/101/152; auto = the init file's arch (scratch: give it)
    steps: int = 200                 # optimiser steps of fine-tuning
    batch_size: int = 4
    lr: float = 2e-4                 # AdamW, one rate for encoder and decoder
    weight_decay: float = 1e-2
    image_size: tuple[int, int] = (384, 128)  # (W, H) network input; KITTI's 1242x375 shrunk for CPUs
    min_depth: float = 1e-3          # evaluation range of AdaBins (Bhat et al. 2021)
    max_depth: float = 80.0
    alpha: float = 10.0              # α of the scale-invariant loss (appendix C)
    lam: float = 0.85                # λ
    flip_prob: float = 0.5           # horizontal flip of image and depth while training
    decoder_width: int = 256         # channels after the first up block; halved at each later one
    img_norm: str = "imagenet_rgb"   # imagenet_rgb | caffe_bgr: use the one the encoder was trained with
    encoder_bn_eps: float = 1e-5     # BatchNorm eps of the encoder (SimIPU's image_bn_eps is 1e-3)
    seed: int = 0
    device: str = "auto"             # auto | cpu | cuda | cuda:1 ...
    train_split: str = "train"
    val_split: str = "val"
    velodyne_dir: str = "velodyne"   # for sparse (LiDAR) ground truth on real KITTI
    num_workers: int = 0
    eval_before: bool = False        # also evaluate the untrained network (written to run.json)
    progress: bool = True


def make_config(overrides=None, **kw) -> DepthProbeConfig:
    """``DepthProbeConfig`` from ``key=value`` strings and keyword arguments; unknown keys → ConfigError."""
    cfg = _build(DepthProbeConfig, {**parse_overrides(overrides), **kw})
    if cfg.arch not in ARCHS + ("auto",):
        raise ConfigError(f"arch must be auto or one of {ARCHS}, got '{cfg.arch}'")
    if cfg.steps < 0 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise ConfigError("steps must be >= 0, batch_size >= 1 and lr > 0")
    if not 0 < cfg.min_depth < cfg.max_depth:
        raise ConfigError(f"need 0 < min_depth < max_depth, got {cfg.min_depth}, {cfg.max_depth}")
    if cfg.img_norm not in IMG_NORMS:
        raise ConfigError(f"img_norm must be one of {IMG_NORMS}, got '{cfg.img_norm}'")
    if len(cfg.image_size) != 2 or min(cfg.image_size) < 32:
        raise ConfigError(f"image_size must be (W, H), each at least 32, got {cfg.image_size}")
    return cfg


class UpBlock(nn.Module):
    """Upsample to the skip's size, concatenate, two 3×3 conv-BN-ReLU."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in + c_skip, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], 1))


class DepthNet(nn.Module):
    """ResNet encoder (torchvision names under ``encoder.``, no ``fc``) + skip-connected upsampling decoder.

    ``forward(image (B, 3, H, W)) -> depth (B, 1, H, W)`` metres in ``(0, max_depth)``; it is
    ``decode(features(image), (H, W))``, the two halves the frozen-encoder probe runs apart.
    """

    def __init__(self, arch: str = "resnet18", max_depth: float = 80.0, decoder_width: int = 256,
                 bn_eps: float = 1e-5):
        super().__init__()
        self.max_depth = max_depth
        self.encoder = getattr(torchvision.models, arch)(weights=None,
                                                         norm_layer=partial(nn.BatchNorm2d, eps=bn_eps))
        self.encoder.fc = nn.Identity()
        e = self.encoder.layer1[0].expansion                    # 1 for resnet18/34, 4 for resnet50+
        c = (64, 64 * e, 128 * e, 256 * e, 512 * e)             # channels of stem, layer1..layer4
        w = decoder_width
        self.bottleneck = nn.Conv2d(c[4], w, 1)
        self.up3, self.up2 = UpBlock(w, c[3], w // 2), UpBlock(w // 2, c[2], w // 4)
        self.up1, self.up0 = UpBlock(w // 4, c[1], w // 8), UpBlock(w // 8, c[0], w // 16)
        self.head = nn.Conv2d(w // 16, 1, 3, padding=1)

    def stem(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 64, H/2, W/2), the first skip."""
        e = self.encoder
        return e.relu(e.bn1(e.conv1(image)))

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [stem (B, 64, H/2, W/2), layer1 (B, C1, H/4, W/4), …, layer4 (B, C4, H/32, W/32)]."""
        return [x0 := self.stem(image), *self.layers(x0)]

    def layers(self, x0: torch.Tensor) -> list[torch.Tensor]:
        """Stem output -> [layer1 (B, C1, H/4, W/4), layer2 (H/8), layer3 (H/16), layer4 (B, C4, H/32, W/32)]."""
        e = self.encoder
        x1 = e.layer1(e.maxpool(x0))
        x2 = e.layer2(x1)
        x3 = e.layer3(x2)
        return [x1, x2, x3, e.layer4(x3)]

    def decode(self, feats: list[torch.Tensor], size) -> torch.Tensor:
        """Encoder features ``[x0, x1, x2, x3, x4]`` (as :meth:`features`) -> depth (B, 1, *size) metres."""
        x0, x1, x2, x3, x4 = feats
        y = self.up3(self.bottleneck(x4), x3)       # (B, w/2, H/16, W/16)
        y = self.up1(self.up2(y, x2), x1)           # (B, w/8, H/4, W/4)
        y = self.up0(y, x0)                         # (B, w/16, H/2, W/2)
        depth_half = self.max_depth * torch.sigmoid(self.head(y))  # (B, 1, H/2, W/2), half resolution
        return F.interpolate(depth_half, size=tuple(size), mode="bilinear", align_corners=False)

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Every parameter outside ``encoder`` (what the frozen probe trains)."""
        return [p for name, p in self.named_parameters() if not name.startswith("encoder.")]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode(self.features(image), image.shape[-2:])  # (B, 1, H, W)


def valid_mask(gt, min_depth: float = 1e-3, max_depth: float = 80.0):
    """Pixels with ground truth inside the evaluation range: ``min_depth < gt < max_depth`` (0 = no value)."""
    return (gt > min_depth) & (gt < max_depth)


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, alpha: float = 10.0, lam: float = 0.85,
               min_depth: float = 1e-3, max_depth: float = 80.0) -> torch.Tensor:
    """Scale-invariant loss over the T valid pixels of the whole batch (any equal shapes, metres).

    ``pred`` is clamped to ``min_depth`` before the log; with no valid pixel the loss is 0 (no gradient).
    """
    valid = valid_mask(gt, min_depth, max_depth)
    if not valid.any():
        return pred.sum() * 0.0
    # Eq. 9 (appendix C, as in AdaBins): g_i = log d̂_i − log d_i, L = α·sqrt(mean(g²) − λ·mean(g)²)
    # Written as mean((g − ḡ)²) + (1 − λ)·ḡ², the same number without the float32 cancellation of
    # mean(g²) − λ·ḡ² when g is nearly constant (a prediction off by one global scale).
    g = torch.log(pred[valid].clamp(min=min_depth)) - torch.log(gt[valid])
    mean = g.mean()
    v = (g - mean).pow(2).mean() + (1.0 - lam) * mean.pow(2)
    # sqrt's slope is infinite at 0 (0 · inf = NaN in backward): a perfect prediction gets loss 0 and gradient 0
    positive = v > 0
    return alpha * torch.where(positive, torch.sqrt(torch.where(positive, v, torch.ones_like(v))), torch.zeros_like(v))


def depth_metrics(pred, gt, min_depth: float = 1e-3, max_depth: float = 80.0) -> dict:
    """The seven metrics of Table 3 over the valid pixels of ``pred``/``gt`` (numpy or torch, same shape).

    Predictions are clipped to ``[min_depth, max_depth]``; ``delta_k`` is the share with
    ``max(d̂/d, d/d̂) < 1.25^k``. Returns NaN everywhere when no pixel is valid.
    """
    pred, gt = (np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, np.float64) for x in (pred, gt))
    valid = valid_mask(gt, min_depth, max_depth)
    if not valid.any():
        return {k: float("nan") for k in METRICS}
    d_hat, d = np.clip(pred[valid], min_depth, max_depth), gt[valid]
    ratio = np.maximum(d_hat / d, d / d_hat)
    return dict(abs_rel=float(np.mean(np.abs(d_hat - d) / d)), sq_rel=float(np.mean((d_hat - d) ** 2 / d)),
                rmse=float(np.sqrt(np.mean((d_hat - d) ** 2))),
                rmse_log=float(np.sqrt(np.mean((np.log(d_hat) - np.log(d)) ** 2))),
                **{f"delta{k}": float(np.mean(ratio < 1.25 ** k)) for k in (1, 2, 3)})


def average_metrics(pairs, cfg: DepthProbeConfig) -> dict:
    """Per-image metrics averaged over the images that have valid ground truth (Eigen / AdaBins convention).

    ``pairs`` yields ``(pred, gt)`` of one image each, same shapes (e.g. (1, H, W)), metres.
    """
    rows = [depth_metrics(p, g, cfg.min_depth, cfg.max_depth) for p, g in pairs
            if valid_mask(g, cfg.min_depth, cfg.max_depth).any()]
    if not rows:
        raise ValueError(f"no image of the '{cfg.val_split}' split has ground truth in "
                         f"({cfg.min_depth}, {cfg.max_depth}) m")
    return {k: float(np.mean([r[k] for r in rows])) for k in METRICS}


@torch.no_grad()
def evaluate(model: DepthNet, dataset: DepthDataset, cfg: DepthProbeConfig, device="cpu") -> dict:
    """:func:`average_metrics` of ``model`` (in eval mode) over ``dataset``."""
    was_training = model.training
    model.eval()
    pairs = [(p, g) for batch in torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size,
                                                              num_workers=cfg.num_workers)
             for p, g in zip(model(batch["image"].to(device)).cpu(), batch["depth"])]
    model.train(was_training)
    return average_metrics(pairs, cfg)


def _reference_shapes(arch: str) -> dict:
    with torch.device("meta"):
        return {k: v.shape for k, v in getattr(torchvision.models, arch)().state_dict().items()
                if not k.startswith("fc.")}


def read_init(init: str | Path) -> tuple[dict, str | None, str]:
    """``(torchvision-named state dict, arch or None, kind)`` from a SimIPU checkpoint or a ResNet state dict."""
    obj = load_checkpoint(init)
    model = obj.get("model")
    if isinstance(model, dict) and any(k.startswith("image_encoder.") for k in model):
        arch = stored_arch(obj, init)
        return image_backbone_state(model_state_from(obj, init), arch, init), arch, "simipu"
    state = obj.get("state_dict", obj)                       # mmdet-style export: {"state_dict": {backbone.*}}
    if not isinstance(state, dict):
        raise CheckpointError(f"{init}: 'state_dict' must be a mapping of tensors, found {type(state).__name__}")
    state = {str(k).removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()
             if isinstance(v, torch.Tensor)}
    check_finite(state, init)
    names = {k for k in state if not k.startswith("fc.")}
    for arch in ARCHS:                                       # exact key set: resnet34 contains resnet18's names
        ref = _reference_shapes(arch)
        if names == set(ref) and all(state[k].shape == s for k, s in ref.items()):
            return state, arch, "torchvision"
    return state, None, "torchvision"


def load_encoder(model: DepthNet, state: dict, source="init file") -> dict:
    """Copy the tensors of ``state`` whose names and shapes match into ``model.encoder``; report the keys."""
    own = model.encoder.state_dict()
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{source}: '{k}' has shape {tuple(state[k].shape)}, this encoder expects "
                              f"{tuple(own[k].shape)} — set arch= to the file's ResNet")
    loaded = sorted(k for k in state if k in own)
    if not loaded:
        raise CheckpointError(f"{source}: no tensor matches a torchvision ResNet (expected keys like "
                              f"conv1.weight, layer1.0.bn1.running_mean; found e.g. {sorted(state)[:3]})")
    model.encoder.load_state_dict({k: state[k] for k in loaded}, strict=False)
    missing = sorted(set(own) - set(loaded))
    if missing:
        warnings.warn(f"{source}: {len(missing)} encoder tensors not in the file keep their random init "
                      f"(e.g. {missing[:3]})", stacklevel=2)
    return dict(loaded=loaded, missing=missing, ignored=sorted(set(state) - set(loaded)))


def _device(spec: str) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if spec == "auto" else torch.device(spec)


def _forever(loader):
    while True:
        yield from loader


def build_probe_model(init, cfg: DepthProbeConfig) -> tuple[DepthNet, DepthProbeConfig, dict]:
    """Seed with ``cfg.seed``, build :class:`DepthNet`, load ``init``'s encoder; returns (model, cfg with the
    resolved arch, init report).

    The decoder's initial weights depend on ``cfg.seed`` and the arch only — the same for every ``init``
    (paired seeds). ``np.random`` is seeded too.
    """
    state, file_arch, kind = (None, None, "scratch") if str(init) == "scratch" else read_init(init)
    if state is None and cfg.arch == "auto":  # a silent default would compare a ResNet-18 with a ResNet-50
        raise ConfigError("init=scratch needs arch= set to the architecture of the encoders it is compared with: "
                          "arch=resnet18 for the tiny preset, arch=resnet50 for kitti and waymo")
    arch = cfg.arch if cfg.arch != "auto" else (file_arch or "resnet18")  # a file without one fails to load below
    if file_arch and arch != file_arch:
        raise ConfigError(f"{init} holds a {file_arch} encoder but arch={arch}; use arch={file_arch} or auto")
    cfg = dataclasses.replace(cfg, arch=arch)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = DepthNet(arch, cfg.max_depth, cfg.decoder_width, cfg.encoder_bn_eps)
    report = dict(init=str(init), kind=kind, arch=arch)
    if state is not None:
        report.update(load_encoder(model, state, str(init)))
    return model, cfg, report


def run_depth_probe(data_root, init: str = "scratch", out="runs/depth_probe", overrides=None, **kw) -> dict:
    """Fine-tune :class:`DepthNet` on ``train_split``, evaluate on ``val_split``; write ``OUT/metrics.json``.

    ``overrides`` are ``key=value`` strings and ``kw`` keyword values of :class:`DepthProbeConfig`.
    Returns the seven metrics (``METRICS``). ``OUT/run.json`` holds the config, the init report (which
    encoder keys were loaded), the training losses, seconds per step and, with ``eval_before``, the
    metrics of the untrained network.
    """
    cfg = make_config(overrides, **kw)
    model, cfg, report = build_probe_model(init, cfg)
    device = _device(cfg.device)
    data = dict(image_size=cfg.image_size, velodyne_dir=cfg.velodyne_dir, img_norm=cfg.img_norm)
    train_set = DepthDataset(data_root, cfg.train_split, flip_prob=cfg.flip_prob, **data)
    val_set = DepthDataset(data_root, cfg.val_split, **data)
    model.to(device).train()
    sources = list(train_set.source.values())
    record = dict(config=dataclasses.asdict(cfg), init=report, losses=[],
                  train_gt={s: sources.count(s) for s in ("dense", "sparse")})
    if cfg.eval_before:
        record["metrics_before"] = evaluate(model, val_set, cfg, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True,
                                         drop_last=len(train_set) >= cfg.batch_size, num_workers=cfg.num_workers,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    batches, start = _forever(loader), time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=f"depth probe ({report['kind']}, {cfg.arch})", disable=not cfg.progress)
    for step in bar:
        batch = next(batches)
        pred = model(batch["image"].to(device))                                   # (B, 1, H, W)
        loss = silog_loss(pred, batch["depth"].to(device), cfg.alpha, cfg.lam, cfg.min_depth, cfg.max_depth)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"depth probe loss became {loss.item()} at step {step}; try a lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        record["losses"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    record["seconds_per_step"] = (time.perf_counter() - start) / max(cfg.steps, 1)
    metrics = evaluate(model, val_set, cfg, device)
    record["metrics"] = metrics
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return metrics
