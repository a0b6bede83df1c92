"""The ram-tf command line through click's CliRunner."""

import os

import pytest
from click.testing import CliRunner

from ram_tf_cli.main import cli


@pytest.mark.parametrize("args,message", [
    (["train", "--task", "translated61"], "unknown task 'translated61'"),
    (["train", "--task", "mnist28", "--model", "vit"],
     "Invalid value for '--model': 'vit'"),
    (["train", "--task", "translated60", "--glimpse-size", "61"],
     "cannot be larger than the 60x60 image"),
    (["train", "--task", "mnist28", "--num-glimpses", "0"],
     "glimpse.num_glimpses=0 is invalid"),
    (["train", "--task", "mnist28", "--std", "-0.1"], "policy.std=-0.1"),
    (["train", "--task", "cluttered60", "--min-distractors", "9"],
     "min_distractors <= max_distractors"),
    (["data", "--task", "nope"], "unknown task 'nope'"),
    (["export", "runs/x", "--format", "tflite", "--chains", "3"],
     "--chains applies to --format saved_model only"),
    (["export", "runs/x", "--chains", "0"], "Invalid value for '--chains'"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_mnist_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(
        cli, ["train", "--task", "mnist28", "--steps", "1", "--workdir",
              str(tmp_path / "w"), "--mnist-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "train-images-idx3-ubyte.gz" in result.output


def test_help_groups_options_and_shows_defaults():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    for section in ("Glimpse options", "Core options", "Policy options",
                    "Data options", "Training options"):
        assert section in result.output
    assert "--mc-samples" in result.output


def test_data_command_writes_a_png(mnist_dir, cache_dir, tmp_path):
    out = str(tmp_path / "grid.png")
    result = CliRunner().invoke(
        cli, ["data", "--task", "cluttered60", "--n", "4", "--out", out])
    assert result.exit_code == 0, result.output
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_train_then_evaluate_rescore_the_same_numbers(mnist_dir, cache_dir,
                                                      tmp_path):
    workdir = str(tmp_path / "run")
    runner = CliRunner()
    result = runner.invoke(cli, [
        "train", "--task", "mnist28", "--steps", "2", "--batch-size", "4",
        "--mc-samples", "2", "--num-glimpses", "2", "--core-units", "8",
        "--workdir", workdir, "--verbose", "0"])
    assert result.exit_code == 0, result.output
    assert "test error" in result.output
    again = runner.invoke(cli, ["evaluate", workdir])
    assert again.exit_code == 0, again.output
    import json

    scores = json.loads(again.output[again.output.index("{"):])
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert scores["test_error_mc"] == results["test_error_mc"]
    assert scores["test_error_deterministic"] == results[
        "test_error_deterministic"]
