"""`ram_tf.loading.load_run` and `ram-tf evaluate` on a finished run: the
weights they fall back on, what blames an edited config.json, and the
precision they evaluate in."""

import json
import os

import pytest
from helpers import read_json
from helpers import run_cli
from helpers import tiny32
from helpers import truncate

from ram_tf import rundir
from ram_tf import training


@pytest.fixture
def finished_run(mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny32(3), workdir, verbose=0)
    return workdir


def test_evaluate_with_truncated_weights_uses_the_checkpoint(finished_run):
    truncate(os.path.join(finished_run, "model.weights.h5"), 96)
    out = run_cli("evaluate", finished_run)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "model.weights.h5 cannot be read" in out.stderr
    assert "Traceback" not in out.stderr
    scores = json.loads(out.stdout)
    results = read_json(os.path.join(finished_run, "results.json"))
    # The last checkpoint holds the final weights: the same test error.
    for key in ("test_error_deterministic", "test_error_mc"):
        assert scores[key] == results[key]
    # Without checkpoints there is nothing to fall back on: one line.
    for name in os.listdir(os.path.join(finished_run, "checkpoints")):
        os.remove(os.path.join(finished_run, "checkpoints", name))
    out = run_cli("evaluate", finished_run, "--split", "validation")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(
        f"Error: {finished_run} has an unreadable model.weights.h5 (")
    assert "Traceback" not in out.stderr


def test_weights_of_other_shapes_blame_an_edited_config(finished_run):
    from ram_tf import loading

    path = os.path.join(finished_run, "config.json")
    saved = read_json(path)
    saved["core"]["core_units"] //= 2
    with open(path, "w") as f:
        json.dump(saved, f)
    with pytest.raises(rundir.CheckpointError) as caught:
        loading.load_run(finished_run)
    message = str(caught.value)
    assert "other shapes than the run's config.json builds: if config.json " \
        "was edited, restore it. Nothing was loaded." in message
    assert "Refusing to start again" not in message  # loading trains nothing


def test_evaluate_uses_the_precision_the_run_trained_with(finished_run):
    # An "auto" run that resolved to bfloat16 where it trained: evaluate
    # must not fall back to this process's resolution of "auto".
    config_path = os.path.join(finished_run, "config.json")
    saved = read_json(config_path)
    saved["machine"]["precision"] = "auto"
    rundir.write_json(config_path, saved)
    results_path = os.path.join(finished_run, "results.json")
    rundir.write_json(results_path, {**read_json(results_path),
                                     "precision": "mixed_bfloat16"})
    out = run_cli("evaluate", finished_run, "--split", "validation")
    assert out.returncode == 0, out.stderr[-2000:]
    assert ("evaluating in mixed_bfloat16, the precision the run trained "
            "with (results.json)") in out.stderr
    assert json.loads(out.stdout)["precision"] == "mixed_bfloat16"
