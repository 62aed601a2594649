"""Export the pre-trained image backbone for downstream use (README, "Exports").

Formats — the same torchvision-named ResNet tensors (``conv1.weight`` … ``layer4.2.bn3.running_var``,
no ``fc``) under the prefix the target tool expects:

* ``torchvision``: bare keys; ``torchvision.models.resnet50()`` and ``timm`` load it with only ``fc.*``
  missing, mmdetection's ``ResNet`` through ``init_cfg=dict(type='Pretrained', checkpoint=...)`` (mmdet
  >= 2.12; with mmdet 2.11, the authors' version, through the detector's ``pretrained=``).
* ``mmdet``: ``backbone.`` keys inside ``{"state_dict": ..., "meta": ...}`` — single-image detectors
  (Faster R-CNN, FCOS3D, …) via ``load_from`` or ``init_cfg(..., prefix='backbone.')``. mmdetection's
  ``ResNet`` (style ``'pytorch'``) names its modules as torchvision does (``layer{i}``, ``bn{i}``,
  ``downsample.0/1``).
* ``mmdet3d-fusion``: ``img_backbone.`` keys, for fusion detectors whose image branch is
  ``img_backbone`` (MVX-Net); the authors' ``project_cl/tools/convert_pretrain_imgbackbone.py`` writes
  the same prefix.

The container follows ``out``'s extension: ``.pth``/``.pt`` → ``torch.save``; ``.safetensors`` (torchvision
format only: mmdetection reads torch files) → a safetensors file whose header holds the metadata. Next to every export a model card ``<stem>.md``
(:mod:`simipu.modelcard`) says what the weights are and the exact lines that load them. The metadata —
image normalisation, arch, BN eps, config hash, steps, commit — is in the card, in ``meta`` of the
mmdet formats and in the safetensors header; see :func:`export_metadata`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torchvision

from .checkpoint import CheckpointError, load_checkpoint, model_state_from, stored_arch
from .config import IMAGE_BACKBONES
from .outputs import atomic_write, save_tensors
from .provenance import config_sha256, source_commit

PREFIXES = {"torchvision": "", "mmdet": "backbone.", "mmdet3d-fusion": "img_backbone."}
FORMATS = tuple(PREFIXES)
CONTAINERS = (".pth", ".pt", ".safetensors")
# What a checkpoint written before these settings existed was trained with.
LEGACY_IMG_NORM, LEGACY_IMAGE_BN_EPS = "imagenet_rgb", 1e-5
_JSON_FIELDS = ("image_bn_eps", "steps", "data")  # safetensors headers hold strings: these as JSON


def image_backbone_state(model_state: dict, arch: str, path="checkpoint") -> dict:
    """torchvision-named ResNet tensors from a SimIPU model state dict (prefix ``image_encoder.``)."""
    if arch not in IMAGE_BACKBONES:  # never call another torchvision.models function named by a file
        raise CheckpointError(f"{path}: image backbone must be one of {', '.join(IMAGE_BACKBONES)}, got {arch!r:.80}")
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


def export_metadata(state: dict, ckpt, format: str) -> dict:
    """What an export records about its weights, from a training checkpoint ``state``.

    ``img_norm`` and ``image_bn_eps`` come from the checkpoint's stored config; checkpoints older than
    those settings get ``"imagenet_rgb"`` and ``1e-5``, what they were trained with. ``commit`` is the
    code that trained (recorded in the checkpoint, else ``"unknown"``), ``exported_by`` the code exporting.
    """
    config = state.get("config") if isinstance(state.get("config"), dict) else None
    data, model = (config or {}).get("data", {}), (config or {}).get("model", {})
    return {
        "format": format,
        "arch": model.get("image_backbone", "resnet50"),
        "img_norm": data.get("img_norm", LEGACY_IMG_NORM),
        "image_bn_eps": float(model.get("image_bn_eps", LEGACY_IMAGE_BN_EPS)),
        "config_name": (config or {}).get("name"),
        "config_sha256": config_sha256(config),
        "steps": int(state["step"]) if isinstance(state.get("step"), int) else None,
        "commit": state.get("commit", "unknown"),
        "exported_by": source_commit(),
        "source_checkpoint": Path(ckpt).name,
        "data": {k: data.get(k) for k in ("root", "splits", "camera", "num_points", "img_scale_range")
                 if k in data},
    }


def export_checkpoint(ckpt: str | Path, format: str, out: str | Path) -> Path:
    """Write the image backbone of a SimIPU checkpoint in ``format`` to ``out``, and its model card
    ``out.with_suffix(".md")``; returns ``out``.

    Both are written all or nothing: a folder, an unwritable place or a full disk raise
    :class:`simipu.errors.OutputError` and leave nothing behind. Checkpoints with NaN/inf weights, or whose
    recorded backbone is not a known ResNet, are refused.
    """
    from .modelcard import write_model_card
    if format not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, got '{format}'")
    out = Path(out)
    if out.suffix not in CONTAINERS:
        raise ValueError(f"{out}: the file name must end in .pth or .pt (torch.save) or .safetensors")
    if out.suffix == ".safetensors" and format != "torchvision":
        raise ValueError(f"{out}: mmdetection reads torch checkpoints; write the {format} format to a .pth file "
                         f"(.safetensors is offered for the torchvision format)")
    state = load_checkpoint(ckpt)
    stored_arch(state, ckpt)  # a known ResNet name, never another callable
    meta = export_metadata(state, ckpt, format)
    backbone = image_backbone_state(model_state_from(state, ckpt), meta["arch"], ckpt)
    tensors = {PREFIXES[format] + k: v for k, v in backbone.items()}
    if out.suffix == ".safetensors":
        from safetensors.torch import save
        header = {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in meta.items() if v is not None}
        payload = save({k: v.contiguous() for k, v in tensors.items()}, metadata=header)
        atomic_write(out, lambda f: f.write(payload))
    else:
        save_tensors(tensors if format == "torchvision" else {"state_dict": tensors, "meta": meta}, out)
    write_model_card(out, meta, state.get("config"))
    return out


def read_export_metadata(path: str | Path) -> dict:
    """The metadata of an export: the safetensors header, ``meta`` of an mmdet-format file, or the front
    matter of the model card next to a bare torchvision ``.pth``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        return {k: json.loads(v) if k in _JSON_FIELDS else v for k, v in header.items()}
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("meta"), dict):
        return obj["meta"]
    from .modelcard import read_model_card
    return read_model_card(path.with_suffix(".md"))
