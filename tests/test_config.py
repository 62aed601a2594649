"""Typed configs: presets load, overrides apply, mistakes fail loudly and name the key."""
import re

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
    (["model.point.radii=[[-0.2, 0.4], [0.8, 1.6], [1.6, 3.2]]"], "'model.point.radii[0][0]' must be > 0"),
    (["model.point.radii=[[a, 0.4], [0.8, 1.6], [1.6, 3.2]]"], "'model.point.radii[0][0]' must be a number"),
    (["optim.lr_decay=-1"], "'optim.lr_decay' must be in (0, 1]"),
    (["optim.image_lr=.nan"], "'optim.image_lr' must be a finite number, got nan"),
    (["optim.point_lr=-0.1"], "'optim.point_lr' must be in [0, 1000]"),
    (["optim.image_lr=3e38"], "'optim.image_lr' must be in [0, 1000]"),
    (["model.temperature=.nan"], "'model.temperature' must be a finite number"),
    (["model.temperature=0"], "'model.temperature' must be > 0"),
    (["data.center=[35.2, .inf, -1]"], "'data.center[1]' must be a finite number"),
    (["optim.point_betas=[0.95, 1.5]"], "'optim.point_betas[1]' must be in [0, 1)"),
    (["optim.point_betas=[0.95]"], "'optim.point_betas' must be a list of 2 values"),
    (["train.log_every=0"], "'train.log_every' must be >= 1"),
    (["train.threads=-3"], "'train.threads' must be >= 0"),
    (["train.device=foo"], "'train.device' must be auto, cpu, cuda or cuda:N"),
    (["model.proj_dim=0"], "'model.proj_dim' must be >= 1"),
    (["model.point.num_points=[1024, 256, [128, x]]"], "'model.point.num_points[2][1]' must be an integer"),
    (["data.point_dims=3"], "'data.point_dims' must be >= 4"),
    (["model.point.in_channels=6"], "'model.point.in_channels' must be 4"),
    (["data.rot_range=[1, -1]"], "data.rot_range must be (lo, hi) with lo <= hi"),
    (["model.point.bn_eps=0"], "'model.point.bn_eps' must be > 0"),
    (["model.image_bn_eps=-1e-3"], "'model.image_bn_eps' must be > 0"),
    (["model.image_bn_momentum=1.5"], "'model.image_bn_momentum' must be in [0, 1]"),
    (["model.point.bn_momentum=.nan"], "'model.point.bn_momentum' must be a finite number"),
    (["optim.image_momentum=1"], "'optim.image_momentum' must be in [0, 1)"),
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


def _float_fields(cls, prefix=""):
    """Dotted keys of every field annotated ``float`` in a config dataclass and its sections."""
    import dataclasses
    import typing
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _float_fields(hints[f.name], f"{prefix}{f.name}.")
        elif hints[f.name] is float:
            yield prefix + f.name


@pytest.mark.parametrize("key", sorted(_float_fields(Config)))
def test_every_float_field_refuses_nan_and_inf_naming_its_key(key):
    for bad in (".nan", ".inf", "-.inf"):
        with pytest.raises(ConfigError, match=f"'{key}' must be a finite number"):
            load_config("tiny", [f"{key}={bad}"])


def test_a_new_float_field_is_checked_without_a_rule_of_its_own():
    import dataclasses

    from simipu.config import check_numbers
    Section = dataclasses.make_dataclass("Section", [("new_eps", float, 1e-5), ("new_rate", float, 0.1),
                                                     ("new_momentum", float, 0.9)])
    check_numbers(Section(), "model.")
    for values, words in [(dict(new_rate=float("nan")), "'model.new_rate' must be a finite number"),
                          (dict(new_rate=-1.0), "'model.new_rate' must be >= 0"),
                          (dict(new_eps=0.0), "'model.new_eps' must be > 0"),
                          (dict(new_momentum=1.0), "'model.new_momentum' must be in [0, 1)")]:
        with pytest.raises(ConfigError, match=re.escape(words)):
            check_numbers(Section(**values), "model.")


# 8 levels of 10 aliases: 10^8 values in under 500 bytes (anchors are defined before they are used)
BOMB = ("[&a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
        "&c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], "
        "&e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d], &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e], "
        "&g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f], &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]]")


def _peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_yaml_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    """A YAML file or an override whose aliases stand for 10^8 values: refused, memory does not grow."""
    path = tmp_path / "bomb.yaml"
    path.write_text(f"model:\n  point:\n    sa_channels: {BOMB}\n")
    assert path.stat().st_size < 600
    before = _peak_rss_mb()
    with pytest.raises(ConfigError, match="bomb.yaml: more than 100000 values once YAML aliases"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="override 'model.point.sa_channels': more than 100000 values"):
        load_config("tiny", ["model.point.sa_channels=" + BOMB])
    assert _peak_rss_mb() - before < 100


def test_too_deep_or_too_large_config_files_are_refused(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("model:\n  point:\n    sa_channels: " + "[" * 40 + "1" + "]" * 40 + "\n")
    with pytest.raises(ConfigError, match="nested deeper than 16 levels"):
        load_config(str(deep))
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="a config file may hold at most"):
        load_config(str(big))
