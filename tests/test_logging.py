"""TensorBoard gets pictures people look at: the point-to-pixel and matched-pair figures of a fixed held-out
frame every N steps, and the run's hyper-parameters; drawing them does not change training."""
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from simipu.config import load_config
from simipu.train import pretrain

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


def _cfg(tmp_path, *extra):
    return load_config("tiny", [f"data.root={SAMPLES}", f"train.out={tmp_path}", "data.num_workers=1",
                                "data.img_scale_range=[[320, 97], [352, 106]]", "train.threads=1", *extra])


def _events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _decoded(acc, tag):
    import io

    from PIL import Image
    return [np.asarray(Image.open(io.BytesIO(e.encoded_image_string))) for e in acc.Images(tag)]


def test_figures_of_the_held_out_frame_are_logged_every_n_steps_and_at_the_end(tmp_path):
    pretrain(_cfg(tmp_path, "train.max_steps=5", "train.image_every=2"), progress=False)
    acc = _events(tmp_path)
    for tag in ("heldout/point_to_pixel", "heldout/matched_pairs"):
        assert [e.step for e in acc.Images(tag)] == [2, 4, 5]
        first, last = _decoded(acc, tag)[0], _decoded(acc, tag)[-1]
        assert first.shape[0] > 300 and first.shape[1] > 500   # readable size
        assert first.std() > 10                                 # a picture, not a blank canvas
        if tag == "heldout/point_to_pixel":
            assert not np.array_equal(first, last)              # learned similarities moved


def test_hyper_parameters_and_final_metrics_are_in_the_hparams_tab(tmp_path):
    pretrain(_cfg(tmp_path, "train.max_steps=2", "train.image_every=0"), progress=False)
    from tensorboard.plugins.hparams import plugin_data_pb2
    acc = _events(tmp_path)
    content = acc.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = session.session_start_info.hparams
    assert hp["model.image_backbone"].string_value == "resnet18"
    assert hp["data.img_norm"].string_value == "caffe_bgr"
    assert hp["train.max_steps"].number_value == 2
    assert "final/loss" in acc.Tags()["scalars"]
    assert acc.Tags()["images"] == []                          # train.image_every=0: no figures


def test_drawing_figures_does_not_change_the_trained_weights(tmp_path):
    with_figs = pretrain(_cfg(tmp_path / "a", "train.max_steps=3", "train.image_every=1"), progress=False)
    without = pretrain(_cfg(tmp_path / "b", "train.max_steps=3", "train.image_every=0"), progress=False)
    assert with_figs["rank_param_sha256"] == without["rank_param_sha256"]


def test_a_root_without_a_val_split_logs_its_first_training_frame(tmp_path):
    root = tmp_path / "root"
    (root / "ImageSets").mkdir(parents=True)
    (root / "training").symlink_to(SAMPLES / "training")
    (root / "ImageSets" / "train.txt").write_text((SAMPLES / "ImageSets" / "train.txt").read_text())
    pretrain(_cfg(tmp_path / "run", f"data.root={root}", "train.max_steps=2", "train.image_every=2"), progress=False)
    acc = _events(tmp_path / "run")
    assert [e.step for e in acc.Images("train_frame/matched_pairs")] == [2]
    with pytest.raises(KeyError):
        acc.Images("heldout/matched_pairs")


def test_wandb_logger_records_scalars_figures_config_and_resumes_the_same_run_offline(tmp_path, monkeypatch,
                                                                                     request):
    wandb = pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install 'simipu[wandb]')")
    request.addfinalizer(wandb.teardown)   # wandb keeps its service process (wandb-core) until teardown
    for var, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"), ("WANDB_CONFIG_DIR", tmp_path / "cfg"),
                       ("WANDB_CACHE_DIR", tmp_path / "cache"), ("WANDB_DATA_DIR", tmp_path / "data")):
        monkeypatch.setenv(var, str(value))
    run = tmp_path / "run"
    extra = ("train.logger=wandb", "train.image_every=2", "train.log_every=1", "train.ckpt_every=1")
    pretrain(_cfg(run, "train.max_steps=2", *extra), progress=False)
    run_id = (run / "wandb_run_id.txt").read_text().strip()
    (first,) = (run / "wandb").glob(f"offline-run-*-{run_id}")
    log = (first / f"run-{run_id}.wandb").read_bytes()  # W&B's record log: keys are stored as plain text
    for key in (b"train/loss", b"train/inter_top1", b"lr/image", b"image_backbone", b"final/loss"):
        assert key in log, key
    images = sorted(p.relative_to(first / "files" / "media" / "images").as_posix()
                    for p in (first / "files" / "media" / "images").rglob("*.png"))
    assert [p.split("_2_")[0] for p in images] == ["heldout/matched_pairs", "heldout/point_to_pixel"]
    assert _events(run).Images("heldout/matched_pairs")  # TensorBoard keeps its copy
    pretrain(_cfg(run, "train.max_steps=3", *extra), resume=True, progress=False)
    assert len(list((run / "wandb").glob(f"offline-run-*-{run_id}"))) == 2  # the same run id, continued


def test_unknown_logger_is_a_config_error():
    from simipu.errors import ConfigError
    with pytest.raises(ConfigError, match="train.logger must be tensorboard or wandb"):
        load_config("tiny", ["train.logger=mlflow"])
