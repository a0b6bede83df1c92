"""`ram-tf reproduce`: the published results rows, by name."""

from __future__ import annotations

import dataclasses
import os

import click

from ram_tf import config as config_lib
from ram_tf import experiments as registry
from ram_tf import reproduce as repro
from ram_tf import runtime
from ram_tf import tables
from ram_tf_cli.common import FIELD_OF
from ram_tf_cli.common import GroupedCommand
from ram_tf_cli.common import data_dir_option
from ram_tf_cli.common import echo_library_messages
from ram_tf_cli.common import error_summary
from ram_tf_cli.common import fail
from ram_tf_cli.common import grouped_options
from ram_tf_cli.common import mnist_option
from ram_tf_cli.common import quiet_tensorflow


@click.command(cls=GroupedCommand)
@click.argument("ids", nargs=-1)
@click.option("--all", "run_all", is_flag=True,
              help="train every row not done yet, one after the other")
@click.option("--list", "show_list", is_flag=True,
              help="every row with its state, updates and errors")
@click.option("--table", "show_table", is_flag=True,
              help="print the Markdown results table and the L-DRAM label "
                   "table built from RESULTS")
@click.option("--readme", type=click.Path(dir_okay=False, exists=True),
              default=None,
              help="with --table: write the tables into this file, each "
                   "between its markers")
@click.option("--runs", "runs_dir", default="runs", show_default=True,
              help="folder of the run directories (checkpoints)")
@click.option("--results", "results_dir", default="results",
              show_default=True,
              help="folder of the results rows (results.json, config.json, "
                   "log.csv, curves.png per row)")
@grouped_options("machine")
@mnist_option
@data_dir_option
@click.option("--verbose", type=click.IntRange(0, 2), default=2,
              help="1: progress bar, 2: one line per epoch")
def reproduce(ids, run_all, show_list, show_table, readme, runs_dir,
              results_dir, mnist_dir, data_dir, verbose, **machine):
    """Train, resume or show the published results rows by id.

    `ram-tf reproduce ram6-cluttered60` trains that row with exactly the
    registry's settings in RUNS/ram6-cluttered60 (running it again
    resumes), scores it and copies its results to RESULTS/ram6-cluttered60.
    Machine settings (--precision, --chains, --distribute, ...) change how
    it computes, not the experiment.
    """
    if sum(map(bool, (ids, run_all, show_list, show_table))) != 1:
        fail("give row ids, or exactly one of --all, --list, --table "
             "(ids: " + ", ".join(registry.BY_ID) + ")")
    if readme and not show_table:
        fail("--readme goes with --table")
    try:
        _run(ids, run_all, show_list, show_table, readme, runs_dir,
             results_dir, machine, mnist_dir, data_dir, verbose)
    except repro.DamagedRowError as e:
        fail(str(e))


def _run(ids, run_all, show_list, show_table, readme, runs_dir, results_dir,
         machine, mnist_dir, data_dir, verbose):
    if show_list:
        _list(runs_dir, results_dir)
        return
    if show_table:
        _table(results_dir, readme)
        return
    try:
        chosen = [registry.get(i) for i in ids]
    except registry.UnknownExperimentError as e:
        fail(str(e))
    if run_all:
        chosen = [e for e in registry.EXPERIMENTS
                  if repro.status(e, runs_dir, results_dir).state != "done"]
        click.echo(f"{len(chosen)} rows to train: "
                   + ", ".join(e.id for e in chosen))
    _train(chosen, runs_dir, results_dir, machine, mnist_dir, data_dir,
           verbose)


def _check_folders(**folders):
    """Fails on an option naming a file where a folder is expected."""
    for option, path in folders.items():
        if os.path.exists(path) and not os.path.isdir(path):
            fail(f"--{option} {path} is a file; expected a folder")


