"""The generated tables (`ram_tf.tables`): Wilson intervals, the results
and L-DRAM label tables, the README's copies of them, and
`ram-tf reproduce --table`."""

import csv
import json
import math
import os

import pytest
from click.testing import CliRunner
from helpers import write_results_row

from ram_tf import experiments as registry
from ram_tf import tables
from ram_tf_cli.main import cli

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def test_table_rows_show_errors_intervals_budget_and_hardware(tmp_path):
    e = registry.get("ram6-cluttered60")
    results = str(tmp_path / "results")
    write_results_row(results, e, 30_000)
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
    write_results_row(results_dir, e, e.steps)
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
    write_results_row(str(results), registry.get("ram8-cluttered60"), 60_000)
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
    write_results_row(str(tmp_path / "results"),
                      registry.get("ram8-cluttered60"), 60_000)
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
