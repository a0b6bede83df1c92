"""train_and_evaluate: the run directory, results, the settings it
refuses, divergence. Resuming is in test_resume.py."""

import csv
import os
import warnings

import numpy as np
import pytest
from helpers import TINY_TRAINING
from helpers import deterministic_error
from helpers import logged_updates
from helpers import read_json
from helpers import run_weights
from helpers import tiny
from helpers import tiny32

from ram_tf import config as config_lib
from ram_tf import training


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
    assert results["mc_samples"] == 2
    # Counted again from the saved weights (2 images of slack for bfloat16
    # kernels that differ with the batch).
    assert results["test_error_deterministic"] == pytest.approx(
        deterministic_error(workdir), abs=0.02)
    assert results["precision"] in ("float32", "mixed_bfloat16")
    # The kernels that ran, whatever the plan wished for.
    assert (results["machine_plan"]["onednn"]
            == results["hardware"]["onednn"])
    assert set(results["versions"]) >= {"tensorflow", "keras", "ram_tf"}
    with open(os.path.join(workdir, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["updates"])) for r in rows] == [3, 6]
    for key in ("cross_entropy", "baseline_mse", "reinforce", "reward",
                "location_abs", "val_accuracy"):
        assert key in rows[0]
    saved = config_lib.ExperimentConfig.from_dict(
        read_json(os.path.join(workdir, "config.json")))
    assert saved == tiny(6)


def test_hardware_adds_machine_cores_and_gpus_to_the_cpu_info(monkeypatch):
    # The /proc/cpuinfo parser itself: test_precision.py.
    import platform

    from ram_tf import runtime

    monkeypatch.setattr(runtime, "cpu_info",
                        lambda: {"cpu": "Test CPU 9000", "flags": ["fma"]})
    info = training.hardware()
    assert (info["cpu"], info["flags"]) == ("Test CPU 9000", ["fma"])
    assert info["machine"] == platform.machine()
    assert info["cpu_count"] == os.cpu_count()
    assert info["gpus"] == 0  # CPU-only tests
    assert isinstance(info["onednn"], bool)


# -- divergence ------------------------------------------------------------


@pytest.mark.parametrize("setting,value,allowed", [
    ("train.learning_rate", float("inf"), "must be a finite number"),
    ("train.learning_rate", float("nan"), "must be a finite number"),
    ("train.learning_rate", 0.0, "must be > 0"),
    ("train.lr_decay_steps", 0, "must be >= 1"),
    ("train.lr_decay", 1.5, "a factor in (0, 1]"),
    ("train.lr_decay", 0.0, "a factor in (0, 1]"),
    ("train.min_learning_rate", -1e-4, "the floor of the decayed rate, in "
     "[0, train.learning_rate=0.001]"),
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
    """The loss turns NaN from `update` (1-based) on."""
    import tensorflow as tf

    from ram_tf import reinforce

    real, count = reinforce.hybrid_loss, tf.Variable(0)

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        n = count.assign_add(1)  # the update this step makes
        terms["loss"] = tf.where(n >= update, float("nan"), terms["loss"])
        return terms

    monkeypatch.setattr(reinforce, "hybrid_loss", poisoned)


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch, straight10):
    workdir = str(tmp_path / "run")
    _poisoned_from(5, monkeypatch)
    with pytest.raises(training.TrainingDiverged,
                       match=r"diverged at update 5: the loss is not finite\. "
                             r".*last good checkpoint, at update 3, is kept"):
        training.train_and_evaluate(tiny32(10), workdir, verbose=0)
    for name in ("results.json", "model.weights.h5", "lock"):
        assert not os.path.exists(os.path.join(workdir, name)), name
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    assert logged_updates(workdir) == [3]
    # The kept checkpoint is the good state: resumed on clean data, the
    # run ends where an uninterrupted one does.
    monkeypatch.undo()
    training.train_and_evaluate(tiny32(10), workdir, verbose=0,
                                evaluate_test=False)
    for a, b in zip(straight10, run_weights(workdir)):
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
        **TINY_TRAINING, "glimpse.num_glimpses": 2, "train.steps": 3})
    training.train_and_evaluate(cfg, workdir, verbose=0, evaluate_test=False)
    final = {w.path: w.numpy() for w in training.load_run(workdir)[1].weights}
    os.remove(os.path.join(workdir, "model.weights.h5"))
    _, model = training.load_run(workdir)
    assert any("context" in w.path for w in model.weights)
    for w in model.weights:
        np.testing.assert_array_equal(w.numpy(), final[w.path], w.path)
