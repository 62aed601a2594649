"""Typed configs: presets load, overrides apply, mistakes fail loudly and name the key."""
import pytest

from simipu.config import Config, config_from_dict, load_config, parse_overrides
from simipu.errors import ConfigError


@pytest.mark.parametrize("name", ["tiny", "kitti", "waymo"])
def test_presets_load_and_validate(name):
    cfg = load_config(name)
    assert isinstance(cfg, Config) and cfg.name == name


def test_kitti_preset_carries_the_papers_settings():
    cfg = load_config("kitti")
    p, o = cfg.model.point, cfg.optim
    assert cfg.data.num_points == 16384 and cfg.data.splits == ("train", "test")
    assert p.num_points == (4096, 1024, (512, 512)) and p.aggregation_channels[-1] == 1024
    assert p.fps_mods == (("D-FPS",), ("FS",), ("F-FPS", "D-FPS"))
    assert (o.image_lr, o.point_lr, o.point_betas, o.lr_decay) == (0.03, 1e-3, (0.95, 0.99), 0.99)
    assert cfg.train.epochs == 100 and cfg.train.batch_size == 4
    assert load_config("waymo").train.epochs == 10


def test_overrides_from_strings_and_keywords():
    cfg = load_config("tiny", ["train.max_steps=7", "model.matching=greedy", "data.scale_range=[0.9, 1.1]"],
                      model__lambda_intra=0.0)
    assert cfg.train.max_steps == 7 and cfg.model.matching == "greedy"
    assert cfg.data.scale_range == (0.9, 1.1) and cfg.model.lambda_intra == 0.0


@pytest.mark.parametrize("override, words", [
    (["train.maxsteps=3"], "unknown config key 'train.maxsteps'"),
    (["trian.max_steps=3"], "unknown config key 'trian'"),
    (["train.max_steps=abc"], "train.max_steps' must be an integer"),
    (["model.use_xyz=1"], "unknown config key 'model.use_xyz'"),
    (["model.point.use_xyz=1"], "model.point.use_xyz' must be true or false"),
    (["model.point.radii=[[-0.2, 0.4], [0.8, 1.6], [1.6, 3.2]]"], "radii[0] must be positive"),
    (["data.num_points=100"], "must fit the 100 points entering the layer"),
    (["model.matching=nearest"], "hungarian' or 'greedy'"),
    (["data.flip_prob=1.5"], "probability"),
    (["train.max_steps"], "section.key=value"),
])
def test_bad_config_values_are_refused_with_the_key_named(override, words):
    with pytest.raises(ConfigError) as e:
        load_config("tiny", override)
    assert words in str(e.value)


def test_unknown_preset_and_missing_file():
    with pytest.raises(ConfigError, match="unknown config preset 'huge'"):
        load_config("huge")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/cfg.yaml")


def test_config_round_trips_through_a_plain_dict():
    cfg = load_config("tiny", ["train.seed=3"])
    assert config_from_dict(cfg.to_dict()) == cfg


def test_yaml_values_are_parsed():
    assert parse_overrides(["a.b=1e-3", "a.c=[1, 2]", "d=x"]) == {"a": {"b": 1e-3, "c": [1, 2]}, "d": "x"}
