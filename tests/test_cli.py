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
    (["train", "--task", "mnist28", "--mean-bound", "1.5"],
     "policy.mean_bound=1.5"),
    (["train", "--model", "dram", "--task", "cluttered60", "--core-cell",
      "rectifier"], "the rectifier core is RAM's"),
    (["train", "--task", "cluttered60", "--min-distractors", "9"],
     "min_distractors <= max_distractors"),
    (["data", "--task", "nope"], "unknown task 'nope'"),
    (["export", "runs/x", "--format", "tflite", "--chains", "3"],
     "--chains applies to --format saved_model only"),
    (["export", "runs/x", "--chains", "0"], "Invalid value for '--chains'"),
    (["export", "runs/x", "--xla", "--format", "onnx"],
     "--xla applies to --format saved_model only"),
    (["export", "runs/x", "--xla", "--precision", "mixed_bfloat16"],
     "--xla exports are float32"),
    (["export", "runs/x", "--xla", "--chains", "2"],
     "--chains 2 with --xla"),
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
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert scores["test_error_mc"] == results["test_error_mc"]
    assert scores["test_error_deterministic"] == results[
        "test_error_deterministic"]


# --- Environment errors: one line, exit code 2 ------------------------------

def _one_line_error(result, *needles):
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines()
              if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], result.output


@pytest.fixture
def read_only(monkeypatch):
    """Make folders read-only: chmod, and for root (whom chmod does not
    stop) refuse writes below them in this process."""
    import builtins
    import stat

    folders = []
    real_open, real_mkdir = builtins.open, os.mkdir

    def below(path):
        path = os.path.abspath(os.fspath(path))
        return any(path.startswith(f + os.sep) for f in folders)

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and below(file) and any(
                c in mode for c in "wax+"):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if below(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    if os.geteuid() == 0:
        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)

    def make(folder):
        folder = os.path.abspath(str(folder))
        os.makedirs(folder, exist_ok=True)
        os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
        folders.append(folder)
        return folder

    yield make
    for folder in folders:
        os.chmod(folder, 0o755)


def _tiny_train_args(workdir):
    return ["train", "--task", "mnist28", "--steps", "2", "--batch-size",
            "4", "--mc-samples", "2", "--num-glimpses", "2", "--core-units",
            "8", "--workdir", str(workdir), "--verbose", "0"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, _session_data):
    workdir = tmp_path_factory.mktemp("cli") / "run"
    result = CliRunner().invoke(cli, _tiny_train_args(workdir))
    assert result.exit_code == 0, result.output
    return str(workdir)


def test_work_dir_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    result = CliRunner().invoke(cli, _tiny_train_args(target))
    _one_line_error(result, str(target), "not a folder")


def test_read_only_work_dir_is_one_line(tmp_path, read_only):
    workdir = read_only(tmp_path / "ro")
    result = CliRunner().invoke(cli, _tiny_train_args(workdir))
    _one_line_error(result, "permission denied", workdir)


def test_curves_into_a_read_only_folder_is_one_line(tmp_path, read_only):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("epoch,updates,val_accuracy\n0,1000,0.5\n")
    out = read_only(tmp_path / "figures")
    result = CliRunner().invoke(cli, ["curves", str(run), "--out",
                                      os.path.join(out, "c.png")])
    _one_line_error(result, "permission denied", out)


def test_read_only_export_folder_is_one_line(tiny_run, tmp_path, read_only):
    out = read_only(tmp_path / "models")
    result = CliRunner().invoke(cli, ["export", tiny_run, "--out", out,
                                      "--no-score"])
    _one_line_error(result, "permission denied", out)


def test_corrupt_config_json_is_one_line_naming_the_file(tiny_run,
                                                         tmp_path):
    import shutil

    for text in ("{not json", '{"model": "ram"}', "[]"):
        copy = tmp_path / f"run{len(text)}"
        shutil.copytree(tiny_run, copy)
        (copy / "config.json").write_text(text)
        for args in (["evaluate", str(copy)],
                     ["visualize", str(copy), "--out", str(tmp_path / "v")]):
            result = CliRunner().invoke(cli, args)
            _one_line_error(result, os.path.join(str(copy), "config.json"))


