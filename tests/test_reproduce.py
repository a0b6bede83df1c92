"""The registry of results rows and `ram-tf reproduce`: training, resuming,
collecting rows, listing them (the tables: test_tables.py)."""

import csv
import json
import os

import pytest
from click.testing import CliRunner
from helpers import logged_updates
from helpers import write_results_row

from ram_tf import config as config_lib
from ram_tf import experiments as registry
from ram_tf import reproduce as repro
from ram_tf_cli.main import cli


def test_ids_are_unique_and_every_row_resolves():
    ids = [e.id for e in registry.EXPERIMENTS]
    assert len(ids) == len(set(ids))
    for e in registry.EXPERIMENTS:
        cfg = e.config()
        assert (cfg.model, cfg.task, cfg.train.steps) == (e.model, e.task,
                                                          e.steps)
        assert e.id.split("-")[0].rstrip("0123456789") in (
            "ram", "dram", "ldram", "fc", "cnn")


def test_every_setting_changes_the_preset():
    # A setting equal to the preset would hide which rows really differ.
    for e in registry.EXPERIMENTS:
        preset = config_lib.resolve(e.model, e.task, {}).to_dict()
        for key, value in e.settings:
            group, field = key.split(".")
            assert preset[group][field] != value, (e.id, key)


def test_rows_carry_the_papers_settings_and_figures():
    # The published tables: Mnih et al. 2014 and the seed's README.
    ram8 = registry.get("ram8-cluttered100").config()
    assert (ram8.glimpse.num_glimpses, ram8.glimpse.num_scales,
            ram8.glimpse.size, ram8.data.max_distractors) == (8, 3, 12, 8)
    assert registry.get("ram8-cluttered100").published.seed == 2.68
    mnist = registry.get("ram6-mnist28").config()
    assert (mnist.glimpse.size, mnist.glimpse.num_scales) == (8, 1)
    p5 = registry.get("ldram6-cluttered100-p5")
    cfg = p5.config()
    assert (cfg.policy.label_fraction, cfg.policy.label_mask) == (
        0.05, "fixed")
    assert cfg.policy.location_loss_weight > 0 and p5.steps == 30_000
    assert p5.published.seed == 2.06
    dram = registry.get("dram6-cluttered100").config()
    assert (dram.core.core_layers, dram.glimpse.num_scales,
            dram.train.steps) == (2, 2, 100_000)
    assert registry.get("dram8-cluttered250").config().glimpse.size == 20
    # The long DRAM rows and RAM-8 on cluttered100 train as the seed does:
    # no stopped gradient, means 0.8 tanh, REINFORCE averaged over the T
    # glimpses.
    for row in ("dram6-cluttered100", "dram8-cluttered100",
                "dram6-cluttered60", "dram8-cluttered250",
                "ram8-cluttered100"):
        policy, glimpse = (registry.get(row).config().policy,
                           registry.get(row).config().glimpse)
        assert (policy.gradient_scope, policy.mean_bound) == ("all", 0.8)
        assert policy.reinforce_weight == pytest.approx(
            1 / glimpse.num_glimpses)
    # The label table's 0 % reference stays with its L-DRAM rows' policy.
    reference = registry.get("dram6-cluttered100-30k").config().policy
    assert (reference.gradient_scope, reference.mean_bound,
            reference.reinforce_weight) == ("critic", 1.0, 1.0)
    # RAM-6 on cluttered100 keeps the row it has: scope "all" alone.
    ram6 = registry.get("ram6-cluttered100").config().policy
    assert (ram6.gradient_scope, ram6.mean_bound,
            ram6.reinforce_weight) == ("all", 1.0, 1.0)
    fc = registry.get("fc64-translated60").config()
    assert (fc.model, fc.core.fc_units) == ("fc", 64)
    for e in registry.EXPERIMENTS:
        if e.model == "ram":
            assert e.steps == 60_000 and e.config().train.mc_samples == 10


def test_an_unknown_id_names_the_known_ones():
    with pytest.raises(registry.UnknownExperimentError,
                       match="ram6-cluttered60"):
        registry.get("ram6-cluttered61")
    result = CliRunner().invoke(cli, ["reproduce", "nope"])
    assert result.exit_code == 2
    assert "unknown experiment 'nope'" in result.output


def _log(workdir, updates):
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "log.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "updates", "val_accuracy"])
        for i, u in enumerate(updates):
            w.writerow([i, u, 0.5])


def test_status_of_missing_partial_training_done_and_other_settings(
        tmp_path):
    e = registry.get("ram6-cluttered60")
    results, runs = str(tmp_path / "results"), str(tmp_path / "runs")
    assert repro.status(e, runs, results).state == "missing"
    write_results_row(results, e, 30_000, **{"machine.backend": "gather",
                                             "machine.precision": "float32"})
    st = repro.status(e, runs, results)
    # Machine settings and the update count are not other settings.
    assert (st.state, st.updates) == ("partial", 30_000)
    _log(os.path.join(runs, e.id), [1000, 41_000])
    st = repro.status(e, runs, results)
    assert (st.state, st.updates, st.running) == ("training", 41_000,
                                                  41_000)
    write_results_row(results, e, 60_000)
    assert repro.status(e, runs, results).state == "done"
    write_results_row(results, e, 60_000, **{"policy.std": 0.2})
    st = repro.status(e, runs, results)
    assert st.state == "mismatch" and "policy.std" in st.detail


