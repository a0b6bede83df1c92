"""Resuming a run: the same command carries a run on from its last
checkpoint to the weights an uninterrupted run ends with, bit for bit,
after a kill, with other epoch lengths and from older run-directory
layouts; other experiment settings in the same folder are refused."""

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import TINY_TRAINING
from helpers import logged_updates
from helpers import read_json
from helpers import run_weights
from helpers import tiny
from helpers import tiny32

from ram_tf import config as config_lib
from ram_tf import training


def test_resumed_run_equals_uninterrupted_run(mnist_dir, cache_dir,
                                              tmp_path):
    straight = str(tmp_path / "straight")
    training.train_and_evaluate(tiny(6), straight, verbose=0,
                                evaluate_test=False)
    resumed = str(tmp_path / "resumed")
    training.train_and_evaluate(tiny(3), resumed, verbose=0,
                                evaluate_test=False)
    training.train_and_evaluate(tiny(6), resumed, verbose=0,
                                evaluate_test=False)
    for a, b in zip(run_weights(straight), run_weights(resumed)):
        np.testing.assert_array_equal(a, b)
    with open(os.path.join(resumed, "log.csv")) as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]


def test_other_settings_in_the_same_workdir_are_refused(
        mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny(3), workdir, verbose=0,
                                evaluate_test=False)
    with pytest.raises(training.RunDirError, match="policy.std"):
        training.train_and_evaluate(tiny(3, **{"policy.std": 0.2}), workdir,
                                    verbose=0, evaluate_test=False)


def test_a_dram_run_older_than_gradient_scope_is_not_resumed(tmp_path):
    # Its config.json has no policy.gradient_scope: its routing is gone.
    workdir = tmp_path / "old_dram"
    workdir.mkdir()
    saved = config_lib.resolve("dram", "mnist28", TINY_TRAINING).to_dict()
    del saved["policy"]["gradient_scope"]
    (workdir / "config.json").write_text(json.dumps(saved))
    with pytest.raises(training.RunDirError, match="not resumed"):
        training.train_and_evaluate(
            config_lib.resolve("dram", "mnist28", TINY_TRAINING), str(workdir),
            verbose=0, evaluate_test=False)


def _old_layout(config):
    """`config` as config.json was written before the machine group."""
    saved = config.to_dict()
    m = saved.pop("machine")
    saved["glimpse"].update(backend=m["backend"], xla=m["xla"])
    saved["train"].update(precision=m["precision"], chains=m["chains"],
                          jit_compile=m["jit_compile"])
    return saved


def test_a_run_dir_of_the_old_layout_resumes(tmp_path):
    workdir = tmp_path / "old"
    workdir.mkdir()
    path = workdir / "config.json"
    path.write_text(json.dumps(_old_layout(tiny(3))))
    assert training._check_same_run(str(workdir), tiny(6)) == []
    # Machine settings may still change, whole-step XLA included (it draws
    # the same policy noise, ram_tf.noise).
    changed = tiny(6, **{"train.precision": "float32", "train.chains": 2,
                         "machine.jit_compile": True})
    assert training._check_same_run(str(workdir), changed) == [
        "machine.precision: 'auto' -> 'float32'", "machine.chains: 0 -> 2",
        "machine.jit_compile: 'auto' -> True"]
    with pytest.raises(training.RunDirError, match="policy.std"):
        training._check_same_run(str(workdir),
                                 tiny(6, **{"policy.std": 0.2}))


def test_resuming_may_change_how_the_step_is_computed(
        mnist_dir, cache_dir, tmp_path, caplog):
    # A run started with the gather sensor resumes under the matmul
    # default (the same windows, summed in another order).
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny(3, **{"machine.backend": "gather"}),
                                workdir, verbose=0, evaluate_test=False)
    with caplog.at_level(logging.INFO, logger="ram_tf"):
        training.train_and_evaluate(tiny(6, **{"machine.backend": "matmul"}),
                                    workdir, verbose=0, evaluate_test=False)
    assert "machine.backend: 'gather' -> 'matmul'" in caplog.text
    with open(os.path.join(workdir, "log.csv")) as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]


