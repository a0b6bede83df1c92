"""Analytic FLOP counts against the built model's layer shapes."""

import json

from click.testing import CliRunner

from ram_tf import benchmark
from ram_tf import config as config_lib
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
    flops = benchmark.ram_flops(cfg)
    assert flops["forward_per_image"] == want
    # 320 rollouts, the first glimpse computed for 32 images only.
    assert flops["train_update"] == 3 * (320 * want - 288 * per_step)


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