@pytest.mark.parametrize("content,message", [
    ('{"updates": 60000, "test_error_mc": "abc", '
     '"test_error_deterministic": 1.0}', "no number for test_error_mc"),
    ('{"updates": 600', "is not valid JSON"),
])
def test_a_damaged_results_json_is_named_by_list_and_table(
        tmp_path, content, message):
    e = registry.get("ram8-cluttered60")
    results = tmp_path / "results"
    write_results_row(str(results), e, 60_000)
    (results / e.id / "results.json").write_text(content)
    for args in (["--list"], ["--table"]):
        result = CliRunner().invoke(cli, ["reproduce", *args, "--results",
                                          str(results)])
        assert result.exit_code == 2, result.output
        assert os.path.join(e.id, "results.json") in result.output
        assert message in result.output


TINY = (("core.core_units", 16), ("core.glimpse_hidden", 8),
        ("core.glimpse_units", 16), ("core.location_hidden", 8),
        ("glimpse.num_glimpses", 3), ("train.batch_size", 8),
        ("train.mc_samples", 2), ("train.steps_per_epoch", 2))


@pytest.fixture
def tiny_registry(monkeypatch):
    e = registry.Experiment(
        id="ram3-mnist28-tiny", model="ram", task="mnist28", steps=4,
        title="tiny RAM", published=registry.Published(seed=50.0),
        settings=TINY)
    monkeypatch.setattr(registry, "EXPERIMENTS", (e,))
    monkeypatch.setattr(registry, "BY_ID", {e.id: e})
    return e


def test_reproduce_trains_copies_the_row_and_resumes(
        tiny_registry, mnist_dir, cache_dir, tmp_path):
    e = tiny_registry
    runs, results = str(tmp_path / "runs"), str(tmp_path / "results")
    args = ["reproduce", e.id, "--runs", runs, "--results", results,
            "--verbose", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    row = os.path.join(results, e.id)
    for name in ("results.json", "config.json", "log.csv", "curves.png"):
        assert os.path.exists(os.path.join(row, name)), name
    with open(os.path.join(row, "results.json")) as f:
        first = json.load(f)
    assert first["updates"] == 4 and first["test_images"] == 10_000
    with open(os.path.join(row, "config.json")) as f:
        assert registry.differences(e, json.load(f)) == []
    listing = CliRunner().invoke(cli, ["reproduce", "--list", "--runs",
                                       runs, "--results", results])
    assert e.id in listing.output and "done" in listing.output
    # --all has nothing left to train; the same id again keeps the row's
    # results as they were measured (no re-scoring on another machine).
    result = CliRunner().invoke(cli, ["reproduce", "--all", "--runs", runs,
                                      "--results", results, "--verbose",
                                      "0"])
    assert result.exit_code == 0, result.output
    assert "0 rows to train" in result.output
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with open(os.path.join(row, "results.json")) as f:
        again = json.load(f)
    assert again == first


def test_a_run_directory_of_other_settings_points_at_runs(tiny_registry,
                                                          tmp_path):
    e = tiny_registry
    runs = tmp_path / "runs"
    (runs / e.id).mkdir(parents=True)
    other = config_lib.resolve(e.model, e.task, {
        **dict(e.settings), "train.steps": e.steps, "policy.std": 0.3})
    (runs / e.id / "config.json").write_text(other.to_json())
    result = CliRunner().invoke(cli, ["reproduce", e.id, "--runs", str(runs),
                                      "--results", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "policy.std" in result.output
    assert "choose another --runs folder" in result.output
    assert "--workdir" not in result.output  # reproduce has no such option


def test_an_interrupted_row_continues_where_it_stopped(
        tiny_registry, mnist_dir, cache_dir, tmp_path, monkeypatch):
    e = tiny_registry
    runs, results = str(tmp_path / "runs"), str(tmp_path / "results")
    from ram_tf import training

    # The first attempt stops after half the budget (as a kill would).
    half = registry.Experiment(**{**e.__dict__, "steps": 2})
    training.train_and_evaluate(half.config(), os.path.join(runs, e.id),
                                verbose=0)
    assert repro.status(e, runs, results).running == 2
    result = CliRunner().invoke(cli, ["reproduce", "--all", "--runs", runs,
                                      "--results", results, "--verbose",
                                      "0"])
    assert result.exit_code == 0, result.output
    assert "1 rows to train" in result.output
    # The first epoch was not trained again.
    assert logged_updates(os.path.join(runs, e.id)) == [2, 4]
    assert repro.status(e, runs, results).state == "done"


def test_a_row_with_results_but_no_config_is_named_not_a_traceback(
        tmp_path):
    e = registry.get("ram8-cluttered60")
    results = tmp_path / "results"
    write_results_row(str(results), e, 60_000)
    os.remove(results / e.id / "config.json")
    result = CliRunner().invoke(cli, ["reproduce", "--list", "--results",
                                      str(results)])
    assert result.exit_code == 2
    assert f"{e.id} has results.json but no config.json" in result.output
