"""Analytic FLOP counts against the built models' own layer shapes."""

import numpy as np
import pytest

from ram_tf import config as config_lib
from ram_tf import flops
from ram_tf.builders import build_model


@pytest.mark.parametrize("cell", ["lstm", "rectifier"])
def test_forward_flops_equal_twice_the_dense_multiply_adds(cell):
    cfg = config_lib.resolve("ram", "translated60", {"core.core_units": 64,
                                                     "core.core_cell": cell})
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
    counted = flops.model_flops(cfg)
    assert counted["forward_per_image"] == want
    # 320 rollouts, the first glimpse computed for 32 images only.
    assert counted["train_update"] == 3 * (320 * want - 288 * per_step)


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
    counted = flops.model_flops(cfg)
    assert counted["forward_per_image"] == want
    # The context is computed once per image, not per Monte Carlo copy.
    assert counted["train_update"] == 3 * (320 * want - 288 * context)


def _built(cfg):
    model = build_model(cfg)
    n = cfg.data.canvas_size
    model(np.zeros([1, n, n, cfg.data.channels], np.float32))
    return model


def test_fc_flops_are_twice_the_weight_count():
    cfg = config_lib.resolve("fc", "translated60", {"core.fc_units": 64})
    model = _built(cfg)
    kernels = sum(int(np.prod(w.shape)) for w in model.weights
                  if len(w.shape) == 2)
    assert flops.forward_flops(cfg) == 2 * kernels


def _feature_layers(model):
    """The layers a CNN baseline applies before its FC layers, in order."""
    if not hasattr(model, "convs"):
        return [model.conv1, model.conv2]
    layers = []
    for i, conv in enumerate(model.convs):
        layers.append(conv)
        if i % 2 == 1:
            layers.append(model.pool)
    return layers


@pytest.mark.parametrize("name, tasks", [
    ("cnn", ("mnist28", "cluttered60", "cluttered100")),
    ("cnn6", ("mnist28", "cluttered60", "cluttered250"))])
def test_cnn_flops_count_each_kernel_at_every_output_position(name, tasks):
    for task in tasks:
        cfg = config_lib.resolve(name, task, {})
        model = _built(cfg)
        n = cfg.data.canvas_size
        x = np.zeros([1, n, n, 1], np.float32)
        want = 0
        for layer in _feature_layers(model):
            x = layer(x)
            if hasattr(layer, "kernel"):  # a convolution, not the pool
                want += 2 * x.shape[1] * x.shape[2] * int(np.prod(
                    layer.kernel.shape))
        want += 2 * sum(int(np.prod(d.kernel.shape))
                        for d in (model.fc, model.out))
        assert flops.forward_flops(cfg) == want, task


def test_cnn6_flops_on_cluttered100_by_hand():
    # (output side, C_in, F) of each 3x3 conv: stride 2, then pools by 2.
    convs = [(50, 1, 16), (50, 16, 16), (25, 16, 32), (25, 32, 32),
             (13, 32, 64), (13, 64, 64)]
    want = sum(2 * n * n * 9 * c * f for n, c, f in convs) + 2 * (
        7 * 7 * 64 * 256 + 256 * 10)
    assert want == 49_820_800
    cfg = config_lib.resolve("cnn6", "cluttered100", {})
    assert flops.forward_flops(cfg) == want


def test_forward_flops_of_attention_models_do_not_grow_with_the_canvas():
    small = flops.forward_flops(config_lib.resolve("ram", "cluttered60", {}))
    large = flops.forward_flops(config_lib.resolve(
        "ram", "cluttered100", {"glimpse.num_scales": 3}))
    assert small == large
    assert flops.forward_flops(config_lib.resolve("cnn", "cluttered100", {})) \
        > flops.forward_flops(config_lib.resolve("cnn", "cluttered60", {}))
