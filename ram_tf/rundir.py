"""The run directory's safety: whole files, and checkpoints that are found
and read even when some are damaged.

`training.train_and_evaluate` holds `runlock.RunLock(workdir)` while it
trains, writes every JSON and the final weights through `atomic_output` (a temp
name in the same folder, then `os.replace`), cleans what an interrupted
run left behind (`clean_leftovers`), restores the newest checkpoint that
can be read (`restore_checkpoint`) and trims `log.csv` to that point
(`trim_log`). This module never imports TensorFlow at import time, so the
CLI can read a run's precision before TensorFlow loads.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import shutil

logger = logging.getLogger("ram_tf")


class RunDirError(RuntimeError):
    """The work dir cannot be used as asked (another run's settings, in
    use by another trainer, unreadable files)."""


class CheckpointError(RunDirError):
    """Checkpoints exist but none of them can be read."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- whole files ----------------------------------------------------------


@contextlib.contextmanager
def atomic_output(path: str, temp: str | None = None):
    """Yields a temp path in `path`'s folder; on success it replaces `path`.

    A kill at any moment leaves either the old file or the new one, never
    half a file (the temp is removed by `clean_leftovers` on the next run).
    `temp` overrides the name where a writer insists on a suffix
    (`.weights.h5`).
    """
    temp = temp or f"{path}.tmp"
    try:
        yield temp
        with open(temp, "rb") as f:
            os.fsync(f.fileno())  # the data reaches the disk before the name
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


def write_json(path: str, obj) -> None:
    with atomic_output(path) as temp, open(temp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)


def make_dir(workdir: str) -> None:
    """Create the work dir; a file in its place is a `RunDirError` (other
    OS errors name their path, as they are)."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise RunDirError(f"{workdir} exists and is not a folder; expected "
                          "a run directory: choose another --workdir")
    os.makedirs(workdir, exist_ok=True)


def read_json(path: str):
    """The JSON in `path`; a damaged file is a `RunDirError`."""
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path} is not valid JSON ({_first_line(e)}); "
                          "restore it or choose another --workdir") from e


def read_config(path: str):
    """The `ExperimentConfig` in a run's config.json at `path`; a damaged
    or impossible one is a `RunDirError` naming the setting."""
    from ram_tf import config as config_lib

    try:
        return config_lib.ExperimentConfig.from_dict(read_json(path))
    except config_lib.ConfigError as e:
        raise RunDirError(f"{path}: {e}; restore it or choose another "
                          "--workdir") from e


def h5_readable(path: str) -> bool:
    """Whether an HDF5 file (model.weights.h5) opens at all."""
    import h5py

    try:
        h5py.File(path, "r").close()
        return True
    except OSError:
        return False


# -- leftovers ----------------------------------------------------------------


# The temp names of the files a run writes atomically (`atomic_output`).
_RUN_TEMPS = frozenset(
    [f"{name}.tmp" for name in ("config.json", "progress.json",
                                "results.json", "log.csv")]
    + ["model.tmp.weights.h5"])


# What a run writes after its config.json (`training._train` writes that
# first): found without one, they are not this run's. An export's files
# mark a folder TF Serving may serve.
RUN_FILES = ("checkpoints", "log.csv", "tensorboard", "progress.json",
             "model.weights.h5", "results.json")
_EXPORT_FILES = ("MANIFEST.json", "saved_model.pb")


def check_run_files_have_a_config(workdir: str) -> None:
    """A `RunDirError` if `workdir` holds run files but no config.json.

    A work dir may hold the user's other files, but a log.csv, checkpoints
    or results without a config.json are another program's, or a run's
    that lost its settings: training there would trim, overwrite or
    delete them.
    """
    if os.path.exists(os.path.join(workdir, "config.json")):
        return
    found = [n for n in RUN_FILES + _EXPORT_FILES
             if os.path.exists(os.path.join(workdir, n))]
    if found:
        raise RunDirError(
            f"{workdir} holds {', '.join(found)} but no config.json, so "
            "they are not a ram-tf run's (or the run lost its settings); "
            "training would overwrite them or mix with them: restore its "
            "config.json or choose another --workdir")


def remove(path: str) -> None:
    """Remove a leftover file or folder, if it is still there."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def clean_leftovers(workdir: str) -> list[str]:
    """Remove temp files and folders an interrupted run left behind.

    Only call with the lock held: a live writer's temps look the same.
    Returns the removed paths, relative to `workdir`.
    """
    removed = []
    ckpt_dir = os.path.join(workdir, "checkpoints")
    for folder, stale in (
            # Only the temps of files a run writes: a work dir may be a
            # folder that holds other things too.
            (workdir, lambda n: n in _RUN_TEMPS),
            # TensorFlow writes ckpt-N_temp/ then merges it; its state file
            # goes through checkpoint.tmp<hex>.
            (ckpt_dir, lambda n: "_temp" in n or ".tmp" in n)):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not stale(name):
                continue
            path = os.path.join(folder, name)
            remove(path)
            removed.append(os.path.relpath(path, workdir))
    if removed:
        logger.info("%s: removed leftovers of an interrupted run: %s",
                    workdir, ", ".join(removed))
    return removed