def _list(runs_dir, results_dir):
    _check_folders(runs=runs_dir, results=results_dir)
    if not os.path.isdir(results_dir):
        click.echo(f"note: no folder {results_dir}, so no row has results "
                   "(--results)", err=True)
    width = max(len(i) for i in registry.BY_ID)
    click.echo(f"{'id':<{width}}  {'state':<9} {'updates':>17}  "
               f"{'M=10':>6} {'det.':>6} {'target':>6}")
    for e in registry.EXPERIMENTS:
        st = repro.status(e, runs_dir, results_dir)
        r = st.results if st.state in ("done", "partial") else None
        mc = f"{r['test_error_mc']:.2f}" if r else "-"
        det = f"{r['test_error_deterministic']:.2f}" if r else "-"
        if e.model in config_lib.BASELINE_MODELS:
            mc = "-"
        target = e.published.target
        click.echo(f"{e.id:<{width}}  {st.state:<9} "
                   f"{st.updates:>7,} / {e.steps:>7,}  {mc:>6} {det:>6} "
                   f"{'-' if target is None else f'{target:.2f}':>6}"
                   + (f"  ({st.detail})" if st.detail else "")
                   + (f"  [run directory: {st.running:,} updates]"
                      if st.running and st.state != "training" else ""))


def _table(results_dir, readme):
    _check_folders(results=results_dir)
    if not any(os.path.exists(os.path.join(results_dir, e.id, "results.json"))
               for e in registry.EXPERIMENTS):
        # A mistyped --results would write a table of dashes.
        fail(f"{results_dir} holds no results row (ID/results.json); "
             "expected the folder of rows, e.g. the repository's results")
    try:
        built = {tables.RESULTS: tables.results_table(results_dir),
                 tables.LABELS: tables.label_table(results_dir)}
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"cannot build the tables from {results_dir}: {e}")
    if readme is None:
        click.echo("\n".join(built.values()), nl=False)
        return
    try:
        with open(readme, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {readme} as UTF-8 text: {e}")
    new = text
    try:
        for markers, table in built.items():
            new = tables.replace_table(new, table, markers)
    except ValueError as e:
        fail(f"{readme}: {e}")
    tmp = f"{readme}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(tmp, readme)
    click.echo(f"{readme}: results and L-DRAM label tables "
               + ("unchanged" if new == text else "updated"))


def _train(chosen, runs_dir, results_dir, options, mnist_dir, data_dir,
           verbose):
    quiet_tensorflow()
    echo_library_messages()
    # {"precision": "float32", ...}: the machine options given.
    machine = {FIELD_OF[k].partition(".")[2]: v for k, v in options.items()
               if v is not None}
    first = chosen[0].config() if chosen else None
    if first is not None:
        # Before TensorFlow loads: the kernel library follows the precision.
        runtime.prepare_tensorflow(machine.get("precision",
                                               first.machine.precision))
    from ram_tf import devices
    from ram_tf import distribute
    from ram_tf import mnist
    from ram_tf import training

    for experiment in chosen:
        if machine:
            experiment = _with_machine(experiment, machine)
        click.echo(f"{experiment.id}: {experiment.title} on "
                   f"{experiment.task}, {experiment.steps:,} updates, run "
                   f"directory {os.path.join(runs_dir, experiment.id)}")
        try:
            results = repro.reproduce(experiment, runs_dir, results_dir,
                                      mnist_dir=mnist_dir, data_dir=data_dir,
                                      verbose=verbose)
        except (mnist.MnistNotFoundError, training.RunDirError,
                devices.DeviceError, distribute.DistributeError,
                config_lib.ConfigError) as e:
            # A row's run directory is RUNS/ID: its folder is --runs.
            fail(str(e).replace("choose another --workdir",
                                "choose another --runs folder"))
        except training.TrainingDiverged as e:
            # A registry row's settings are fixed: the advice differs.
            fail(f"{experiment.id}: {e.what} A "
                 "registry row trains with the papers' settings: check the "
                 "data and the machine settings (--precision), then run the "
                 "same command again to resume from that checkpoint")
        if not results.get("chief", True):
            click.echo(f"{experiment.id}: worker {results['worker']}, "
                       f"{results['updates']:,} updates; the chief writes "
                       "the results")
            continue
        click.echo(
            f"{experiment.id}: {results['updates']:,} updates, test error "
            f"{error_summary(results)} -> "
            f"{os.path.join(results_dir, experiment.id)}")


def _with_machine(experiment, machine):
    """The same row computed with other machine settings."""
    settings = dict(experiment.settings)
    settings.update({f"machine.{k}": v for k, v in machine.items()})
    return dataclasses.replace(experiment,
                               settings=tuple(sorted(settings.items())))
