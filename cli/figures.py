"""`ram-tf visualize` and `ram-tf curves`."""

from __future__ import annotations

import os

import click
import numpy as np

from ram_tf import config as config_lib
from ram_tf_cli.common import FIGURE_SUFFIXES
from ram_tf_cli.common import OutputPath
from ram_tf_cli.common import data_dir_option
from ram_tf_cli.common import fail
from ram_tf_cli.common import mnist_option
from ram_tf_cli.common import quiet_tensorflow


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--task", default=None,
              help="score another task's test canvases of the same size "
                   "[default: the model's task]")
@click.option("--n", "count", type=click.IntRange(1, 64), default=16,
              help="test images")
@click.option("--out", default="visualize", type=OutputPath(folder=True),
              help="output folder (created)")
@click.option("--sample", is_flag=True,
              help="stochastic rollouts instead of the policy mean")
@click.option("--seed", type=int, default=0, help="seed of --sample")
@mnist_option
@data_dir_option
def visualize(run, task, count, out, sample, seed, mnist_dir, data_dir):
    """Glimpse GIFs and a trajectory grid of a run or an exported model.

    RUN is a run directory or an exported SavedModel (version folder or
    model folder with MANIFEST.json).
    """
    quiet_tensorflow()
    from ram_tf import datasets
    from ram_tf import export
    from ram_tf import mnist
    from ram_tf import training
    from ram_tf import visualize as vis

    try:
        if os.path.exists(os.path.join(run, "config.json")):
            cfg, model = training.load_run(run)
        else:
            cfg, model = export.keras_from_export(run)
        data = cfg.data
        if task is not None:
            data = config_lib.resolve("ram", task).data
            if (data.canvas_size, data.channels) != (cfg.data.canvas_size,
                                                     cfg.data.channels):
                fail(f"task {task} has {data.canvas_size}x{data.canvas_size}"
                     f"x{data.channels} canvases; the model takes "
                     f"{cfg.data.canvas_size}x{cfg.data.canvas_size}x"
                     f"{cfg.data.channels}")
        arrays = datasets.fixed_arrays(data, "test", mnist_dir, data_dir)
    except (training.RunDirError, export.ExportError, FileNotFoundError,
            config_lib.ConfigError, mnist.MnistNotFoundError) as e:
        fail(str(e))
    os.makedirs(out, exist_ok=True)
    images = arrays["image"][:count].astype("float32") / 255.0
    labels = arrays["label"][:count]
    rolls = vis.rollouts(model, images, sample=sample, seed=seed)
    for i in range(count):
        path = os.path.join(out, f"glimpses_{i:02d}.gif")
        one = {k: v[i] for k, v in rolls.items()}
        vis.animation(images[i], one, labels[i], path,
                      bbox=arrays["bbox"][i], glimpse_size=cfg.glimpse.size)
    grid = os.path.join(out, "trajectories.png")
    vis.trajectory_grid(images, rolls, labels, grid)
    right = int((rolls["prediction"] == labels).sum())
    click.echo(f"{out}: {count} GIFs and {grid} ({right}/{count} right)")


@click.command()
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="curves.png", type=OutputPath(
              suffixes=FIGURE_SUFFIXES),
              help="PNG path (folders created)")
@click.option("--threshold", "thresholds", multiple=True,
              type=click.FloatRange(0, 1, min_open=True), default=(0.9, 0.95),
              help="validation accuracy thresholds, in (0, 1]")
def curves(runs, out, thresholds):
    """Learning curves of runs in one PNG; updates to reach thresholds."""
    from ram_tf import plots

    names = [os.path.basename(os.path.normpath(run)) for run in runs]
    if len(set(names)) < len(names):  # a/run and b/run: their paths
        names = [os.path.normpath(run) for run in runs]
    logs = {}
    for run, name in zip(runs, names):
        path = os.path.join(run, "log.csv")
        if not os.path.exists(path):
            fail(f"{run} has no log.csv (not a run directory)")
        log = plots.read_log(path)
        if not all(len(log.get(k, ())) for k in ("updates", "val_accuracy")):
            fail(f"{path} has no rows of updates and val_accuracy; expected "
                 "the log.csv of a run that finished an epoch")
        logs[name] = log
    plots.learning_curves(logs, out)
    click.echo(out)
    first_label, first_log = next(iter(logs.items()))
    for threshold in thresholds:
        for label, log in logs.items():
            reached = plots.updates_to_reach(log, threshold) if log else None
            text = ("not reached" if reached is None
                    else f"{reached:.0f} updates")
            if reached is None and log:
                text += f" in {np.nanmax(log['updates']):.0f}"
            found = (plots.speedup(log, first_log, threshold)
                     if label != first_label and log and first_log
                     else None)
            if found:
                relation, ratio = found
                text += {
                    "=": f" (speed-up x{ratio:.2f} vs first run)",
                    ">=": f" (speed-up >= x{ratio:.2f} vs first run: there "
                          "by its first log line)",
                    ">": f" (speed-up > x{ratio:.2f}: the first run was "
                         "not there after "
                         f"{np.nanmax(first_log['updates']):.0f})"}[relation]
            click.echo(f"val acc >= {threshold:.0%}: {label}: {text}")
