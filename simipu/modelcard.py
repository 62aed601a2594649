"""The model card next to every export: what the weights are, and the exact lines that load them.

A card is Markdown with a YAML front matter (the convention of model hubs), so a program reads the
metadata (:func:`read_model_card`) and a person reads the rest. The load lines per format and the
image normalisation of each ``data.img_norm`` mode live here, once; the README shows the same lines.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .outputs import atomic_write
from .pipeline import CAFFE_BGR_MEAN, IMAGENET_MEAN, IMAGENET_STD


def mmdet_img_norm(img_norm: str) -> dict:
    """mmdetection's normalisation settings for a ``data.img_norm`` mode, on 0-255 pixels.

    Returns ``dict(mean, std, to_rgb)`` (mmdet 2.x ``img_norm_cfg``; in mmdet 3.x the
    ``data_preprocessor`` takes ``mean``, ``std`` and ``bgr_to_rgb`` = ``to_rgb``). mmdetection reads
    images as BGR, so ``to_rgb=False`` keeps BGR, the released SimIPU setting.
    """
    if img_norm == "caffe_bgr":
        return dict(mean=[round(float(v), 3) for v in CAFFE_BGR_MEAN], std=[1.0, 1.0, 1.0], to_rgb=False)
    if img_norm == "imagenet_rgb":
        return dict(mean=[round(float(v) * 255, 3) for v in IMAGENET_MEAN],
                    std=[round(float(v) * 255, 3) for v in IMAGENET_STD], to_rgb=True)
    raise ValueError(f"unknown image normalisation '{img_norm}' (caffe_bgr or imagenet_rgb)")


def _norm_sentence(img_norm: str) -> str:
    n = mmdet_img_norm(img_norm)
    order = "RGB" if n["to_rgb"] else "BGR"
    return f"{order} channel order, 0-255 pixels, minus mean {n['mean']}, divided by std {n['std']} (`{img_norm}`)"


def normalisation_lines(img_norm: str) -> str:
    """How to feed images to the backbone: mmdetection's settings and plain PyTorch (Markdown)."""
    n = mmdet_img_norm(img_norm)
    return f"""Images must be normalised as in pre-training ({_norm_sentence(img_norm)}) — mmdet 2.x / mmdet3d 0.x:

```python
img_norm_cfg = dict(mean={n['mean']}, std={n['std']}, to_rgb={n['to_rgb']})
```

mmdet 3.x / mmdet3d 1.x, in the model: `data_preprocessor=dict(mean={n['mean']}, std={n['std']}, bgr_to_rgb={n['to_rgb']})`.
Plain PyTorch: `simipu.pipeline.normalize_image(rgb_uint8, "{img_norm}")` gives the (H, W, 3) input.
"""


def release_downstream_lines(eps: float) -> str:
    """The released SimIPU downstream backbone setting, next to the lines that keep this file's eps (Markdown).

    From the authors' FCOS3D and MVX-Net configs and their logs (docs/method_notes.md, section 5, item 3).
    """
    return f"""The released downstream runs (FCOS3D on nuScenes, MVX-Net on KITTI) fine-tuned the backbone with
`norm_cfg=dict(type='SyncBN', requires_grad=True)`, i.e. PyTorch's default eps 1e-5 (not the 1e-3 of their
pre-training), `norm_eval=False` and `frozen_stages=1`; their FCOS3D config also has DCNv2 in stages 3-4
(`dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False), stage_with_dcn=(False, False, True, True)`;
the offset convolutions are not in this file and start at zero), their MVX-Net config has no DCN. The lines
above keep this file's eps {eps:g}, so fine-tuning starts from exactly the pre-trained features; change
`norm_cfg` and add `frozen_stages=1` to run the released setting.
"""


