"""train_and_evaluate: the run directory, results, exact resume."""

import csv
import json
import logging
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


def _json(path):
    with open(path) as f:
        return json.load(f)


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
    saved = config_lib.ExperimentConfig.from_dict(
        _json(os.path.join(workdir, "config.json")))
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
    assert _json(os.path.join(workdir, "progress.json"))["epochs_done"] == 3


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
        if os.path.exists(progress) and _json(progress)["epochs_done"] >= 2:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _json(progress)["epochs_done"]
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
    results = _json(os.path.join(workdir, "results.json"))
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


# -- the update count is the resume point ----------------------------------

def tiny32(steps, **extra):
    return tiny(steps, **{"machine.precision": "float32", **extra})


def _log_updates(workdir):
    with open(os.path.join(workdir, "log.csv")) as f:
        return [int(float(r["updates"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def straight10(tmp_path_factory, mnist_dir, cache_dir):
    """Weights of an uninterrupted 10-update run (epochs of 3 and 1)."""
    workdir = str(tmp_path_factory.mktemp("straight10"))
    training.train_and_evaluate(tiny32(10), workdir, verbose=0,
                                evaluate_test=False)
    assert _log_updates(workdir) == [3, 6, 9, 10]
    return _weights(workdir)


def test_steps_not_a_multiple_of_the_epoch_end_with_a_shorter_epoch(
        tmp_path):
    # --steps 7 --steps-per-epoch 3 trains 7, not 9.
    workdir = str(tmp_path / "run")
    results = training.train_and_evaluate(tiny32(7), workdir, verbose=0,
                                          evaluate_test=False)
    assert results["updates"] == 7
    assert _log_updates(workdir) == [3, 6, 7]
    progress = _json(os.path.join(workdir, "progress.json"))
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
    assert _log_updates(workdir) == [2, 4, 5, 8, 10]
    for a, b in zip(straight10, _weights(workdir)):
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
    assert _json(os.path.join(workdir, "config.json"))["train"]["steps"] == 6
    assert _json(os.path.join(workdir, "results.json"))["updates"] == 6
    assert _log_updates(workdir) == [3, 6]


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
    old = {k: _json(progress)[k] for k in ("epochs_done", "train_seconds")}
    with open(progress, "w") as f:
        json.dump(old, f)
    results = training.train_and_evaluate(tiny32(10), workdir, verbose=0,
                                          evaluate_test=False)
    assert results["updates"] == 10
    assert _log_updates(workdir) == [3, 6, 9, 10]
    for a, b in zip(straight10, _weights(workdir)):
        np.testing.assert_array_equal(a, b)


# -- divergence ------------------------------------------------------------


@pytest.mark.parametrize("setting,value,allowed", [
    ("train.learning_rate", float("inf"), "must be a finite number"),
    ("train.learning_rate", float("nan"), "must be a finite number"),
    ("train.learning_rate", 0.0, "must be > 0"),
    ("train.lr_decay_steps", 0, "must be >= 1"),
    ("train.lr_decay", 1.5, "a factor in (0, 1]"),
    ("train.lr_decay", 0.0, "a factor in (0, 1]"),
    ("train.min_learning_rate", -1e-4, "must be >= 0"),
    ("train.clipnorm", -1.0, "must be > 0"),
    ("train.clipnorm", 0.0, "must be > 0"),
    ("train.clipnorm", float("nan"), "must be a finite number"),
    ("policy.std", float("inf"), "must be a finite number"),
    ("policy.reinforce_weight", float("nan"), "must be a finite number"),
    ("policy.location_loss_decay", 0.0, "a factor in (0, 1]"),
])
def test_impossible_optimiser_settings_are_refused(setting, value, allowed):
    with pytest.raises(config_lib.ConfigError) as caught:
        tiny(3, **{setting: value})
    message = str(caught.value)
    assert message.startswith(f"{setting}={value!r} is invalid")
    assert allowed in message


def test_cli_refuses_an_infinite_learning_rate_in_one_line(tmp_path):
    from click.testing import CliRunner

    from ram_tf_cli.main import cli

    workdir = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--task", "mnist28", "--workdir", str(workdir),
        "--learning-rate", "inf"])
    assert result.exit_code == 2
    assert ("train.learning_rate=inf is invalid: must be a finite number"
            in result.output)
    assert not workdir.exists()


def _poisoned_from(update, monkeypatch):
    """Training images turn NaN from `update` (1-based) on."""
    import tensorflow as tf

    from ram_tf import datasets

    real = datasets.train_dataset

    def poisoned(*args, start_step=0, **kwargs):
        return real(*args, start_step=start_step, **kwargs).enumerate(
            start_step).map(lambda i, b: {**b, "image": tf.where(
                i + 1 >= update, b["image"] * float("nan"), b["image"])})

    monkeypatch.setattr(datasets, "train_dataset", poisoned)


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch, straight10):
    workdir = str(tmp_path / "run")
    _poisoned_from(5, monkeypatch)
    with pytest.raises(training.TrainingDiverged,
                       match=r"diverged at update 5: the loss is nan\. "
                             r".*last good checkpoint, at update 3, is kept"):
        training.train_and_evaluate(tiny32(10), workdir, verbose=0)
    for name in ("results.json", "model.weights.h5", "lock"):
        assert not os.path.exists(os.path.join(workdir, name)), name
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    assert _log_updates(workdir) == [3]
    # The kept checkpoint is the good state: resumed on clean data, the
    # run ends where an uninterrupted one does.
    monkeypatch.undo()
    training.train_and_evaluate(tiny32(10), workdir, verbose=0,
                                evaluate_test=False)
    for a, b in zip(straight10, _weights(workdir)):
        np.testing.assert_array_equal(a, b)


def test_cli_stops_a_diverging_run_with_exit_code_2(tmp_path):
    from click.testing import CliRunner

    from ram_tf_cli.main import cli

    workdir = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--task", "mnist28", "--workdir", str(workdir),
        "--learning-rate", "1e30", "--steps", "4", "--steps-per-epoch", "2",
        "--batch-size", "8", "--mc-samples", "1", "--num-glimpses", "2",
        "--core-units", "16", "--glimpse-units", "16", "--precision",
        "float32", "--verbose", "0"])
    assert result.exit_code == 2, result.output
    assert "Error: training diverged at update 2" in result.output
    assert not (workdir / "results.json").exists()
    assert not (workdir / "checkpoints").exists()


def test_a_dram_run_loads_every_weight_from_its_checkpoint(
        mnist_dir, cache_dir, tmp_path):
    # Evaluating or exporting an unfinished run reads its checkpoint; DRAM's
    # context convolutions must come back too, not stay at their init.
    workdir = str(tmp_path / "dram")
    cfg = config_lib.resolve("dram", "mnist28", {
        **TINY, "glimpse.num_glimpses": 2, "train.steps": 3})
    training.train_and_evaluate(cfg, workdir, verbose=0, evaluate_test=False)
    final = {w.path: w.numpy() for w in training.load_run(workdir)[1].weights}
    os.remove(os.path.join(workdir, "model.weights.h5"))
    _, model = training.load_run(workdir)
    assert any("context" in w.path for w in model.weights)
    for w in model.weights:
        np.testing.assert_array_equal(w.numpy(), final[w.path], w.path)
