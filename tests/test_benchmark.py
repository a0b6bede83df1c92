"""Analytic FLOP counts against the built model's layer shapes."""

import json
import os

from click.testing import CliRunner

from ram_tf import benchmark
from ram_tf import config as config_lib
from ram_tf import cpu
from ram_tf.model import build_model
from ram_tf_cli.main import cli


def test_forward_flops_equal_twice_the_dense_multiply_adds():
    cfg = config_lib.resolve("ram", "translated60", {"core.core_units": 64})
    model = build_model(cfg)
    per_step = sum(2 * k.shape[0] * k.shape[1]
                   for layer in (model.glimpse_net, model.core)
                   for k in layer.weights if len(k.shape) == 2)
    per_action = sum(2 * k.shape[0] * k.shape[1]
                     for layer in (model.location_net, model.baseline_net)
                     for k in layer.weights if len(k.shape) == 2)
    classify = 2 * 64 * 10
    t = cfg.glimpse.num_glimpses
    want = t * per_step + (t - 1) * per_action + classify
    flops = benchmark.model_flops(cfg)
    assert flops["forward_per_image"] == want
    # 320 rollouts, the first glimpse computed for 32 images only.
    assert flops["train_update"] == 3 * (320 * want - 288 * per_step)


def test_dram_flops_count_both_core_layers_and_the_context_cnn():
    cfg = config_lib.resolve("dram", "cluttered60", {})
    model = build_model(cfg)
    dense = lambda layer: sum(2 * k.shape[0] * k.shape[1]  # noqa: E731
                              for k in layer.weights if len(k.shape) == 2)
    per_step = (dense(model.glimpse_net) + dense(model.core)
                + dense(model.top_core))
    per_action = dense(model.location_net) + dense(model.baseline_net)
    # conv0: 24x24 positions, 5x5x1x32; conv1: 12x12, 3x3x32x32 (after a
    # 2x2 pool); fc: 6x6x32 -> 256.
    context = 2 * (24 * 24 * 25 * 32 + 12 * 12 * 9 * 32 * 32
                   + 6 * 6 * 32 * 256)
    assert context == sum(2 * k.shape[-1] * k.shape[0] * k.shape[1]
                          * k.shape[2] * n * n
                          for k, n in zip([model.context_net.convs[0].kernel,
                                           model.context_net.convs[1].kernel],
                                          (24, 12))) + dense(
        model.context_net.fc)
    t = cfg.glimpse.num_glimpses
    want = context + t * per_step + t * per_action + 2 * 256 * 10
    flops = benchmark.model_flops(cfg)
    assert flops["forward_per_image"] == want
    # The context is computed once per image, not per Monte Carlo copy.
    assert flops["train_update"] == 3 * (320 * want - 288 * context)


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
            cpu.has_native_bf16())
    # The machine is recorded: figures only compare on like CPUs.
    assert figures["machine"]["cpu_count"] == os.cpu_count()
    assert set(figures["machine"]["flags"]) <= set(cpu.VECTOR_FLAGS)
    assert figures["precision"] == "float32" and "matmul_bf16" not in figures


def test_benchmark_in_bf16_also_times_the_bf16_matmul(mnist_dir):
    result = CliRunner().invoke(cli, [
        "benchmark", "--task", "mnist28", "--batch-size", "2",
        "--mc-samples", "2", "--repeats", "1", "--steps", "2",
        "--precision", "mixed_bfloat16"])
    assert result.exit_code == 0, result.output
    assert "precision:       mixed_bfloat16" in result.output
    assert "bf16 matmul:" in result.output


def test_importing_ram_tf_selects_eigen_kernels_unless_the_user_chose():
    import subprocess
    import sys

    code = ("import os, ram_tf; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'])")
    env = {k: v for k, v in os.environ.items()
           if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    out = subprocess.run([sys.executable, "-c", code],
                         env={**env, "TF_ENABLE_ONEDNN_OPTS": "1"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
