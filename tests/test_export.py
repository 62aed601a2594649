"""Exports load where users take them: every key is a key of the target model, the metadata is recorded,
safetensors and a model card sit beside the weights, and timm loads the torchvision export."""
from functools import partial

import pytest
import torch
import torchvision
import yaml

from simipu.checkpoint import save_checkpoint
from simipu.cli import main
from simipu.config import load_config
from simipu.export import FORMATS, PREFIXES, export_checkpoint, read_export_metadata
from simipu.model import SimIPU
from simipu.modelcard import mmdet_img_norm, read_model_card
from simipu.provenance import config_sha256

ARCH = "resnet18"  # the tiny preset's backbone; the key logic is the same for every torchvision ResNet


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny-preset checkpoint at step 7 with a recorded commit and BN statistics that are not the defaults."""
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = SimIPU(cfg.model)
    with torch.no_grad():
        for m in model.image_encoder.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    state = dict(model=model.state_dict(), step=7, config=cfg.to_dict(), commit="0123abcd" * 5)
    return save_checkpoint(state, tmp_path_factory.mktemp("run"), 7)


def _target_keys(prefix: str) -> dict:
    """Key -> shape of the target model: torchvision's ResNet without its classifier, under ``prefix``.

    mmdetection's ResNet (style 'pytorch', deep_stem=False) has the same module names — stem
    ``conv1``/``bn1``, stages ``layer{i}``, blocks ``conv{k}``/``bn{k}``, ``downsample.0``/``.1``
    (mmdet/models/backbones/resnet.py) — which is why mmdetection loads ``torchvision://resnet50``
    into it; MVX-Net holds that ResNet as ``img_backbone``.
    """
    net = getattr(torchvision.models, ARCH)()
    return {prefix + k: v.shape for k, v in net.state_dict().items() if not k.startswith("fc.")}


def _load_tensors(path):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    obj = torch.load(path, weights_only=True)
    return obj["state_dict"] if "state_dict" in obj else obj


@pytest.mark.parametrize("format, suffix", [(f, ".pth") for f in FORMATS] + [("torchvision", ".safetensors")])
def test_every_exported_key_is_a_key_of_the_target_model_with_its_shape(ckpt, tmp_path, format, suffix):
    out = export_checkpoint(ckpt, format, tmp_path / f"backbone{suffix}")
    tensors = _load_tensors(out)
    target = _target_keys(PREFIXES[format])
    assert set(tensors) == set(target)
    assert {k: v.shape for k, v in tensors.items()} == target


def test_mmdet_and_fusion_exports_hold_the_same_tensors_under_their_prefix(ckpt, tmp_path):
    bare = _load_tensors(export_checkpoint(ckpt, "torchvision", tmp_path / "tv.pth"))
    for format, prefix in (("mmdet", "backbone."), ("mmdet3d-fusion", "img_backbone.")):
        obj = torch.load(export_checkpoint(ckpt, format, tmp_path / f"{format}.pth"), weights_only=True)
        assert set(obj) == {"state_dict", "meta"}          # the layout mmengine's load_from / init_cfg read
        assert all(torch.equal(obj["state_dict"][prefix + k], v) for k, v in bare.items())


def test_safetensors_export_loads_into_torchvision_and_gives_the_encoder_features(ckpt, tmp_path):
    out = export_checkpoint(ckpt, "torchvision", tmp_path / "r18.safetensors")
    from safetensors.torch import load_file
    meta = read_export_metadata(out)
    net = torchvision.models.resnet18(norm_layer=partial(torch.nn.BatchNorm2d, eps=meta["image_bn_eps"]))
    missing, unexpected = net.load_state_dict(load_file(str(out)), strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    model = SimIPU(load_config("tiny").model)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    model.eval(), net.eval()
    x = torch.randn(1, 3, 64, 96)
    trunk = torch.nn.Sequential(*list(net.children())[:-2])
    assert torch.allclose(model.image_encoder(x), trunk(x), atol=1e-5)


@pytest.mark.parametrize("format, suffix", [("torchvision", ".pth"), ("torchvision", ".safetensors"),
                                            ("mmdet", ".pth"), ("mmdet3d-fusion", ".pth")])
def test_every_export_records_norm_arch_bn_eps_config_hash_steps_and_commit(ckpt, tmp_path, format, suffix):
    out = export_checkpoint(ckpt, format, tmp_path / f"x{suffix}")
    stored = torch.load(ckpt, weights_only=True)
    for meta in (read_export_metadata(out), read_model_card(out.with_suffix(".md"))):
        assert meta["format"] == format and meta["arch"] == ARCH
        assert meta["img_norm"] == stored["config"]["data"]["img_norm"] == "caffe_bgr"
        assert meta["image_bn_eps"] == stored["config"]["model"]["image_bn_eps"] == 1e-3
        assert meta["config_sha256"] == config_sha256(stored["config"]) and len(meta["config_sha256"]) == 64
        assert meta["steps"] == 7 and meta["commit"] == "0123abcd" * 5
        assert meta["data"]["root"] == "data_samples" and meta["source_checkpoint"] == ckpt.name


def test_a_checkpoint_older_than_img_norm_and_bn_eps_is_exported_as_imagenet_rgb_eps_1e5(ckpt, tmp_path):
    old = torch.load(ckpt, weights_only=True)
    del old["config"]["data"]["img_norm"], old["config"]["model"]["image_bn_eps"], old["commit"]
    path = save_checkpoint(old, tmp_path / "old", 3)
    meta = read_export_metadata(export_checkpoint(path, "mmdet", tmp_path / "old.pth"))
    assert meta["img_norm"] == "imagenet_rgb" and meta["image_bn_eps"] == 1e-5 and meta["commit"] == "unknown"


def test_model_card_gives_the_config_lines_that_load_each_format(ckpt, tmp_path):
    cards = {f: export_checkpoint(ckpt, f, tmp_path / f"{f}.pth").with_suffix(".md").read_text() for f in FORMATS}
    caffe = "mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0], to_rgb=False"
    assert "prefix='backbone.'" in cards["mmdet"] and caffe in cards["mmdet"]
    assert "img_backbone=dict(type='ResNet'" in cards["mmdet3d-fusion"] and "prefix='img_backbone.'" in cards["mmdet3d-fusion"]
    assert "load_from = 'mmdet3d-fusion.pth'" in cards["mmdet3d-fusion"]
    for card in cards.values():
        assert "style='pytorch'" in card and "eps=0.001" in card and "norm_eval=" in card
        # the released downstream setting (SyncBN eps 1e-5, frozen_stages=1) and the mmdet 2.11 caveat
        assert "eps 1e-5" in card and "frozen_stages=1" in card and "mmdet >= 2.12" in card
        config = yaml.safe_load(card.split("```yaml\n", 1)[1].split("```", 1)[0])
        assert config == torch.load(ckpt, weights_only=True)["config"]   # the whole training config
    assert "pretrained=dict(img='torchvision.pth')" in cards["torchvision"]


def test_mmdet_normalisation_of_each_mode_matches_the_training_pipeline():
    import numpy as np
    from simipu.pipeline import normalize_image
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    for mode in ("caffe_bgr", "imagenet_rgb"):
        n = mmdet_img_norm(mode)
        # mmdetection's Normalize: image read as BGR, optionally converted to RGB, then (x - mean) / std
        img = rgb[..., ::-1].astype(np.float64)
        if n["to_rgb"]:
            img = img[..., ::-1]
        ours = normalize_image(rgb, mode).astype(np.float64)
        assert np.allclose((img - n["mean"]) / n["std"], ours, atol=1e-4)


def test_export_refuses_safetensors_for_mmdet_and_unknown_suffixes_before_writing(ckpt, tmp_path, capsys):
    assert main(["export", str(ckpt), "--format", "mmdet", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "mmdetection reads torch checkpoints" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--out", str(tmp_path / "x.bin")]) == 2
    assert ".safetensors" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_export_writes_the_fusion_format_and_its_card(ckpt, tmp_path, capsys):
    out = tmp_path / "simipu_mvx.pth"
    assert main(["export", str(ckpt), "--format", "mmdet3d-fusion", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert out.is_file() and out.with_suffix(".md").is_file()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_loads_the_torchvision_export(ckpt, tmp_path, suffix):
    timm = pytest.importorskip("timm", reason="timm is not installed (optional: pip install timm)")
    out = export_checkpoint(ckpt, "torchvision", tmp_path / f"r18{suffix}")
    eps = read_export_metadata(out)["image_bn_eps"]
    net = timm.create_model(ARCH, pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(out)),
                            norm_layer=partial(torch.nn.BatchNorm2d, eps=eps))
    exported = _load_tensors(out)
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in exported.items())  # every tensor arrived
    model = SimIPU(load_config("tiny").model)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    model.eval(), net.eval()
    x = torch.randn(1, 3, 64, 96)
    assert torch.allclose(net.forward_features(x), model.image_encoder(x), atol=1e-5)


def test_readme_shows_the_load_lines_a_kitti_export_card_gives():
    """The README's config lines for a ResNet-50 `kitti` export are the ones its model card prints."""
    from pathlib import Path
    from simipu.modelcard import load_lines, normalisation_lines
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    kitti = load_config("kitti")
    meta = dict(arch=kitti.model.image_backbone, image_bn_eps=kitti.model.image_bn_eps, img_norm=kitti.data.img_norm)
    for format, file in (("mmdet", "simipu_r50_mmdet.pth"), ("mmdet3d-fusion", "simipu_r50_mvx.pth"),
                         ("torchvision", "simipu_r50.pth")):
        blocks = [b.split("```")[0].strip() for b in load_lines(format, file, meta).split("```python\n")[1:]]
        (config_block,) = [b for b in blocks if "init_cfg=" in b]
        assert config_block in readme, config_block
    norm = normalisation_lines(kitti.data.img_norm)
    assert norm.split("```python\n")[1].split("```")[0].strip() in readme
