"""Learning curves and the updates-to-threshold table."""

import os

from click.testing import CliRunner

from ram_tf import plots
from ram_tf_cli.main import cli


def _run(tmp_path, name, accuracies):
    run = tmp_path / name
    run.mkdir()
    rows = ["epoch,updates,val_accuracy,cross_entropy"] + [
        f"{i},{1000 * (i + 1)},{a},{1 - a}" for i, a in enumerate(accuracies)]
    (run / "log.csv").write_text("\n".join(rows) + "\n")
    return str(run)


def test_updates_to_reach_reads_the_first_crossing(tmp_path):
    log = plots.read_log(os.path.join(
        _run(tmp_path, "a", [0.5, 0.91, 0.89, 0.96]), "log.csv"))
    assert plots.updates_to_reach(log, 0.9) == 2000
    assert plots.updates_to_reach(log, 0.95) == 4000
    assert plots.updates_to_reach(log, 0.99) is None


def test_curves_command_prints_speed_up_and_writes_png(tmp_path):
    slow = _run(tmp_path, "dram", [0.5, 0.7, 0.85, 0.92])
    fast = _run(tmp_path, "ldram", [0.6, 0.93, 0.95, 0.97])
    out = str(tmp_path / "c.png")
    result = CliRunner().invoke(cli, ["curves", slow, fast, "--out", out,
                                      "--threshold", "0.9"])
    assert result.exit_code == 0, result.output
    assert "dram: 4000 updates" in result.output
    assert "ldram: 2000 updates (speed-up x2.00 vs first run)" in \
        result.output
    assert open(out, "rb").read(4) == b"\x89PNG"


def test_curves_gives_a_lower_bound_when_the_first_run_is_short(tmp_path):
    slow = _run(tmp_path, "dram", [0.5, 0.7, 0.85])  # 3,000 updates, < 90 %
    fast = _run(tmp_path, "ldram", [0.93, 0.95, 0.97])
    result = CliRunner().invoke(cli, ["curves", slow, fast, "--out",
                                      str(tmp_path / "c.png"),
                                      "--threshold", "0.9"])
    assert result.exit_code == 0, result.output
    assert "dram: not reached in 3000" in result.output
    assert ("ldram: 1000 updates (speed-up > x3.00: the first run was not "
            "there after 3000)") in result.output
    # No bound when the first run had not even run as long.
    short = _run(tmp_path, "short", [0.5])
    result = CliRunner().invoke(cli, ["curves", short, fast, "--out",
                                      str(tmp_path / "d.png"),
                                      "--threshold", "0.9"])
    assert "ldram: 1000 updates\n" in result.output