def test_plot_and_out_create_missing_folders(tiny_run, tmp_path):
    import numpy as np
    from PIL import Image

    runner = CliRunner()
    exported = runner.invoke(cli, ["export", tiny_run, "--out",
                                   str(tmp_path / "models"), "--no-score"])
    assert exported.exit_code == 0, exported.output
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    plot = tmp_path / "new" / "folder" / "p.png"
    result = runner.invoke(cli, ["predict", str(tmp_path / "models" /
                                                "ram_mnist28" / "1"),
                                 str(image), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert plot.exists()
    # A file where a folder should be: one line, before any work.
    (tmp_path / "file").write_text("x")
    result = runner.invoke(cli, ["data", "--task", "mnist28", "--n", "2",
                                 "--out", str(tmp_path / "file" / "g.png")])
    _one_line_error(result, str(tmp_path / "file"))


def test_data_out_into_missing_folder(mnist_dir, tmp_path):
    out = tmp_path / "a" / "b" / "grid.png"
    result = CliRunner().invoke(
        cli, ["data", "--task", "mnist28", "--n", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_first_run_offline_fails_fast_with_the_hint(monkeypatch, tmp_path):
    import time

    from ram_tf import mnist

    monkeypatch.delenv("RAM_TF_MNIST_DIR")
    monkeypatch.setenv("RAM_TF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    for proxy in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(mnist, "DOWNLOAD_ADDRESS", ("192.0.2.1", 443))
    monkeypatch.setattr(mnist, "PROBE_TIMEOUT_S", 2.0)
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["train", "--task", "mnist28",
                                      "--steps", "1", "--workdir",
                                      str(tmp_path / "w"), "--data-dir",
                                      str(tmp_path / "tfds")])
    assert time.monotonic() - start < 60
    _one_line_error(result, "MNIST is not available offline: set "
                            "RAM_TF_MNIST_DIR or pass --mnist-dir")


def test_cuda_probe_lines_stay_off_a_cpu_users_terminal(mnist_dir,
                                                        tmp_path):
    """The installed command in a fresh process, as a user runs it."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    if os.path.exists("/proc/driver/nvidia/version"):
        env["CUDA_VISIBLE_DEVICES"] = ""  # a GPU machine: ask for the CPU
    run = subprocess.run(
        [sys.executable, "-m", "ram_tf_cli.main", "data", "--task",
         "mnist28", "--n", "2", "--out", str(tmp_path / "g.png"),
         "--mnist-dir", str(tmp_path / "missing")],
        capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2
    for probe in ("cuInit", "Could not find cuda drivers", "cudart_stub",
                  "cuda_platform"):
        assert probe not in run.stderr, run.stderr
    # Real errors still show, in one line.
    assert run.stderr.count("Error: ") == 1, run.stderr
    assert "train-images-idx3-ubyte.gz" in run.stderr


def test_native_error_lines_pass_the_filter():
    from ram_tf_cli import stderr_filter

    state = {}
    keep = [line for line in [
        "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: x",
        "I0000 00:00:1.0 1 cudart_stub.cc:31] Could not find cuda drivers",
        "I0000 00:00:1.0 1 cpu_feature_guard.cc:227] This TensorFlow ...",
        "To enable the following instructions: AVX2, in other operations",
        "E0000 00:00:1.0 1 bfc_allocator.cc:1] Allocator ran out of memory",
        "Error: something the user must see",
        "W0000 00:00:1.0 1 op_kernel.cc:1] OUT_OF_RANGE: End of sequence",
        "E0000 00:00:1.0 1 node_def_util.cc:682] NodeDef mentions attribute "
        "Truncate which is not in the op definition: Op<name=Identity; "
        "signature=input:T -> output:T; attr=T:type> This may be expected",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    ] if stderr_filter._keeps(line, 2, True, state)]
    assert keep == [
        "E0000 00:00:1.0 1 bfc_allocator.cc:1] Allocator ran out of memory",
        "Error: something the user must see"]


def test_filter_holds_a_notice_whose_newline_comes_in_a_second_write():
    """The pump of a real process: TFLite writes "INFO: ..." and its
    newline apart; a prompt without a newline still shows at once."""
    import subprocess
    import sys

    script = (
        "import os, time\n"
        "from ram_tf_cli.stderr_filter import filter_native_stderr\n"
        "filter_native_stderr()\n"
        "for part in (b'INFO: Created TensorFlow Lite XNNPACK delegate ',\n"
        "             b'for CPU.', b'\\n', b'kept line\\n', b'Continue? '):\n"
        "    os.write(2, part)\n"
        "    time.sleep(0.2)\n")  # one read of the pump each
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True,
                         text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "kept line\nContinue? "


def test_readme_gives_the_offline_hint_before_the_first_command():
    """An offline user reads how to point at MNIST before running."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "README.md"), encoding="utf-8") as f:
        text = f.read()
    first_command = text.index("```bash\npython3 -m venv")
    assert 0 <= text.find("RAM_TF_MNIST_DIR") < first_command



def test_a_baseline_reports_one_test_error():
    from ram_tf_cli.common import error_summary

    baseline = {"test_error_mc": 9.32, "test_error_deterministic": 9.32,
                "mc_samples": 0}
    assert error_summary(baseline) == "9.32% (deterministic model)"
    ram = {"test_error_mc": 1.26, "test_error_deterministic": 2.12,
           "mc_samples": 10}
    assert error_summary(ram) == "1.26% M=10, 2.12% deterministic"


def test_an_empty_workdir_is_refused_not_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", "--task", "mnist28",
                                      "--workdir", ""])
    _one_line_error(result, "--workdir is empty; expected a folder path")
    assert not (tmp_path / "runs").exists()
