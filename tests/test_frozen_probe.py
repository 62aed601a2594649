"""Frozen-encoder depth probe: the encoder never changes, features are computed once, seeds pair up."""
from __future__ import annotations

import math

import pytest
import torch

import simipu.frozen_probe as fp
from simipu.depth import METRICS, DepthNet, make_config
from simipu.depth_data import DepthDataset
from test_depth import make_depth_root

SMALL = dict(arch="resnet18", batch_size=2, decoder_width=32, image_size=(96, 64), progress=False)


def test_decode_of_features_is_forward():
    torch.manual_seed(0)
    net = DepthNet("resnet18", decoder_width=32).eval()
    image = torch.randn(2, 3, 64, 96)
    feats = net.features(image)
    assert [tuple(f.shape) for f in feats] == [(2, 64, 32, 48), (2, 64, 16, 24), (2, 128, 8, 12), (2, 256, 4, 6),
                                                (2, 512, 2, 3)]
    assert torch.equal(net.decode(feats, (64, 96)), net(image))


def test_cached_mirror_features_are_the_features_of_the_mirrored_image(tmp_path):
    root = make_depth_root(tmp_path / "root", size=(96, 64))
    torch.manual_seed(0)
    net = DepthNet("resnet18", decoder_width=32).eval()
    cache = fp.encode_split(net, DepthDataset(root, "train", image_size=(96, 64)), batch_size=2, flipped=True)
    index, flip = torch.tensor([2, 0]), torch.tensor([True, False])
    feats, depth = fp._batch(cache, index, flip, net)
    image = torch.stack([cache["image"][2].flip(-1), cache["image"][0]])
    with torch.no_grad():
        live = net.features(image)
    for got, want in zip(feats, live):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(depth[0], cache["depth"][2].flip(-1)) and torch.equal(depth[1], cache["depth"][0])


def test_training_the_decoder_leaves_the_encoder_and_its_bn_statistics_bit_identical(tmp_path):
    root = make_depth_root(tmp_path / "root", size=(96, 64))
    cfg = make_config(steps=3, seed=0, **SMALL)
    torch.manual_seed(0)
    net = DepthNet("resnet18", decoder_width=32)
    net.encoder.requires_grad_(False)
    net.encoder.eval()
    data = dict(image_size=(96, 64))
    train = fp.encode_split(net, DepthDataset(root, "train", **data), flipped=True)
    val = fp.encode_split(net, DepthDataset(root, "val", **data))
    encoder_before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("encoder.")}
    result = fp.train_decoder(net, train, val, cfg)
    assert all(torch.equal(v, net.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert any(not torch.equal(v, net.state_dict()[k]) for k, v in decoder_before.items())
    assert len(result["losses"]) == 3 and set(result["metrics"]) == set(METRICS)


def test_encoder_features_are_computed_once_for_all_seeds(tmp_path, monkeypatch):
    root = make_depth_root(tmp_path / "root", size=(96, 64))
    calls = []
    real = fp.encode_split
    monkeypatch.setattr(fp, "encode_split", lambda *a, **k: calls.append(1) or real(*a, **k))
    records = fp.run_frozen_probe(root, "scratch", seeds=[0, 1, 2], steps=2, **SMALL)
    assert len(calls) == 2  # train (with mirrors) and val, once each
    assert [r["seed"] for r in records] == [0, 1, 2]
    assert all(math.isfinite(v) for r in records for v in r["metrics"].values())


def test_same_seed_same_result_other_seed_other_result(tmp_path):
    root = make_depth_root(tmp_path / "root", size=(96, 64))
    a = fp.run_frozen_probe(root, "scratch", seeds=[0, 1], steps=3, **SMALL)
    b = fp.run_frozen_probe(root, "scratch", seeds=[0], steps=3, **SMALL)
    assert a[0]["losses"] == b[0]["losses"] and a[0]["metrics"] == b[0]["metrics"]
    assert a[0]["losses"] != a[1]["losses"]


def test_same_seed_gives_the_same_decoder_init_whatever_the_encoder(tmp_path):
    other = DepthNet("resnet18")
    torch.manual_seed(123)
    state = {k: (torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v)) if v.is_floating_point()
             else v for k, v in other.encoder.state_dict().items()}
    torch.save(state, tmp_path / "enc.pth")
    inits = []
    real = fp.train_decoder

    def spy(model, *a, **k):
        inits.append({n: p.clone() for n, p in model.named_parameters() if not n.startswith("encoder.")})
        return real(model, *a, **k)

    root = make_depth_root(tmp_path / "root", size=(96, 64))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fp, "train_decoder", spy)
        fp.run_frozen_probe(root, "scratch", seeds=[4], steps=1, **SMALL)
        fp.run_frozen_probe(root, str(tmp_path / "enc.pth"), seeds=[4], steps=1, **SMALL)
    assert inits[0].keys() == inits[1].keys()
    assert all(torch.equal(inits[0][k], inits[1][k]) for k in inits[0])
