"""The pre-training engine: outputs, exact resume, SIGKILL, divergence, config mismatch, DDP, export."""
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

import torch
import torchvision

from simipu.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from simipu.config import ConfigError, load_config
from simipu.export import export_checkpoint
from simipu.model import SimIPU
from simipu.train import TrainingDiverged, auto_threads, launch, parameter_sha256, pretrain

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
# Small and fast, same code path as the README's main job.
FAST = ["data.num_workers=0", "data.img_scale_range=[[320, 97], [352, 106]]", "train.threads=2"]


def _cfg(tmp_path, *extra, name="tiny"):
    return load_config(name, [f"data.root={SAMPLES}", f"train.out={tmp_path}", *FAST, *extra])


def test_tiny_run_leaves_checkpoint_backbone_logs_curve_and_summary(tmp_path):
    threads = torch.get_num_threads()
    summary = pretrain(_cfg(tmp_path, "train.max_steps=3", "train.threads=1"), progress=False)
    assert torch.get_num_threads() == threads  # the caller's thread count is restored
    assert summary["steps"] == 3
    assert list_checkpoints(tmp_path)
    assert (tmp_path / "backbone_torchvision.pth").is_file()
    assert (tmp_path / "loss_curve.png").stat().st_size > 10_000
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["steps"] == 3 and all(torch.isfinite(torch.tensor(v)) for v in saved["last10_mean"].values())


def test_resume_continues_exactly(tmp_path):
    n = 3
    straight = pretrain(_cfg(tmp_path / "a", f"train.max_steps={2 * n}", "train.ckpt_every=1"), progress=False)
    pretrain(_cfg(tmp_path / "b", f"train.max_steps={n}", "train.ckpt_every=1"), progress=False)
    resumed = pretrain(_cfg(tmp_path / "b", f"train.max_steps={2 * n}", "train.ckpt_every=1"),
                       resume=True, progress=False)
    assert resumed["steps"] == straight["steps"] == 2 * n
    a = load_checkpoint(list_checkpoints(tmp_path / "a")[-1])
    b = load_checkpoint(list_checkpoints(tmp_path / "b")[-1])
    losses_a = [r["loss"] for r in a["history"]]
    losses_b = [r["loss"] for r in b["history"]]
    assert losses_a == pytest.approx(losses_b, abs=1e-6)
    for k, v in a["model"].items():
        assert torch.allclose(v.double(), b["model"][k].double(), atol=1e-6, rtol=0), k


