"""Every model from an `ExperimentConfig`: the one place that knows them all.

`build_model(config)` builds RAM (`ram_tf.model`), DRAM and L-DRAM
(`ram_tf.dram`) or the papers' baselines (`ram_tf.baselines`) on the
task's image shape; `model_kwargs(config)` gives the attention models'
constructor arguments, with machine.precision resolved for this machine
(`ram_tf.runtime.resolve_precision`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ram_tf import baselines
from ram_tf import config as config_lib
from ram_tf import runtime
from ram_tf import validation
from ram_tf.dram import DeepRecurrentAttentionModel
from ram_tf.model import RecurrentAttentionModel


def model_kwargs(config) -> dict:
    """Constructor arguments of RAM / DRAM from an `ExperimentConfig`."""
    g, c, p, t = config.glimpse, config.core, config.policy, config.train
    m = config.machine
    kwargs = dict(
        glimpse_size=g.size, num_scales=g.num_scales,
        num_glimpses=g.num_glimpses, backend=m.backend, xla_sensor=m.xla,
        glimpse_hidden=c.glimpse_hidden, location_hidden=c.location_hidden,
        glimpse_units=c.glimpse_units, core_units=c.core_units,
        core_cell=c.core_cell,
        std=p.std, mean_bound=p.mean_bound,
        initial_location=p.initial_location,
        reinforce_weight=p.reinforce_weight,
        gradient_scope=p.gradient_scope, mc_samples=t.mc_samples,
        seed=t.seed, precision=runtime.resolve_precision(m.precision),
        name=config.model,
    )
    if c.core_layers == 2:
        kwargs.update(
            context_size=c.context_size, context_filters=c.context_filters,
            context_kernels=c.context_kernels,
            context_resize=c.context_resize,
            location_loss_weight=p.location_loss_weight,
            location_loss_decay=p.location_loss_decay,
            location_loss_decay_steps=t.lr_decay_steps)
    return kwargs


def build_model(config) -> keras.Model:
    """The model an `ExperimentConfig` names (RAM, DRAM, L-DRAM, FC, CNNs),
    built on the task's image shape; an impossible config is a
    `ConfigError` (`ram_tf.validation.validate`)."""
    validation.validate(config)
    d = config.data
    if config.model in config_lib.BASELINE_MODELS:
        model = baselines.build(config)
    elif config.core.core_layers == 2:
        model = DeepRecurrentAttentionModel(**model_kwargs(config))
    else:
        model = RecurrentAttentionModel(**model_kwargs(config))
    model(tf.zeros([1, d.canvas_size, d.canvas_size, d.channels]))
    return model
