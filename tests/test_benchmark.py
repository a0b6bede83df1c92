"""`ram-tf benchmark` and its timing helpers."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import BF16_EMULATION_OK

from ram_tf import benchmark
from ram_tf import runtime
from ram_tf_cli.main import cli


def test_benchmark_command_prints_json(mnist_dir):
    result = CliRunner().invoke(cli, [
        "benchmark", "--task", "mnist28", "--batch-size", "2",
        "--mc-samples", "2", "--repeats", "1", "--steps", "2", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.index("{"):])
    for key in ("train_fit", "train_step", "data", "inference", "matmul",
                "exported"):
        assert key in figures
    assert figures["train_fit"]["rollouts_per_s"] > 0
    assert figures["inference"]["batch_256"]["images_per_s"] > 0
    # The export (2 chains) is timed with the default pool and with one
    # intra-op thread per op, each in its own process.
    exported = figures["exported"]
    assert exported["saved_model_chains"] == 2
    assert exported["tf_defaults"]["intra_op_threads"] == 0
    assert exported["intra_op_1"]["intra_op_threads"] == 1
    for key in ("tf_defaults", "intra_op_1"):
        assert exported[key]["saved_model_batch_256"]["images_per_s"] > 0
        # The bf16 export (`ram-tf export --precision mixed_bfloat16`) is
        # timed where the CPU multiplies bfloat16 natively, only there.
        assert ("saved_model_bf16_batch_256" in exported[key]) == (
            runtime.has_native_bf16())
        # Every other artefact, at both sizes: the XLA SavedModel, TFLite
        # and ONNX (the test extra installs onnxruntime).
        for kind in ("saved_model_xla", "tflite_fp32", "onnx"):
            assert exported[key][f"{kind}_batch_256"]["images_per_s"] > 0
            assert exported[key][f"{kind}_batch_1"]["latency_ms"]
    # Batch 1 is also a latency distribution, for every artefact timed.
    for latency in (figures["inference"]["batch_1"]["latency_ms"],
                    exported["tf_defaults"]["saved_model_batch_1"][
                        "latency_ms"],
                    exported["intra_op_1"]["tflite_fp32_batch_1"][
                        "latency_ms"],
                    exported["tf_defaults"]["saved_model_xla_batch_1"][
                        "latency_ms"],
                    exported["tf_defaults"]["onnx_batch_1"]["latency_ms"]):
        assert latency["calls"] >= 100
        assert 0 < latency["median"] <= latency["p90"] <= latency["p99"] \
            <= latency["max"]
    # What was chosen for the device found, and its name.
    assert figures["machine_plan"]["device"] == "CPU"
    assert figures["device"] == figures["machine"]["cpu"]
    # The machine is recorded: figures only compare on like CPUs.
    assert figures["machine"]["cpu_count"] == os.cpu_count()
    assert set(figures["machine"]["flags"]) <= set(runtime.VECTOR_FLAGS)
    # The default, "auto", as it resolves in this process: float32, or
    # bfloat16 where the CPU has the units and TensorFlow runs oneDNN
    # (`import ram_tf` no longer switches oneDNN off behind the tests).
    assert figures["precision"] == runtime.resolve_precision("auto")
    assert ("matmul_bf16" in figures) == (
        figures["precision"] == "mixed_bfloat16")


def test_benchmark_times_the_sensor_backend_asked_for(mnist_dir):
    result = CliRunner().invoke(cli, [
        "benchmark", "--task", "mnist28", "--batch-size", "2",
        "--mc-samples", "2", "--repeats", "1", "--steps", "2",
        "--backend", "gather", "--no-exported", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.index("{"):])
    assert figures["backend"] == "gather" and "exported" not in figures
    result = CliRunner().invoke(cli, [
        "benchmark", "--task", "mnist28", "--backend", "extract_glimpse",
        "--no-exported"])
    assert result.exit_code == 2 and "machine.xla" in result.output


@BF16_EMULATION_OK
def test_benchmark_in_bf16_also_times_the_bf16_matmul(mnist_dir):
    result = CliRunner().invoke(cli, [
        "benchmark", "--task", "mnist28", "--batch-size", "2",
        "--mc-samples", "2", "--repeats", "1", "--steps", "2",
        "--precision", "mixed_bfloat16", "--no-exported"])
    assert result.exit_code == 0, result.output
    assert "precision:       mixed_bfloat16" in result.output
    assert "bf16 matmul:" in result.output
    # The exports were not timed (the first test times them).
    assert "SavedModel" not in result.output
    assert "TFLite" not in result.output


def test_percentiles_interpolate_like_numpy():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.0]
    for q in (0, 10, 50, 90, 99, 100):
        assert benchmark.percentile(values, q) == pytest.approx(
            float(np.percentile(values, q)))


def test_the_cli_selects_eigen_kernels_unless_the_user_chose():
    # `import ram_tf` sets nothing (tests/test_own_data.py); the ram-tf
    # entry point chooses before TensorFlow loads, bfloat16 commands
    # switch oneDNN on themselves (tests/test_precision.py).
    import subprocess
    import sys

    code = ("import os; from ram_tf_cli import main; "
            "main.cli = lambda **kw: "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS']); main.main()")
    env = {k: v for k, v in os.environ.items()
           if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    out = subprocess.run([sys.executable, "-c", code],
                         env={**env, "TF_ENABLE_ONEDNN_OPTS": "1"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
