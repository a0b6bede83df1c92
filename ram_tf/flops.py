"""Analytic FLOP counts (2 per multiply-add) of every model, per image.

The case for hard attention is compute per image: RAM reads k patches of
g x g pixels per glimpse, whatever the canvas size, where the baselines
read every pixel. `forward_flops(config)` is the deterministic forward
pass of one image (one rollout for the attention models); the results table
prints it beside each error.
"""

from __future__ import annotations

import math

from ram_tf.config import DEEP_CONVS


def forward_flops(config) -> float:
    """FLOPs of one image's deterministic forward pass, for any model."""
    if config.model == "fc":
        return _fc_flops(config)
    if config.model == "cnn":
        return _cnn_flops(config)
    if config.model == "cnn6":
        return _cnn6_flops(config)
    return model_flops(config)["forward_per_image"]


def _fc_flops(config) -> float:
    """x -> FC_w -> FC_w -> FC_10: 2 (N^2 C w + w^2 + 10 w)."""
    d, w = config.data, config.core.fc_units
    pixels = d.canvas_size * d.canvas_size * d.channels
    return float(2 * (pixels * w + w * w + w * 10))


def _cnn_flops(config) -> float:
    """Conv(8, 10x10, /5) -> Conv(16, 5x5, /2) -> FC 256 -> FC 10, "same"
    padding: each conv costs 2 k^2 C_in F per output position."""
    d = config.data
    side1 = math.ceil(d.canvas_size / 5)
    side2 = math.ceil(side1 / 2)
    conv1 = 2 * side1 * side1 * 10 * 10 * d.channels * 8
    conv2 = 2 * side2 * side2 * 5 * 5 * 8 * 16
    dense = 2 * (side2 * side2 * 16 * 256 + 256 * 10)
    return float(conv1 + conv2 + dense)


def _cnn6_flops(config) -> float:
    """`DEEP_CONVS`: 3x3 "same" convs, 2 * 9 C_in F per output position, a
    2x2 "same" pool after every second one, then FC 256 -> FC 10."""
    d = config.data
    side, channels, total = d.canvas_size, d.channels, 0
    for i, (filters, stride) in enumerate(DEEP_CONVS):
        side = math.ceil(side / stride)
        total += 2 * side * side * 9 * channels * filters
        channels = filters
        if i % 2 == 1:
            side = math.ceil(side / 2)
    return float(total + 2 * (side * side * channels * 256 + 256 * 10))


def model_flops(config) -> dict[str, float]:
    """Analytic FLOPs (2 per multiply-add) of RAM or DRAM per image.

    Counted: the dense and conv layers (biases, activations and the glimpse
    sensor's window selection are left out: the sensor is a gather, or
    0/1 selection matmuls, neither a learned layer).
      per glimpse: glimpse network + each LSTM layer, [x, h] (D + U) x 4U
        (the rectifier core: (D + U) x U);
      per action: location mean (U x 2) and baseline (U x 1); RAM has T - 1
        actions, DRAM T (its l_0 comes from the context);
      DRAM's context network: each "same" conv at (s / 2^i)^2 positions,
        k^2 C_in x F, then FC (s / 2^L)^2 F_L x U.
    forward: one deterministic rollout (T glimpses, classifier once);
    train_update: per update of batch_size x mc_samples rollouts, counted
      as 3 x forward (forward + backward through activations and weights),
      with the work shared across the M copies (RAM's first glimpse, DRAM's
      context) computed once per image.
    """
    g, c, d, t = config.glimpse, config.core, config.data, config.train
    u = c.core_units
    gates = 4 if c.core_cell == "lstm" else 1  # LSTM: i, f, g, o
    patch = g.num_scales * g.size * g.size * d.channels
    per_glimpse = 2 * (patch * c.glimpse_hidden + 2 * c.location_hidden
                       + (c.glimpse_hidden + c.location_hidden)
                       * c.glimpse_units
                       + (c.glimpse_units + u) * gates * u)
    per_glimpse += 2 * (c.core_layers - 1) * (u + u) * 4 * u
    per_action = 2 * u * 3  # location mean (2) + baseline (1)
    classify = 2 * u * 10
    steps = g.num_glimpses
    dram = c.core_layers == 2
    context = 0
    if dram:
        side, channels = c.context_size, d.channels
        for f, k in zip(c.context_filters, c.context_kernels):
            context += 2 * side * side * k * k * channels * f
            side, channels = side // 2, f
        context += 2 * side * side * channels * u
    actions = steps if dram else steps - 1
    forward = (context + steps * per_glimpse + actions * per_action
               + classify)
    rollouts = t.batch_size * t.mc_samples
    copies = rollouts - t.batch_size
    if dram:
        shared = context
    elif config.policy.initial_location == "center" and t.mc_samples > 1:
        shared = per_glimpse
    else:
        shared = 0
    return {"forward_per_image": float(forward),
            "train_update": float(3 * (rollouts * forward - copies * shared))}