def load_lines(format: str, file: str, meta: dict) -> str:
    """The code or config lines that load an export of ``format`` stored at ``file`` (Markdown)."""
    arch, eps = meta["arch"], meta["image_bn_eps"]
    depth = int(arch.removeprefix("resnet"))
    resnet = (f"dict(type='ResNet', depth={depth}, style='pytorch', "
              f"norm_cfg=dict(type='SyncBN', eps={eps:g}, requires_grad=True), norm_eval=False,")
    if format == "torchvision":
        tensors_file = file.endswith(".safetensors")
        reader = ("from safetensors.torch import load_file\nstate = load_file(path)" if tensors_file
                  else "state = torch.load(path, weights_only=True)")
        pth_file = file.removesuffix(".safetensors") + ".pth" if tensors_file else file
        pth_note = " (mmcv reads torch files: export to `.pth`)" if tensors_file else ""
        return f"""PyTorch / torchvision (build the net with the BN eps it was trained with):

```python
from functools import partial
import torch, torchvision
path = "{file}"
{reader}
net = torchvision.models.{arch}(norm_layer=partial(torch.nn.BatchNorm2d, eps={eps:g}))
missing, unexpected = net.load_state_dict(state, strict=False)   # missing: fc.weight, fc.bias only
```

timm: `timm.create_model("{arch}", pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=path),
norm_layer=partial(torch.nn.BatchNorm2d, eps={eps:g}))`.

mmdetection (single-image detectors), in the model config:

```python
backbone={resnet}
    init_cfg=dict(type='Pretrained', checkpoint='{file}'))
```

`init_cfg` needs mmdet >= 2.12. With mmdet 2.11 / mmdet3d 0.13 (the versions the SimIPU authors pin) `ResNet`
takes no `init_cfg`: drop that line and name the file at the detector level{pth_note}, `pretrained='{pth_file}'`
in the model dict (FCOS3D, Faster R-CNN) or `pretrained=dict(img='{pth_file}')` (MVX-Net).

{release_downstream_lines(eps)}
{normalisation_lines(meta["img_norm"])}"""
    prefix, key = {"mmdet": ("backbone.", "backbone"), "mmdet3d-fusion": ("img_backbone.", "img_backbone")}[format]
    kind = ("single-image detectors (Faster R-CNN, FCOS3D, …)" if format == "mmdet"
            else "fusion detectors whose image branch is `img_backbone` (MVX-Net)")
    return f"""mmdetection / mmdetection3d, {kind}. In the model config:

```python
{key}={resnet}
    init_cfg=dict(type='Pretrained', checkpoint='{file}', prefix='{prefix}'))
```

or, instead of `init_cfg`, `load_from = '{file}'` at the top level (loads the `{prefix}*` keys into the
whole detector; every other part keeps its initialisation). In mmdetection3d 1.x write `type='mmdet.ResNet'`.
`init_cfg` needs mmdet >= 2.12: with mmdet 2.11 / mmdet3d 0.13 (the versions the SimIPU authors pin) `ResNet`
takes no `init_cfg`, so drop that line and use `load_from`, as the released downstream configs do.

{release_downstream_lines(eps)}
{normalisation_lines(meta["img_norm"])}"""


def model_card(file: str, meta: dict, config: dict | None) -> str:
    """The card's text for an export at ``file`` (a name) with metadata ``meta`` (``export_metadata``)."""
    front = yaml.safe_dump(dict(library_name="simipu", tags=["simipu", "self-supervised", "lidar-camera",
                                                            meta["arch"]], **meta), sort_keys=False)
    steps = meta["steps"] if meta["steps"] is not None else "an unknown number of"
    data = meta.get("data") or {}
    lines = [
        "---", front.rstrip(), "---", "",
        f"# SimIPU image backbone: {meta['arch']} ({meta['format']} format)", "",
        f"`{file}` holds the image encoder of a SimIPU pre-training run (Li et al., AAAI 2022: LiDAR-camera "
        f"contrastive pre-training), as ResNet weights without the classifier `fc`.", "",
        f"- **Architecture**: torchvision `{meta['arch']}`, style 'pytorch' (stride in the 3×3 conv), "
        f"BatchNorm eps {meta['image_bn_eps']:g}.",
        f"- **Input normalisation**: {_norm_sentence(meta['img_norm'])}. Fine-tune with the same normalisation.",
        f"- **Training**: {steps} steps of the `{meta['config_name']}` configuration "
        f"(config SHA-256 {meta['config_sha256']}) on `{data.get('root')}`, splits {data.get('splits')}, "
        f"camera {data.get('camera')}.",
        f"- **Code**: commit `{meta['commit']}` trained it; exported by `{meta['exported_by']}` from "
        f"`{meta['source_checkpoint']}`.", "",
        "## Loading", "", load_lines(meta["format"], file, meta),
        "## Limits", "",
        "Weights and statistics come from the pre-training data only; no downstream accuracy is claimed "
        "for this file. BatchNorm statistics were estimated on that data (set `norm_eval=True` to keep them).",
    ]
    if config is not None:
        lines += ["", "## Configuration", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_model_card(export_path: str | Path, meta: dict, config: dict | None) -> Path:
    """Write ``export_path.with_suffix(".md")`` all or nothing; returns its path."""
    export_path = Path(export_path)
    text = model_card(export_path.name, meta, config).encode()
    return atomic_write(export_path.with_suffix(".md"), lambda f: f.write(text))


def read_model_card(path: str | Path) -> dict:
    """The metadata (front matter) of a model card, without the card-only fields."""
    text = Path(path).read_text()
    if not text.startswith("---\n"):
        raise ValueError(f"{path}: not a simipu model card (no YAML front matter)")
    meta = yaml.safe_load(text[4:text.index("\n---\n", 4)])
    return {k: v for k, v in meta.items() if k not in ("library_name", "tags")}
