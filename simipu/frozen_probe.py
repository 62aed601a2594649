"""Frozen-encoder depth probe: read a representation without fine-tuning noise.

Self-supervised work reads an encoder by training only a small head on top of its frozen features. Here
the head is :class:`simipu.depth.DepthNet`'s decoder; the encoder (loaded from ``init`` as in the
fine-tuned probe) is frozen with its BatchNorm in eval mode (running statistics of pre-training), and only
the decoder is trained — same data, loss (Eq. 9), metrics and :class:`simipu.depth.DepthProbeConfig`::

    records = run_frozen_probe("data", init="runs/simipu/checkpoints/step_00001000.pt", seeds=range(8))

Because the encoder never changes, its features are computed **once** per frame (and per flip, the
training augmentation) and kept in memory; each seed then costs only decoder training. The stem (conv1 +
BN + ReLU, the first skip) is recomputed per batch instead of stored: it is a single convolution, and
its output is the largest feature map (64 × H/2 × W/2). Paired seeds: seed ``s`` gives the same decoder
initialisation, batch order and flips whatever the encoder, so two encoders probed with seed ``s`` differ
only in their features.
"""
from __future__ import annotations

import dataclasses
import time

import torch
from tqdm.auto import tqdm

from .depth import DepthNet, DepthProbeConfig, average_metrics, build_probe_model, make_config, silog_loss
from .depth_data import DepthDataset


@torch.no_grad()
def encode_split(model: DepthNet, dataset: DepthDataset, batch_size: int = 8, flipped: bool = False) -> dict:
    """Frozen features of every frame of ``dataset`` (no augmentation), optionally also of its mirror image.

    Returns dict(image (N, 3, H, W), depth (N, 1, H, W), layers [layer1 (N, C1, H/4, W/4), …, layer4
    (N, C4, H/32, W/32)], and with ``flipped`` layers_flipped, the same of the horizontally flipped images).
    ``model.encoder`` must be in eval mode.
    """
    items = [dataset[i] for i in range(len(dataset))]
    image = torch.stack([it["image"] for it in items])            # (N, 3, H, W)
    depth = torch.stack([it["depth"] for it in items])            # (N, 1, H, W)
    out = dict(image=image, depth=depth)
    for key, images in (("layers", image), ("layers_flipped", image.flip(-1) if flipped else None)):
        if images is None:
            continue
        chunks = [model.layers(model.stem(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
        out[key] = [torch.cat(level) for level in zip(*chunks)]
    return out


def _batch(cache: dict, index: torch.Tensor, flip: torch.Tensor | None, model: DepthNet) -> tuple[list, torch.Tensor]:
    """Features [x0, x1..x4] and depth (B, 1, H, W) of frames ``index`` (B,), mirrored where ``flip`` (B,)."""
    image, depth = cache["image"][index], cache["depth"][index]
    layers = [level[index] for level in cache["layers"]]
    if flip is not None and flip.any():
        m = flip[:, None, None, None]
        image, depth = torch.where(m, image.flip(-1), image), torch.where(m, depth.flip(-1), depth)
        layers = [torch.where(m, f[index], x) for f, x in zip(cache["layers_flipped"], layers)]
    with torch.no_grad():
        x0 = model.stem(image)                                       # (B, 64, H/2, W/2)
    return [x0, *layers], depth


def train_decoder(model: DepthNet, train: dict, val: dict, cfg: DepthProbeConfig, desc: str = "") -> dict:
    """Train ``model``'s decoder for ``cfg.steps`` on cached ``train`` features; evaluate on ``val``.

    Batches: an epoch is a permutation of the frames from ``torch.Generator().manual_seed(cfg.seed)``,
    cut into full batches; each sample is mirrored with probability ``cfg.flip_prob`` (same generator).
    Returns dict(metrics, losses, seconds_per_step).
    """
    model.train()
    model.encoder.eval()                                             # BN keeps pre-training's statistics
    opt = torch.optim.AdamW(model.decoder_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    N, (H, W) = len(train["image"]), train["image"].shape[-2:]
    B = min(cfg.batch_size, N)
    order, losses, start = [], [], time.perf_counter()
    for step in tqdm(range(cfg.steps), desc=desc, disable=not cfg.progress, leave=False):
        if len(order) < B:
            order = torch.randperm(N, generator=gen).tolist()
        index, order = torch.tensor(order[:B]), order[B:]
        flip = torch.rand(B, generator=gen) < cfg.flip_prob if cfg.flip_prob > 0 else None
        feats, depth = _batch(train, index, flip, model)
        loss = silog_loss(model.decode(feats, (H, W)), depth, cfg.alpha, cfg.lam, cfg.min_depth, cfg.max_depth)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"frozen probe loss became {loss.item()} at step {step}; try a lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seconds = (time.perf_counter() - start) / max(cfg.steps, 1)
    model.eval()
    with torch.no_grad():
        pairs = []
        for i in range(0, len(val["image"]), cfg.batch_size):
            index = torch.arange(i, min(i + cfg.batch_size, len(val["image"])))
            feats, depth = _batch(val, index, None, model)
            pairs += list(zip(model.decode(feats, (H, W)), depth))
    return dict(metrics=average_metrics(pairs, cfg), losses=losses, seconds_per_step=seconds)


def run_frozen_probe(data_root, init: str = "scratch", seeds=(0,), overrides=None, **kw) -> list[dict]:
    """Frozen-encoder probe of ``init`` with each seed of ``seeds``; one record per seed.

    ``overrides``/``kw`` are :class:`DepthProbeConfig` values (``seed`` is taken from ``seeds``). A record
    is dict(seed, metrics (the seven of Table 3 on ``val_split``), losses, seconds_per_step, encode_seconds
    (shared by all seeds), config, init report). CPU only: the cached features live in memory.
    """
    cfg = make_config(overrides, **kw)
    t0 = time.perf_counter()
    encoder_model, cfg, report = build_probe_model(init, dataclasses.replace(cfg, seed=0))
    encoder_model.eval()
    data = dict(image_size=cfg.image_size, velodyne_dir=cfg.velodyne_dir, img_norm=cfg.img_norm)
    train = encode_split(encoder_model, DepthDataset(data_root, cfg.train_split, **data), cfg.batch_size,
                         flipped=cfg.flip_prob > 0)
    val = encode_split(encoder_model, DepthDataset(data_root, cfg.val_split, **data), cfg.batch_size)
    encode_seconds = time.perf_counter() - t0
    encoder_state = encoder_model.encoder.state_dict()
    records = []
    for seed in seeds:
        seed_cfg = dataclasses.replace(cfg, seed=int(seed))
        torch.manual_seed(seed_cfg.seed)                            # decoder init: a function of the seed only
        model = DepthNet(cfg.arch, cfg.max_depth, cfg.decoder_width, cfg.encoder_bn_eps)
        model.encoder.load_state_dict(encoder_state)
        model.encoder.requires_grad_(False)
        result = train_decoder(model, train, val, seed_cfg, desc=f"frozen probe ({report['kind']}, seed {seed})")
        records.append(dict(seed=int(seed), **result, encode_seconds=encode_seconds,
                            config=dataclasses.asdict(seed_cfg), init=report))
    return records