def test_sigkilled_run_resumes_from_its_last_checkpoint(tmp_path):
    cmd = [sys.executable, "-m", "simipu", "pretrain", "--config", "tiny", "--data-root", str(SAMPLES),
           "--out", str(tmp_path), "--no-progress", "train.ckpt_every=1", "train.max_steps=1000", *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(list_checkpoints(tmp_path)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list_checkpoints(tmp_path)
    assert len(done) >= 2, "the run did not write two checkpoints before the deadline"
    last_step = load_checkpoint(done[-1])["step"]  # readable: never half-written
    summary = pretrain(_cfg(tmp_path, f"train.max_steps={last_step + 2}"), resume=True, progress=False)
    assert summary["steps"] == last_step + 2


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_forward = SimIPU.forward
    calls = {"n": 0}

    def forward(self, batch):
        out = real_forward(self, batch)
        calls["n"] += 1
        if calls["n"] == 3:
            out["loss"] = out["loss"] * float("nan")
        return out
    monkeypatch.setattr(SimIPU, "forward", forward)
    with pytest.raises(TrainingDiverged, match=r"step 3: loss is nan.*last good checkpoint is kept"):
        pretrain(_cfg(tmp_path, "train.max_steps=5", "train.ckpt_every=1"), progress=False)
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(tmp_path)] == [1, 2]


def test_resuming_with_another_model_config_is_a_clear_error(tmp_path):
    pretrain(_cfg(tmp_path, "train.max_steps=1"), progress=False)
    with pytest.raises(CheckpointError, match="does not fit this model.*image_backbone"):
        pretrain(_cfg(tmp_path, "train.max_steps=2", "model.image_backbone=resnet34"), resume=True,
                 progress=False)


def test_exported_backbone_loads_into_torchvision_and_computes_the_same_features(tmp_path):
    pretrain(_cfg(tmp_path, "train.max_steps=1"), progress=False)
    ckpt = list_checkpoints(tmp_path)[-1]
    state = torch.load(export_checkpoint(ckpt, "torchvision", tmp_path / "r18.pth"), weights_only=True)
    # the released BN eps (1e-3) is part of the model: build the torchvision net with it (the export records it)
    net = torchvision.models.resnet18(norm_layer=partial(torch.nn.BatchNorm2d, eps=load_config("tiny").model.image_bn_eps))
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    model = SimIPU(load_config("tiny").model)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    model.eval(), net.eval()
    x = torch.randn(1, 3, 96, 320)
    trunk = torch.nn.Sequential(*list(net.children())[:-2])
    assert torch.allclose(model.image_encoder(x), trunk(x), atol=1e-5)
    mm = torch.load(export_checkpoint(ckpt, "mmdet", tmp_path / "mm.pth"), weights_only=True)
    assert set(mm["state_dict"]) == {f"backbone.{k}" for k in state}


def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    cfg = _cfg(tmp_path, "train.max_steps=2", "train.threads=1")
    launch(cfg, nproc=2, stream=open(os.devnull, "w"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    hashes = summary["rank_param_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    torch.manual_seed(cfg.train.seed)
    assert hashes[0] != parameter_sha256(SimIPU(cfg.model)), "parameters did not change in training"


NAN_ON_RANK_1 = """
import os, sys
from pathlib import Path
from simipu.config import load_config
from simipu.model import SimIPU
from simipu.train import TrainingDiverged, pretrain

real_forward, calls = SimIPU.forward, [0]


def forward(self, batch):  # rank 1 only: the loss of its second step is NaN
    out = real_forward(self, batch)
    calls[0] += 1
    if os.environ["RANK"] == "1" and calls[0] == 2:
        out["loss"] = out["loss"] * float("nan")
    return out


SimIPU.forward = forward
cfg = load_config(sys.argv[1], sys.argv[3:])
try:
    pretrain(cfg, progress=False)
except TrainingDiverged as e:
    (Path(sys.argv[2]) / f"rank{os.environ['RANK']}.txt").write_text(str(e))
"""


def _two_ranks(tmp_path, script_text: str, steps: int) -> None:
    """Run ``script_text`` (argv: preset, tmp_path, overrides) as 2 gloo ranks of ``tiny`` on data_samples."""
    script = tmp_path / "rank_script.py"
    script.write_text(script_text)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           "tiny", str(tmp_path), f"data.root={SAMPLES}", f"train.out={tmp_path / 'run'}", *FAST,
           "train.threads=1", f"train.max_steps={steps}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_nan_on_one_ddp_rank_stops_every_rank(tmp_path):
    """Without an all-reduced finite flag the healthy rank would block in backward until torchrun kills it."""
    _two_ranks(tmp_path, NAN_ON_RANK_1, steps=4)
    assert "step 2: loss is nan" in (tmp_path / "rank1.txt").read_text()
    assert "step 2: loss is finite on rank 0 but not on another rank" in (tmp_path / "rank0.txt").read_text()


NO_PAIRS_ON_RANK_1 = """
import json, os, sys
from pathlib import Path
from simipu.config import load_config
from simipu.model import SimIPU
from simipu.train import pretrain

real_forward, rows = SimIPU.forward, []


def forward(self, batch):  # rank 1 only: no point projects into the image, so L_inter has < 2 pairs
    if os.environ["RANK"] == "1":
        batch = dict(batch, image_hw=batch["image_hw"] * 0)
    out = real_forward(self, batch)
    rows.append({k: float(v.detach()) for k, v in out.items()})
    return out


SimIPU.forward = forward
cfg = load_config(sys.argv[1], sys.argv[3:])
pretrain(cfg, progress=False)
(Path(sys.argv[2]) / f"rank{os.environ['RANK']}.json").write_text(json.dumps(rows))
"""


def test_ddp_rank_without_pairs_still_trains_and_logged_metrics_are_over_all_ranks(tmp_path):
    """A rank with < 2 inter-modal pairs must give every head parameter a (zero) gradient, or DDP's
    all-reduce fails; the logged step metrics are the mean over ranks (inter_valid: the sum)."""
    _two_ranks(tmp_path, NO_PAIRS_ON_RANK_1, steps=2)
    local = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(local[0]) == len(local[1]) == 2 and all(row["inter_valid"] == 0 for row in local[1])
    assert all(row["inter_valid"] > 0 for row in local[0])
    logged = json.loads((tmp_path / "run" / "summary.json").read_text())["first"]
    for key in ("loss", "loss_intra", "intra_top1", "inter_top1"):
        assert logged[key] == pytest.approx((local[0][0][key] + local[1][0][key]) / 2, rel=1e-6), key
    assert logged["inter_valid"] == local[0][0]["inter_valid"] + local[1][0]["inter_valid"]


def test_auto_threads_leave_a_core_to_each_data_worker():
    default = torch.get_num_threads()
    assert auto_threads(1, cores=2) == 1
    assert auto_threads(0, cores=64) == default  # never more than torch's own default
    assert auto_threads(4, cores=2) == 1  # at least one
    assert auto_threads(2, cores=default + 2) == default


def test_process_group_backend_is_nccl_on_cuda_gloo_on_cpu_unless_asked():
    from simipu.train import dist_backend
    assert dist_backend(torch.device("cuda", 0)) == "nccl" and dist_backend(torch.device("cpu")) == "gloo"
    assert dist_backend(torch.device("cuda", 0), "gloo") == "gloo"   # two processes sharing one GPU
    with pytest.raises(ConfigError, match="train.dist_backend must be auto, nccl or gloo"):
        load_config("tiny", ["train.dist_backend=mpi"])
