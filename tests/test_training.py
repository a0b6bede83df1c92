"""train_and_evaluate: the run directory, results, exact resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from ram_tf import config as config_lib
from ram_tf import training

TINY = {
    "glimpse.num_glimpses": 3, "core.glimpse_hidden": 8,
    "core.location_hidden": 8, "core.glimpse_units": 16,
    "core.core_units": 16, "train.batch_size": 8, "train.mc_samples": 2,
    "train.steps_per_epoch": 3,
}


def tiny(steps, **extra):
    return config_lib.resolve("ram", "mnist28",
                              {**TINY, "train.steps": steps, **extra})


def _weights(workdir):
    _, model = training.load_run(workdir)
    return [w.numpy() for w in model.weights]


def test_run_writes_config_logs_checkpoints_and_results(
        mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = training.train_and_evaluate(tiny(6), workdir, verbose=0)
    # Keras warns when fit is asked to shuffle a tf.data.Dataset.
    assert not [w for w in caught if "shuffle" in str(w.message)]
    for name in ("config.json", "log.csv", "results.json",
                 "model.weights.h5", "progress.json"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert results["updates"] == 6
    assert results["test_images"] == 10000
    assert 0 <= results["test_error_mc"] <= 100
    assert results["mc_samples"] == 2
    assert results["precision"] in ("float32", "mixed_bfloat16")
    assert set(results["versions"]) >= {"tensorflow", "keras", "ram_tf"}
    with open(os.path.join(workdir, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["updates"])) for r in rows] == [3, 6]
    for key in ("cross_entropy", "baseline_mse", "reinforce", "reward",
                "location_abs", "val_accuracy"):
        assert key in rows[0]
    saved = config_lib.ExperimentConfig.from_json(
        open(os.path.join(workdir, "config.json")).read())
    assert saved == tiny(6)


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
    for a, b in zip(_weights(straight), _weights(resumed)):
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
    saved = config_lib.resolve("dram", "mnist28", TINY).to_dict()
    del saved["policy"]["gradient_scope"]
    (workdir / "config.json").write_text(json.dumps(saved))
    with pytest.raises(training.RunDirError, match="not resumed"):
        training.train_and_evaluate(
            config_lib.resolve("dram", "mnist28", TINY), str(workdir),
            verbose=0, evaluate_test=False)


def test_resuming_may_change_how_the_step_is_computed(
        mnist_dir, cache_dir, tmp_path, capsys):
    # A run started with the gather sensor resumes under the matmul
    # default (the same windows, summed in another order).
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny(3, **{"glimpse.backend": "gather"}),
                                workdir, verbose=0, evaluate_test=False)
    training.train_and_evaluate(tiny(6, **{"glimpse.backend": "matmul"}),
                                workdir, verbose=2, evaluate_test=False)
    assert "glimpse.backend: 'gather' -> 'matmul'" in capsys.readouterr().out
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
    assert json.load(open(os.path.join(workdir, "progress.json")))[
        "epochs_done"] == 3


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
        if os.path.exists(progress) and json.load(
                open(progress))["epochs_done"] >= 2:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.load(open(progress))["epochs_done"]
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
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["updates"] == 2 * (done + 1)


def test_hardware_reads_the_cpu_model_and_flags(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n"
                       "flags\t\t: fpu sse avx2 fma avx512f avx512_bf16\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: real_open(
        cpuinfo if p == "/proc/cpuinfo" else p, *a, **k))
    info = training.hardware()
    assert info["cpu"] == "Test CPU 9000"
    assert info["flags"] == ["avx2", "fma", "avx512f", "avx512_bf16"]