def test_kill_right_after_a_checkpoint_keeps_every_log_row(
        mnist_dir, cache_dir, tmp_path, monkeypatch):
    # The checkpoint is an epoch's commit point: everything the epoch
    # logs is written before it, so a kill just after it loses no row.
    import tensorflow as tf

    save = tf.train.CheckpointManager.save
    calls = []

    def save_then_die(self, *args, **kwargs):
        path = save(self, *args, **kwargs)
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed after the epoch-2 checkpoint")
        return path

    workdir = str(tmp_path / "run")
    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        training.train_and_evaluate(tiny(9), workdir, verbose=0,
                                    evaluate_test=False)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    training.train_and_evaluate(tiny(9), workdir, verbose=0,
                                evaluate_test=False)
    with open(os.path.join(workdir, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [int(float(r["updates"])) for r in rows] == [3, 6, 9]
    assert read_json(os.path.join(workdir, "progress.json"))["epochs_done"] == 3


def test_sigkill_then_same_command_resumes(mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "killed")
    cmd = [sys.executable, "-m", "ram_tf_cli.main", "train", "--task",
           "mnist28", "--workdir", workdir, "--steps", "400",
           "--steps-per-epoch", "2", "--batch-size", "8", "--mc-samples",
           "2", "--num-glimpses", "2", "--core-units", "16",
           "--glimpse-units", "16", "--verbose", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    progress = os.path.join(workdir, "progress.json")
    deadline = time.time() + 240
    while time.time() < deadline:
        if os.path.exists(progress) and read_json(progress)["epochs_done"] >= 2:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = read_json(progress)["epochs_done"]
    assert 2 <= done < 200
    # Same command, fewer total steps so the test ends: it must resume
    # from the checkpoint, not start again. progress.json is written just
    # before the checkpoint, so the checkpoint holds `done` or `done - 1`
    # epochs; either way epoch done + 1 is still to run.
    cmd[cmd.index("400")] = str(2 * (done + 1))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"Epoch {done + 1}/{done + 1}" in out.stdout
    assert "Epoch 1/" not in out.stdout
    results = read_json(os.path.join(workdir, "results.json"))
    assert results["updates"] == 2 * (done + 1)


# -- the update count is the resume point ----------------------------------


def test_steps_not_a_multiple_of_the_epoch_end_with_a_shorter_epoch(
        tmp_path):
    # --steps 7 --steps-per-epoch 3 trains 7, not 9.
    workdir = str(tmp_path / "run")
    results = training.train_and_evaluate(tiny32(7), workdir, verbose=0,
                                          evaluate_test=False)
    assert results["updates"] == 7
    assert logged_updates(workdir) == [3, 6, 7]
    progress = read_json(os.path.join(workdir, "progress.json"))
    assert (progress["updates"], progress["epochs_done"]) == (7, 3)


def test_extending_with_other_epoch_lengths_trains_exactly_the_steps(
        tmp_path, straight10):
    # 2 updates (one short epoch), extended to 5 in epochs of 2, then to
    # 10 in epochs of 3: the same weights as one run of 10, bit for bit.
    workdir = str(tmp_path / "run")
    for steps, per_epoch in ((2, 3), (5, 2), (10, 3)):
        results = training.train_and_evaluate(
            tiny32(steps, **{"train.steps_per_epoch": per_epoch}), workdir,
            verbose=0, evaluate_test=False)
        assert results["updates"] == steps
    assert logged_updates(workdir) == [2, 4, 5, 8, 10]
    for a, b in zip(straight10, run_weights(workdir)):
        np.testing.assert_array_equal(a, b)


def test_a_run_is_not_shortened_below_what_it_trained(tmp_path):
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny32(6), workdir, verbose=0,
                                evaluate_test=False)
    with pytest.raises(training.RunDirError,
                       match="already holds 6 updates, more than "
                             "train.steps=4"):
        training.train_and_evaluate(tiny32(4), workdir, verbose=0,
                                    evaluate_test=False)
    # Nothing was rewritten.
    saved = read_json(os.path.join(workdir, "config.json"))
    assert saved["train"]["steps"] == 6
    assert read_json(os.path.join(workdir, "results.json"))["updates"] == 6
    assert logged_updates(workdir) == [3, 6]


def test_a_run_dir_of_the_epoch_counting_layout_resumes_exactly(
        tmp_path, straight10):
    # Runs written before the update count was the resume point: the
    # checkpoint holds model, optimizer, epoch and seed_state only, and
    # progress.json has epochs_done and train_seconds only.
    import tensorflow as tf

    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny32(6), workdir, verbose=0,
                                evaluate_test=False)
    latest = tf.train.latest_checkpoint(os.path.join(workdir,
                                                     "checkpoints"))
    # (The model's weights are stored once, under the optimizer's.)
    names = {k.split("/")[0] for k, _ in tf.train.list_variables(latest)}
    assert names == {"optimizer", "epoch", "seed_state", "save_counter",
                     "_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert tf.train.load_variable(latest, "epoch/.ATTRIBUTES/"
                                  "VARIABLE_VALUE") == 2
    progress = os.path.join(workdir, "progress.json")
    old = {k: read_json(progress)[k] for k in ("epochs_done", "train_seconds")}
    with open(progress, "w") as f:
        json.dump(old, f)
    results = training.train_and_evaluate(tiny32(10), workdir, verbose=0,
                                          evaluate_test=False)
    assert results["updates"] == 10
    assert logged_updates(workdir) == [3, 6, 9, 10]
    for a, b in zip(straight10, run_weights(workdir)):
        np.testing.assert_array_equal(a, b)