# -- checkpoints --------------------------------------------------------------

_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_DATA = re.compile(r"^ckpt-(\d+)\.data-\d+-of-\d+$")


def checkpoint_prefixes(directory: str) -> list[str]:
    """Every ckpt-N on disk (an index file), newest (largest N) first,
    whatever the `checkpoint` state file says or whether it can be read."""
    if not os.path.isdir(directory):
        return []
    found = [(int(m.group(1)), m.group(0)[:-len(".index")])
             for m in map(_INDEX.match, os.listdir(directory)) if m]
    return [os.path.join(directory, name) for _, name in sorted(found,
                                                                reverse=True)]


def _unindexed(directory: str) -> list[int]:
    """The N of every ckpt-N with data files but no index file, largest
    first."""
    if not os.path.isdir(directory):
        return []
    names = os.listdir(directory)
    data = {int(m.group(1)) for m in map(_DATA.match, names) if m}
    indexed = {int(m.group(1)) for m in map(_INDEX.match, names) if m}
    return sorted(data - indexed, reverse=True)


def restore_checkpoint(checkpoint, directory: str, *, partial: bool = False,
                       repair: bool = False) -> str | None:
    """Restore the newest checkpoint in `directory` that can be read.

    Args:
      checkpoint: a `tf.train.Checkpoint`.
      partial: restore only what `checkpoint` tracks (a model for
        evaluation); else every tracked object must be in the file.
      repair: point the `checkpoint` state file at the one restored (only
        with the run's lock held).

    Returns:
      the restored prefix, or None when there are no checkpoints.

    Raises:
      CheckpointError: checkpoints exist but none can be read; starting
        over would overwrite them.
    """
    prefixes = checkpoint_prefixes(directory)
    # Data whose index file is gone (deleted by hand, or lost with a disk)
    # is a checkpoint that cannot be read, not an empty folder.
    newest = int(_INDEX.match(os.path.basename(prefixes[0]) + ".index")
                 .group(1)) if prefixes else -1
    failures = [f"ckpt-{n} (its .index file is missing)"
                for n in _unindexed(directory) if n > newest]
    for prefix in prefixes:
        name = os.path.basename(prefix)
        try:
            status = checkpoint.restore(prefix)
            if partial:
                status.expect_partial()
            else:
                status.assert_existing_objects_matched()
        except Exception as e:  # damaged: IndexError, DataLossError, ...
            failures.append(f"{name} ({_first_line(e)})")
            _quiet_failed_restore(e)
            continue
        if failures:
            logger.warning("could not read checkpoint %s; using the one "
                           "before it, %s", ", ".join(failures), name)
        if repair:
            _repair_state(directory, prefix)
        return prefix
    if failures:
        shapes = any("shape" in f for f in failures)
        raise CheckpointError(
            f"none of the checkpoints in {directory} can be read: "
            f"{'; '.join(failures)}. "
            + ("Their weights have other shapes than the run's config.json "
               "builds: if config.json was edited, restore it. " if shapes
               else "")
            + ("Nothing was loaded." if partial else
               "Refusing to start again from update 0 over them: move the "
               "folder away to start afresh, or choose another --workdir"))
    return None


