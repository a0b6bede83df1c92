"""Small helpers shared by test files (importable: pytest puts tests/ on
sys.path): the tiny configs that train in seconds on a CPU, the one call
that trains a run of them, the CLI in a fresh process, what a run
directory holds, a results row, and checks on gradients.

Overrides are {"group.field": value}, as `ram_tf.config.resolve` takes
them; a test that needs another value spreads one of these and sets it.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ram_tf import config as config_lib
from ram_tf import datasets
from ram_tf import training

# For in-process bf16 tests about what runs: where TensorFlow loaded with
# oneDNN off (CPUs without bf16 units), bf16 rightly warns that it is
# emulated, and `filterwarnings = error` would fail the test on that alone.
BF16_EMULATION_OK = pytest.mark.filterwarnings(
    "ignore:machine.precision='mixed_bfloat16' with TensorFlow's oneDNN")

# A RAM small enough for a few updates in seconds: the number of updates
# and the precision are the test's to choose (precision stays "auto", so a
# run records what the machine chose).
TINY_TRAINING = {
    "glimpse.num_glimpses": 3, "core.glimpse_hidden": 8,
    "core.location_hidden": 8, "core.glimpse_units": 16,
    "core.core_units": 16, "train.batch_size": 8, "train.mc_samples": 2,
    "train.steps_per_epoch": 3,
}

# Three updates of it, in float32: the Keras references of the export tests
# compute as the default export does; with "auto" they would follow the
# machine (bfloat16 on AVX512-BF16 CPUs when TensorFlow loaded with oneDNN
# before ram_tf, as in those test files).
TINY = {**TINY_TRAINING, "train.steps": 3, "machine.precision": "float32"}
# TINY's model and batch as `ram-tf train` flags (the steps are the test's).
TINY_FLAGS = ["--task", "mnist28", "--num-glimpses", "3", "--glimpse-hidden",
              "8", "--location-hidden", "8", "--glimpse-units", "16",
              "--core-units", "16", "--batch-size", "8", "--mc-samples", "2",
              "--steps-per-epoch", "3", "--precision", "float32"]

# One update of a smaller one still: for tests of what exports take and
# refuse, where the weights' values do not matter.
TINIEST = {
    "glimpse.num_glimpses": 2, "core.glimpse_hidden": 8,
    "core.location_hidden": 8, "core.glimpse_units": 8,
    "core.core_units": 8, "train.batch_size": 4, "train.mc_samples": 2,
    "train.steps": 1, "train.steps_per_epoch": 1,
    "machine.precision": "float32",
}


def tiny(steps, **extra):
    """The RAM of `TINY_TRAINING` on mnist28, trained for `steps`."""
    return config_lib.resolve("ram", "mnist28",
                              {**TINY_TRAINING, "train.steps": steps, **extra})


def tiny32(steps, **extra):
    """`tiny` in float32, whatever the machine would choose."""
    return tiny(steps, **{"machine.precision": "float32", **extra})


def train_tiny(workdir, overrides=TINY, task="mnist28"):
    """Trains the RAM of `overrides` on `task` into `workdir`, without the
    test-set score (exports measure their own); returns its config."""
    config = config_lib.resolve("ram", task, overrides)
    training.train_and_evaluate(config, workdir, verbose=0,
                                evaluate_test=False)
    return config


def run_cli(*args, timeout=300):
    """`ram-tf ARGS` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "ram_tf_cli.main", *args],
                          capture_output=True, text=True, timeout=timeout)


def truncate(path, size):
    """Cut a file to `size` bytes, as a kill mid-write leaves it."""
    with open(path, "r+b") as f:
        f.truncate(size)


def write_results_row(results_dir, experiment, updates, **config_overrides):
    """A results row of `experiment` at `updates`, as `ram-tf reproduce`
    copies one: its config.json, and a results.json of fixed numbers
    (3.50 % M=10, 5.00 % deterministic, 2 h)."""
    row = os.path.join(results_dir, experiment.id)
    os.makedirs(row, exist_ok=True)
    cfg = config_lib.resolve(experiment.model, experiment.task, {
        **dict(experiment.settings), "train.steps": updates,
        **config_overrides}).to_dict()
    with open(os.path.join(row, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(row, "results.json"), "w") as f:
        json.dump({"updates": updates, "train_seconds": 7200.0,
                   "test_error_mc": 3.5, "test_error_deterministic": 5.0,
                   "test_images": 10_000, "model": experiment.model,
                   "precision": "float32",
                   "hardware": {"cpu_count": 2, "machine": "x86_64",
                                "gpus": 0}}, f)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def run_weights(workdir):
    """The values of a run's weights, as `load_run` restores them."""
    _, model = training.load_run(workdir)
    return [w.numpy() for w in model.weights]


def logged_updates(workdir):
    """The update count of every row of a run's log.csv; [] while the run
    has not written it yet (tests poll a training process with it)."""
    path = os.path.join(workdir, "log.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(float(r["updates"])) for r in csv.DictReader(f)]


def nonzero(grads) -> bool:
    """True if any gradient in the list exists and is not all zeros."""
    return any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
               for g in grads)



def _error(classes_of, test, batch=500):
    """Test error (%) of `classes_of(images)` on fixed canvases (image
    uint8), counted here batch by batch, apart from ram_tf's own scoring
    (`evaluation.evaluate`, `inference.test_error`) that it checks."""
    wrong = sum(int(np.sum(classes_of(
        test["image"][i:i + batch].astype(np.float32) / 255.0)
        != test["label"][i:i + batch]))
        for i in range(0, len(test["label"]), batch))
    return 100.0 * wrong / len(test["label"])


def deterministic_error(workdir):
    """Test error (%) of a run's saved weights under the policy mean on
    the 10,000 fixed test canvases: a reference for the
    `test_error_deterministic` its results.json records."""
    config, model = training.load_run(workdir)
    return _error(lambda x: np.argmax(model(x)["logits"], -1),
                  datasets.fixed_arrays(config.data, "test"))


def exported_error(path, test):
    """Test error (%) of an exported file (`load_exported`) on `test`: a
    reference for the `test_error` its manifest records."""
    from ram_tf.inference import load_exported

    model = load_exported(path)
    return _error(lambda x: model(x)["classes"], test, batch=1000)
