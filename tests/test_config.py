"""Presets, overrides, validation and the JSON round trip."""

import glob
import json
import os

import pytest

from ram_tf import config as config_lib


def test_every_task_resolves_with_its_paper_defaults():
    for task in config_lib.TASKS:
        config_lib.resolve("ram", task)
    m = config_lib.resolve("ram", "mnist28")
    assert (m.glimpse.size, m.glimpse.num_scales, m.glimpse.num_glimpses) \
        == (8, 1, 6)
    t = config_lib.resolve("ram", "translated60")
    assert (t.glimpse.size, t.glimpse.num_scales, t.data.canvas_size) == (
        12, 3, 60)
    c = config_lib.resolve("ram", "cluttered_var100")
    assert (c.data.min_distractors, c.data.max_distractors) == (4, 20)
    assert t.policy.std == 0.11 and t.train.mc_samples == 10


def test_overrides_apply_and_json_round_trips():
    cfg = config_lib.resolve("ram", "cluttered60", {
        "glimpse.num_scales": 2, "data.color": True, "train.steps": None})
    assert cfg.glimpse.num_scales == 2 and cfg.data.channels == 3
    assert cfg.train.steps == 60_000  # None means "not set"
    assert config_lib.ExperimentConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("overrides,match", [
    ({"glimpse.size": 0}, "glimpse.size"),
    ({"data.canvas_size": 20}, "data.canvas_size"),
    ({"train.mc_samples": 0}, "train.mc_samples"),
    ({"machine.backend": "extract_glimpse"}, "machine.xla"),
    ({"glimpse.wings": 2}, "unknown setting"),
    ({"core.context_resize": "nearest"}, "core.context_resize"),
    ({"train.seed": -1}, r"train.seed=-1 is invalid: a seed in \[0, 2\*\*32"),
    ({"data.seed": 2**32}, "data.seed"),
    ({"glimpse.size": "12"}, "glimpse.size='12' is invalid: must be an int"),
    ({"train.steps": True}, "train.steps=True is invalid: must be an integer"),
    ({"policy.std": "0.1"}, "policy.std='0.1' is invalid: must be a number"),
    ({"core.context_filters": (32, 1.5)}, "must be a list of integers"),
    ({"data.color": 1}, "data.color=1 is invalid: must be true or false"),
    ({"train.min_learning_rate": 0.1}, r"in \[0, train.learning_rate=0.001"),
    # 12 x 2^4 = 192 px > 2 x 60: beyond the canvas, only more padding.
    ({"glimpse.num_scales": 5}, "192 px, would exceed twice the 60 px canvas: "
                                "at most 4 scales of 12 px"),
])
def test_impossible_settings_are_refused(overrides, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        config_lib.resolve("ram", "translated60", overrides)


def test_scales_up_to_twice_the_canvas_are_allowed():
    config_lib.resolve("ram", "translated60", {"glimpse.num_scales": 4})


# config.json files of the layout before the machine group: the machine
# settings inside glimpse and train.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
def _old_layout(path):
    with open(path) as f:
        return "machine" not in json.load(f)


OLD_LAYOUT = sorted(filter(_old_layout, glob.glob(
    os.path.join(_REPO, "results", "*", "config.json"))
    + glob.glob(os.path.join(_REPO, "results", "studies", "*",
                             "config.json"))))
_OLD_PLACES = {("glimpse", "backend"): "backend", ("glimpse", "xla"): "xla",
               ("train", "precision"): "precision",
               ("train", "chains"): "chains",
               ("train", "jit_compile"): "jit_compile"}


@pytest.mark.parametrize("path", OLD_LAYOUT,
                         ids=lambda p: os.path.relpath(p, _REPO))
def test_old_layout_config_json_loads_into_machine(path):
    with open(path) as f:
        saved = json.load(f)
    assert "backend" in saved["glimpse"]
    cfg = config_lib.ExperimentConfig.from_dict(saved)
    for (group, field), name in _OLD_PLACES.items():
        default = getattr(config_lib.MachineConfig(), name)
        assert getattr(cfg.machine, name) == saved[group].get(field, default)
    new = cfg.to_dict()
    assert "backend" not in new["glimpse"] and "chains" not in new["train"]
    for group in config_lib.EXPERIMENT_GROUPS:  # nothing else moved
        for key, value in new[group].items():
            expected = saved[group].get(key, value)
            assert value == (tuple(expected) if isinstance(expected, list)
                             else expected), (group, key)
    assert config_lib.ExperimentConfig.from_json(cfg.to_json()) == cfg


def test_old_layout_rows_are_their_registry_rows():
    from ram_tf import experiments

    checked = 0
    for path in OLD_LAYOUT:
        row = os.path.basename(os.path.dirname(path))
        if row in experiments.BY_ID:
            with open(path) as f:
                assert experiments.differences(
                    experiments.get(row), json.load(f)) == [], row
            checked += 1
    assert checked >= 1


def test_a_dram_config_without_context_resize_resized_bilinearly():
    for model in ("dram", "ldram"):
        saved = config_lib.resolve(model, "cluttered100").to_dict()
        assert saved["core"].pop("context_resize") == "area"
        cfg = config_lib.ExperimentConfig.from_dict(saved)
        assert cfg.core.context_resize == "bilinear"
    saved = config_lib.resolve("ram", "cluttered100").to_dict()
    del saved["core"]["context_resize"]
    cfg = config_lib.ExperimentConfig.from_dict(saved)
    assert cfg.core.context_resize == "area"  # RAM has no context network


def test_config_text_that_is_not_json_is_a_config_error():
    with pytest.raises(config_lib.ConfigError, match="not JSON"):
        config_lib.ExperimentConfig.from_json("not json")


def test_building_or_training_what_is_not_a_valid_config_is_named(
        tmp_path):
    import dataclasses

    from ram_tf import training
    from ram_tf.builders import build_model

    for bad in ("ram", config_lib.resolve("ram", "mnist28").to_dict()):
        for run in (lambda: build_model(bad),
                    lambda: training.train_and_evaluate(bad, str(tmp_path))):
            with pytest.raises(config_lib.ConfigError,
                               match="expected an ExperimentConfig, e.g. "
                                     r"ram_tf\.config\.resolve"):
                run()
    nonsense = dataclasses.replace(config_lib.resolve("ram", "mnist28"),
                                   model="nonsense")
    with pytest.raises(config_lib.ConfigError, match="model='nonsense'"):
        build_model(nonsense)
    assert not os.listdir(tmp_path)


def test_old_override_keys_mean_the_machine_keys():
    old = config_lib.resolve("ram", "mnist28", {
        "glimpse.backend": "gather", "glimpse.xla": False,
        "train.precision": "float32", "train.chains": 3,
        "train.jit_compile": True})
    new = config_lib.resolve("ram", "mnist28", {
        "machine.backend": "gather", "machine.xla": False,
        "machine.precision": "float32", "machine.chains": 3,
        "machine.jit_compile": True})
    assert old == new and new.machine == config_lib.MachineConfig(
        "gather", False, "float32", 3, True)
    with pytest.raises(config_lib.ConfigError, match="machine.precision"):
        config_lib.resolve("ram", "mnist28", {"train.precision": "fp16"})
