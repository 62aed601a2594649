"""Export the pre-trained image backbone for downstream use (formats: README, "Exports").

``torchvision``: a state dict that ``torchvision.models.resnet50()`` (or 18/34/101/152) loads with only
``fc.*`` missing. ``mmdet``: the same tensors under ``backbone.`` keys inside ``{"state_dict": ...}``, the
layout mmdetection's ``ResNet`` backbone reads (its parameter names equal torchvision's).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from .checkpoint import CheckpointError, load_checkpoint, model_state_from

FORMATS = ("torchvision", "mmdet")


def image_backbone_state(model_state: dict, arch: str, path="checkpoint") -> dict:
    """torchvision-named ResNet tensors from a SimIPU model state dict (prefix ``image_encoder.``)."""
    reference = getattr(torchvision.models, arch)().state_dict()
    wanted = {k for k in reference if not k.startswith("fc.")}
    sub = {k[len("image_encoder."):]: v for k, v in model_state.items() if k.startswith("image_encoder.")}
    # The encoder may wrap the ResNet one level down (e.g. ``image_encoder.net.conv1.weight``).
    for inner in ("", *sorted({k.split(".", 1)[0] + "." for k in sub})):
        cand = {k[len(inner):]: v for k, v in sub.items() if k.startswith(inner)}
        if wanted <= set(cand):
            return {k: cand[k] for k in reference if k in wanted}
    raise CheckpointError(f"{path}: its image encoder does not match torchvision's {arch} "
                          f"(expected keys like conv1.weight, layer4.0.bn1.running_mean)")


def export_checkpoint(ckpt: str | Path, format: str, out: str | Path) -> Path:
    """Write the image backbone of a SimIPU checkpoint in ``format`` to ``out``; returns ``out``."""
    if format not in FORMATS:
        raise ValueError(f"export format must be one of {FORMATS}, got '{format}'")
    state = load_checkpoint(ckpt)
    arch = state.get("config", {}).get("model", {}).get("image_backbone", "resnet50")
    backbone = image_backbone_state(model_state_from(state, ckpt), arch, ckpt)
    if format == "mmdet":
        payload = {"state_dict": {f"backbone.{k}": v for k, v in backbone.items()},
                   "meta": {"source": "simipu", "arch": arch}}
    else:
        payload = backbone
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(out)
    return out
