"""Reproduce the published results rows by name, and tabulate them.

`reproduce(experiment, runs_dir, results_dir)` trains (or resumes) the
row's run in `runs_dir/ID` with exactly `Experiment.config()`, scores it,
and copies what a reader needs into `results_dir/ID/`: results.json,
config.json, log.csv and curves.png. Run directories hold checkpoints and
are not meant to be committed; results directories are.

`status(experiment, ...)` says where a row stands; `ram_tf.tables` renders
the rows as the README's tables.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil

from ram_tf import experiments as registry

# The files of a run that a results row keeps (besides curves.png).
RESULT_FILES = ("config.json", "log.csv", "results.json")


class DamagedRowError(ValueError):
    """A results row whose files do not belong together."""


@dataclasses.dataclass(frozen=True)
class Status:
    """Where a row stands.

    Attributes:
      state: "done" (results at the full budget), "partial" (results with
        fewer updates), "training" (a run directory ahead of the results),
        "missing", or "mismatch" (the results come from other settings).
      updates: the most updates seen, in results or in the run directory.
      results: the committed results.json, if any.
      config: the committed config.json, if any.
      detail: what differs, for "mismatch".
      running: updates logged in the run directory (0 without one).
    """

    state: str
    updates: int
    results: dict | None = None
    config: dict | None = None
    detail: str = ""
    running: int = 0


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise DamagedRowError(f"{path} is not valid JSON ({e})") from e


# The numbers of results.json that the tables and the list show.
_RESULT_NUMBERS = ("updates", "test_error_mc", "test_error_deterministic")


def _read_results(path):
    results = _read_json(path)
    bad = [k for k in _RESULT_NUMBERS if not isinstance(results, dict)
           or isinstance(results.get(k), bool)
           or not isinstance(results.get(k), (int, float))]
    if bad:
        raise DamagedRowError(
            f"{path} has no number for {', '.join(bad)}: restore it from "
            "git or the run directory")
    return results


def logged_updates(workdir: str) -> int:
    """Updates a run has logged (log.csv's last `updates`), 0 if none."""
    path = os.path.join(workdir, "log.csv")
    if not os.path.exists(path):
        return 0
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("updates")]
    return int(float(rows[-1]["updates"])) if rows else 0


def status(experiment: registry.Experiment, runs_dir: str | None,
           results_dir: str) -> Status:
    """The state of one row from its results and run directories."""
    row_dir = os.path.join(results_dir, experiment.id)
    results = config = None
    if os.path.exists(os.path.join(row_dir, "results.json")):
        results = _read_results(os.path.join(row_dir, "results.json"))
        if not os.path.exists(os.path.join(row_dir, "config.json")):
            raise DamagedRowError(
                f"{row_dir} has results.json but no config.json: copy the "
                f"run's config.json there, or run `ram-tf reproduce "
                f"{experiment.id}` again")
        config = _read_json(os.path.join(row_dir, "config.json"))
    running = (logged_updates(os.path.join(runs_dir, experiment.id))
               if runs_dir else 0)
    if results is not None:
        diffs = registry.differences(experiment, config)
        if diffs:
            return Status("mismatch", int(results["updates"]), results,
                          config, "; ".join(diffs), running)
    done = int(results["updates"]) if results else 0
    if done >= experiment.steps:
        return Status("done", done, results, config, running=running)
    if running > done:
        return Status("training", running, results, config, running=running)
    return Status("partial" if results else "missing", done, results,
                  config, running=running)


def reproduce(experiment: registry.Experiment, runs_dir: str,
              results_dir: str, **train_kwargs) -> dict:
    """Train or resume `runs_dir/ID`, score it, copy it to results.

    Keyword arguments go to `ram_tf.training.train_and_evaluate`
    (mnist_dir, data_dir, verbose). Returns the run's results dict.
    """
    from ram_tf import training  # TensorFlow only when training

    workdir = os.path.join(runs_dir, experiment.id)
    results = training.train_and_evaluate(experiment.config(), workdir,
                                          **train_kwargs)
    if results.get("chief", True):  # a multi-worker run: the chief copies
        collect(experiment, workdir, results_dir)
    return results


def collect(experiment: registry.Experiment, workdir: str,
            results_dir: str) -> str:
    """Copy a finished run's files and its learning curves to results."""
    from ram_tf import plots

    row_dir = os.path.join(results_dir, experiment.id)
    os.makedirs(row_dir, exist_ok=True)
    # results.json last: a row is complete once it is there, so a copy cut
    # short never pairs new results with an old config or log.
    results = os.path.join(row_dir, "results.json")
    if os.path.exists(results):
        os.remove(results)
    for name in RESULT_FILES:
        tmp = os.path.join(row_dir, f".{name}.tmp")
        shutil.copyfile(os.path.join(workdir, name), tmp)
        if name == "results.json":
            log = plots.read_log(os.path.join(row_dir, "log.csv"))
            plots.learning_curves({experiment.id: log},
                                  os.path.join(row_dir, "curves.png"))
        os.replace(tmp, os.path.join(row_dir, name))
    return row_dir
