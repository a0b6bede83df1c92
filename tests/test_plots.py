"""Learning curves and the updates-to-threshold table."""

import os

import numpy as np
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


def test_speedup_says_whether_it_is_measured_or_a_bound(tmp_path):
    def log(name, accuracies):
        return plots.read_log(os.path.join(_run(tmp_path, name, accuracies),
                                           "log.csv"))
    slow = log("slow", [0.5, 0.6, 0.7, 0.91])         # 90 % at 4,000
    short = log("short", [0.5, 0.6, 0.7])             # never, 3,000 logged
    fast = log("fast", [0.5, 0.92])                   # 90 % at 2,000
    first = log("first", [0.95])                      # 90 % by 1,000
    assert plots.speedup(fast, slow, 0.9) == ("=", 2.0)
    assert plots.speedup(first, slow, 0.9) == (">=", 4.0)
    assert plots.speedup(fast, short, 0.9) == (">", 1.5)
    assert plots.speedup(fast, log("shorter", [0.5, 0.6]), 0.9) is None
    assert plots.speedup(short, slow, 0.9) is None


def test_curves_reads_a_log_with_a_repeated_header_and_a_cut_row(tmp_path):
    # What two trainers on one run (or a kill mid-write) leave behind.
    run = tmp_path / "twice"
    run.mkdir()
    (run / "log.csv").write_text(
        "epoch,updates,val_accuracy,cross_entropy\n"
        "0,1000,0.5,0.5\n"
        "epoch,updates,val_accuracy,cross_entropy\n"
        "1,2000,0.92,\n"
        "2,3000,0.9\n")
    log = plots.read_log(str(run / "log.csv"))
    assert list(log["updates"]) == [1000, 2000]
    assert log["val_accuracy"][1] == 0.92
    assert np.isnan(log["cross_entropy"][1])
    out = str(tmp_path / "c.png")
    result = CliRunner().invoke(cli, ["curves", str(run), "--out", out])
    assert result.exit_code == 0, result.output
    assert "twice: 2000 updates" in result.output


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
    with open(out, "rb") as f:
        assert f.read(4) == b"\x89PNG"


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


def test_curves_refuses_logs_without_curves_and_impossible_thresholds(
        tmp_path):
    # A KeyError, a NumPy error on no rows, an empty PNG, "500%".
    logs = {"no_val": "epoch,updates,loss\n0,1000,0.5\n",
            "header_only": "epoch,updates,val_accuracy\n", "empty": ""}
    for name, text in logs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.csv").write_text(text)
        result = CliRunner().invoke(cli, ["curves", str(tmp_path / name),
                                          "--out", str(tmp_path / "c.png")])
        assert result.exit_code == 2, result.output
        assert "has no rows of updates and val_accuracy" in result.output
    assert not (tmp_path / "c.png").exists()
    run = _run(tmp_path, "run", [0.5])
    for threshold in ("5", "-1", "0"):
        result = CliRunner().invoke(cli, ["curves", run, "--threshold",
                                          threshold])
        assert result.exit_code == 2
        assert "0<x<=1" in result.output


def test_curves_of_runs_with_one_folder_name_keeps_both(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _run(tmp_path / "a", "run", [0.5, 0.95])
    b = _run(tmp_path / "b", "run", [0.95])
    result = CliRunner().invoke(cli, ["curves", a, b, "--out",
                                      str(tmp_path / "c.png"),
                                      "--threshold", "0.9"])
    assert result.exit_code == 0, result.output
    assert f"{os.path.normpath(a)}: 2000 updates" in result.output
    assert f"{os.path.normpath(b)}: 1000 updates (speed-up" in result.output


def _batch(n=16, size=60):
    rng = np.random.default_rng(0)
    return {"image": rng.random((n, size, size, 1)),
            "label": np.arange(n) % 10,
            "location": np.zeros((n, 2)),
            "bbox": np.tile([0.2, 0.2, 0.6, 0.6], (n, 1))}


def test_data_grid_shows_every_label_above_its_own_image():
    import matplotlib.pyplot as plt

    fig = plots.example_grid_figure(_batch(16), title="cluttered60 (test)")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 16
    images = [ax.images[0].get_window_extent(renderer) for ax in shown]
    suptitle = fig._suptitle.get_window_extent(renderer)
    for i, ax in enumerate(shown):
        label = ax.title.get_window_extent(renderer)
        assert ax.title.get_text() == str(i % 10)
        for j, image in enumerate(images):
            assert not label.overlaps(image), (i, j)
        assert not suptitle.overlaps(label), i
    plt.close(fig)


def test_glimpse_plot_numbers_and_colours_the_steps():
    import matplotlib.pyplot as plt

    image = np.zeros((60, 60, 1))
    locations = np.array([[0, 0], [-0.3, 0.1], [0.1, 0.2], [0.2, -0.1]])
    fig = plots.glimpse_path_figure(image, locations, glimpse_size=8,
                                    num_scales=2)
    ax = fig.axes[0]
    numbers = [t.get_text() for t in ax.texts]
    assert numbers == ["1", "2", "3", "4"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["glimpse 1", "glimpse 2", "glimpse 3", "glimpse 4"]
    # Each step's two boxes share its colour; steps differ.
    colours = [tuple(p.get_edgecolor()) for p in ax.patches]
    assert len(colours) == 8 and len(set(colours)) == 4
    assert colours[0] == colours[1] and colours[1] != colours[2]
    plt.close(fig)


def test_one_point_learning_curve_is_visible(tmp_path):
    import matplotlib.pyplot as plt

    log = plots.read_log(os.path.join(_run(tmp_path, "one", [0.4]),
                                      "log.csv"))
    fig = plots.learning_curves_figure({"one": log})
    lines = fig.axes[0].get_lines()
    assert len(lines) == 1 and len(lines[0].get_xdata()) == 1
    assert lines[0].get_marker() not in (None, "None", "", " ")
    assert lines[0].get_markersize() >= 3
    plt.close(fig)
    out = tmp_path / "deep" / "er" / "one.png"  # folders created
    result = CliRunner().invoke(cli, ["curves", str(tmp_path / "one"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()
