"""The registry of results rows, `ram-tf reproduce`, the generated table."""

import csv
import json
import math
import os

import pytest
from click.testing import CliRunner
from helpers import logged_updates

from ram_tf import config as config_lib
from ram_tf import experiments as registry
from ram_tf import reproduce as repro
from ram_tf import tables
from ram_tf_cli.main import cli

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def test_wilson_interval_solves_the_score_equation():
    # The endpoints are the p with (p_hat - p)^2 = z^2 p (1 - p) / n.
    z, n = 1.96, 10_000
    for error in (0.5, 1.12, 4.33, 18.15):
        lo, hi = tables.wilson_interval(error, n)
        assert lo < error < hi
        for bound in (lo / 100, hi / 100):
            lhs = (error / 100 - bound) ** 2
            rhs = z * z * bound * (1 - bound) / n
            assert math.isclose(lhs, rhs, rel_tol=1e-9)
    # About +-0.21 points at 1.2 % on 10,000 images.
    lo, hi = tables.wilson_interval(1.2, n)
    assert 0.4 < hi - lo < 0.44


def _write_row(results_dir, experiment, updates, **config_overrides):
    row = os.path.join(results_dir, experiment.id)
    os.makedirs(row, exist_ok=True)
    cfg = config_lib.resolve(experiment.model, experiment.task, {
        **dict(experiment.settings), "train.steps": updates,
        **config_overrides}).to_dict()
    with open(os.path.join(row, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(row, "results.json"), "w") as f:
        json.dump({"updates": updates, "train_seconds": 7200.0,
                   "test_error_mc": 3.5, "test_error_deterministic": 5.0,
                   "test_images": 10_000, "model": experiment.model,
                   "precision": "float32",
                   "hardware": {"cpu_count": 2, "machine": "x86_64",
                                "gpus": 0}}, f)


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
    _write_row(results, e, 30_000, **{"machine.backend": "gather",
                                      "machine.precision": "float32"})
    st = repro.status(e, runs, results)
    # Machine settings and the update count are not other settings.
    assert (st.state, st.updates) == ("partial", 30_000)
    _log(os.path.join(runs, e.id), [1000, 41_000])
    st = repro.status(e, runs, results)
    assert (st.state, st.updates, st.running) == ("training", 41_000,
                                                  41_000)
    _write_row(results, e, 60_000)
    assert repro.status(e, runs, results).state == "done"
    _write_row(results, e, 60_000, **{"policy.std": 0.2})
    st = repro.status(e, runs, results)
    assert st.state == "mismatch" and "policy.std" in st.detail


def test_table_rows_show_errors_intervals_budget_and_hardware(tmp_path):
    e = registry.get("ram6-cluttered60")
    results = str(tmp_path / "results")
    _write_row(results, e, 30_000)
    table = tables.results_table(results)
    lines = table.splitlines()
    assert len(lines) == 2 + len(registry.EXPERIMENTS)
    row = next(line for line in lines if f"| {e.id} |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    by = dict(zip(tables.TABLE_COLUMNS, cells))
    lo, hi = tables.wilson_interval(3.5, 10_000)
    # 3.50 <= the seed's 3.75: bold.
    assert by["M=10 (95 % CI)"] == f"**3.50 ({lo:.2f}-{hi:.2f})**"
    assert by["updates"] == "30,000 of 60,000"
    assert by["hours"] == "2.0"
    assert by["hardware"] == "2-core x86_64 CPU, fp32"
    assert (by["NIPS"], by["seed"]) == ("4.08", "3.75")
    # By hand, multiply-adds per glimpse: glimpse network 432 x 128 +
    # 2 x 128 + 2 x 128 x 256, LSTM 512 x 1024; 6 glimpses, 5 location and
    # baseline actions (256 x 3), the classifier (256 x 10): 3,878,656,
    # 7.76 MFLOPs.
    assert by["MFLOPs"] == "7.8"
    missing = next(line for line in lines if "| ram8-cluttered60 |" in line)
    assert "| - | - | - |" in missing


def test_readme_table_is_the_generated_one():
    with open(os.path.join(_REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    generated = tables.results_table(os.path.join(_REPO, "results"))
    assert tables.table_in(readme) == generated, (
        "README.md's results table differs from results/: run "
        "`ram-tf reproduce --table --readme README.md`")


def test_readme_label_table_is_the_generated_one():
    with open(os.path.join(_REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    generated = tables.label_table(os.path.join(_REPO, "results"))
    assert tables.table_in(readme, tables.LABELS) == generated, (
        "README.md's L-DRAM label table differs from results/: run "
        "`ram-tf reproduce --table --readme README.md`")


def _label_row(results_dir, experiment_id, accuracies, error=2.5):
    """A results row whose log has one validation per 1,000 updates."""
    e = registry.get(experiment_id)
    _write_row(results_dir, e, e.steps)
    row = os.path.join(results_dir, e.id)
    with open(os.path.join(row, "results.json")) as f:
        results = json.load(f)
    results["test_error_mc"] = error
    with open(os.path.join(row, "results.json"), "w") as f:
        json.dump(results, f)
    with open(os.path.join(row, "log.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "updates", "val_accuracy"])
        for i, a in enumerate(accuracies):
            w.writerow([i, 1000 * (i + 1), a])


def test_label_table_counts_updates_to_each_accuracy_and_speed_ups(
        tmp_path):
    results = str(tmp_path / "results")
    # DRAM: 80 % at 6,000, never 90 % in 8,000 logged updates.
    _label_row(results, "dram6-cluttered100-30k",
               [0.3, 0.5, 0.6, 0.7, 0.75, 0.81, 0.85, 0.88], error=7.0)
    # 1 %: 80 % at 2,000 (x3), 90 % at 4,000 (> 8,000 / 4,000), never 95 %.
    _label_row(results, "ldram6-cluttered100-p1",
               [0.7, 0.82, 0.85, 0.91, 0.93])
    # 50 %: past 80 % and 90 % by its first validation, 95 % at 3,000.
    _label_row(results, "ldram6-cluttered100-p50", [0.92, 0.94, 0.96],
               error=1.9)
    lines = tables.label_table(results).splitlines()
    columns = tables.label_columns()
    assert len(columns) == 10 and len(lines) == 2 + len(registry.LABEL_TABLE)
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[1]] = cells
    dram = rows["dram6-cluttered100-30k"]
    assert dram[0] == "0 % (DRAM)" and dram[2].startswith("7.00 (")
    assert dram[4:] == ["6,000", "x1.0", "not in 8,000", "-",
                        "not in 8,000", "-"]
    p1 = rows["ldram6-cluttered100-p1"]
    # 2.50 <= the seed's 2.59: bold.
    assert (p1[0], p1[3]) == ("1 %", "2.59") and p1[2].startswith("**2.50")
    assert p1[4:] == ["2,000", "x3.0", "4,000", "> x2.0", "not in 5,000",
                      "-"]
    p50 = rows["ldram6-cluttered100-p50"]
    assert p50[4:] == ["<= 1,000", ">= x6.0", "<= 1,000", "> x8.0",
                       "3,000", "> x2.7"]
    assert rows["ldram6-cluttered100-p5"][2:] == ["-", "2.06"] + ["-"] * 6


def test_table_command_writes_both_tables_between_their_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# x\n\n{tables.RESULTS.begin}\nold\n{tables.RESULTS.end}\n\n"
        f"{tables.LABELS.begin}\nold too\n{tables.LABELS.end}\nafter\n")
    results = tmp_path / "results"
    _write_row(str(results), registry.get("ram8-cluttered60"), 60_000)
    result = CliRunner().invoke(cli, ["reproduce", "--table", "--readme",
                                      str(readme), "--results",
                                      str(results)])
    assert result.exit_code == 0, result.output
    assert "| **3.50 (3.16-3.88)** |" in readme.read_text()
    text = readme.read_text()
    assert "old" not in text and text.endswith("after\n")
    assert tables.table_in(text) == tables.results_table(str(results))
    assert tables.table_in(text, tables.LABELS) == tables.label_table(
        str(results))


def test_table_command_names_the_markers_a_readme_lacks(tmp_path):
    readme = tmp_path / "README.md"
    text = f"{tables.RESULTS.begin}\n{tables.RESULTS.end}\n"
    readme.write_text(text)
    _write_row(str(tmp_path / "results"), registry.get("ram8-cluttered60"),
               60_000)
    result = CliRunner().invoke(cli, ["reproduce", "--table", "--readme",
                                      str(readme), "--results",
                                      str(tmp_path / "results")])
    assert result.exit_code != 0
    assert "L-DRAM label table" in result.output
    assert readme.read_text() == text  # nothing half-written


@pytest.mark.parametrize("results", ["missing", "a_file", "empty"])
def test_table_command_refuses_results_without_rows_leaving_the_readme(
        tmp_path, results):
    # A mistyped --results once wrote a table of dashes over every number.
    readme = tmp_path / "README.md"
    text = (f"{tables.RESULTS.begin}\n| 1.12 |\n{tables.RESULTS.end}\n"
            f"{tables.LABELS.begin}\n{tables.LABELS.end}\n")
    readme.write_text(text)
    path = tmp_path / results
    if results == "a_file":
        path.write_text("x")
    elif results == "empty":
        path.mkdir()
    result = CliRunner().invoke(cli, ["reproduce", "--table", "--readme",
                                      str(readme), "--results", str(path)])
    assert result.exit_code == 2
    assert ("is a file; expected a folder" if results == "a_file"
            else "holds no results row") in result.output
    assert readme.read_text() == text


@pytest.mark.parametrize("content,message", [
    ('{"updates": 60000, "test_error_mc": "abc", '
     '"test_error_deterministic": 1.0}', "no number for test_error_mc"),
    ('{"updates": 600', "is not valid JSON"),
])
def test_a_damaged_results_json_is_named_by_list_and_table(
        tmp_path, content, message):
    e = registry.get("ram8-cluttered60")
    results = tmp_path / "results"
    _write_row(str(results), e, 60_000)
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
    _write_row(str(results), e, 60_000)
    os.remove(results / e.id / "config.json")
    result = CliRunner().invoke(cli, ["reproduce", "--list", "--results",
                                      str(results)])
    assert result.exit_code == 2
    assert f"{e.id} has results.json but no config.json" in result.output