def _quiet_failed_restore(error: BaseException) -> None:
    """Mark the restore that raised `error` as partial.

    A restore that raises returns no status object to call
    `expect_partial()` on, yet its restore coordinator stays referenced by
    the objects' deferred restorations. When they are collected, often at
    exit, TensorFlow logs every checkpoint value that was not restored,
    after our error has already named the failure. The coordinator is a
    local of the frames the error passed through.
    """
    frame = error.__traceback__
    while frame is not None:
        for value in list(frame.tb_frame.f_locals.values()):
            if type(value).__name__ == "_CheckpointRestoreCoordinator":
                value.expect_partial = True
        frame = frame.tb_next


def _repair_state(directory: str, restored: str) -> None:
    """Rewrite the state file if it is unreadable or names another latest
    checkpoint, so CheckpointManager keeps and rotates the files on disk."""
    path = os.path.join(directory, "checkpoint")
    name = os.path.basename(restored)
    try:
        with open(path) as f:
            latest = re.match(r'model_checkpoint_path: "(.*)"\n', f.read())
    except (OSError, UnicodeDecodeError):
        latest = None
    if latest and os.path.basename(latest.group(1)) == name:
        return
    number = int(name.split("-")[1])
    kept = [p for p in reversed(checkpoint_prefixes(directory))
            if int(os.path.basename(p).split("-")[1]) <= number]
    lines = [f'model_checkpoint_path: "{name}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"'
              for p in kept]
    lines += [f"all_model_checkpoint_timestamps: "
              f"{os.path.getmtime(p + '.index')}" for p in kept]
    with atomic_output(path) as temp, open(temp, "w") as f:
        f.write("\n".join(lines) + "\n")
    logger.warning("%s: the checkpoint state file was unreadable or stale; "
                   "it now names %s", directory, name)


# -- the log ---------------------------------------


def trim_log(path: str, updates: int, epochs: int) -> None:
    """Keep the header and the rows of `log.csv` up to the resume point.

    Rows after `updates` (epochs that will run again), repeated headers,
    rows cut short by a kill and all but the last row of an update count
    are dropped. A log without an `updates` column (older runs) is cut by
    epoch number instead.
    """
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header = rows[0]
    if "updates" not in header and "epoch" not in header:
        raise RunDirError(
            f"{path} has neither an updates nor an epoch column "
            f"(header: {','.join(header)[:80]}), so it is not this run's "
            "log: move it away or choose another --workdir")
    column, limit = (("updates", updates) if "updates" in header
                     else ("epoch", epochs - 1))
    index = header.index(column)

    def keep(row):
        try:
            return (len(row) == len(header) and row != header
                    and float(row[index]) <= limit)
        except ValueError:
            return False

    # One row per resume point, the last written: two writers (older
    # versions had no lock) or an epoch run again each left one.
    last = {float(r[index]): r for r in rows[1:] if keep(r)}
    kept = [header] + [last[k] for k in sorted(last)]
    if kept != rows:
        with atomic_output(path) as temp, open(temp, "w", newline="") as f:
            csv.writer(f).writerows(kept)


def recorded_updates(workdir: str) -> int:
    """The updates progress.json or results.json say were done, 0 if none
    (what a run without its checkpoints has lost)."""
    recorded = 0
    for name in ("progress.json", "results.json"):
        path = os.path.join(workdir, name)
        if os.path.exists(path):
            saved = read_json(path)
            value = saved.get("updates") if isinstance(saved, dict) else 0
            if isinstance(value, int) and not isinstance(value, bool):
                recorded = max(recorded, value)
    return recorded


def trained_precision(workdir: str) -> tuple[str | None, str]:
    """(precision, where it was read) of the run in `workdir`.

    results.json and progress.json record what computed the training steps
    ("auto" resolved on the training machine); else config.json's
    machine.precision, which may still be "auto". (None, "") if none exist.
    """
    for name in ("results.json", "progress.json"):
        path = os.path.join(workdir, name)
        if os.path.exists(path):
            with contextlib.suppress(RunDirError):
                value = read_json(path).get("precision")
                if value:
                    return value, f"the precision the run trained with ({name})"
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        with contextlib.suppress(RunDirError):
            saved = read_json(path)  # old layouts: in "train"
            value = (saved.get("machine", {}).get("precision")
                     or saved.get("train", {}).get("precision"))
            if value:
                return value, f"machine.precision={value!r} in config.json"
    return None, ""
