"""Presets, overrides, validation and the JSON round trip."""

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
    ({"glimpse.backend": "extract_glimpse"}, "glimpse.xla"),
    ({"glimpse.wings": 2}, "unknown setting"),
])
def test_impossible_settings_are_refused(overrides, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        config_lib.resolve("ram", "translated60", overrides)
