"""`validate(config)`: an `ExperimentConfig`'s impossible settings, refused
with a `ConfigError` that names the setting, the value received and what is
allowed (`ram_tf.config.resolve` calls it on every config it builds).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from ram_tf.config import BACKENDS
from ram_tf.config import CONTEXT_RESIZES
from ram_tf.config import CORE_CELLS
from ram_tf.config import GRADIENT_SCOPES
from ram_tf.config import GROUPS
from ram_tf.config import INITIAL_LOCATIONS
from ram_tf.config import LABEL_MASKS
from ram_tf.config import MODELS
from ram_tf.config import PRECISIONS
from ram_tf.config import RAM_GRADIENT_SCOPES
from ram_tf.config import STRATEGIES
from ram_tf.config import TASKS
from ram_tf.config import ConfigError
from ram_tf.config import ExperimentConfig

# A field's annotation -> (the types its value may have, their name).
_TYPES = {
    "int": ((numbers.Integral,), "an integer"),
    "float": ((numbers.Real,), "a number"),
    "str": ((str,), "a string"),
    "bool": ((bool,), "true or false"),
    "tuple": ((tuple,), "a list of integers"),
    "bool | str": ((bool, str), "true, false or a string"),
}


def validate(config: ExperimentConfig) -> None:
    """Raise `ConfigError` naming the first impossible setting."""
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(
            "expected an ExperimentConfig, e.g. ram_tf.config.resolve('ram', "
            f"'translated60'); received {type(config).__name__}")
    g, d, p, t, c, m = (
        config.glimpse,
        config.data,
        config.policy,
        config.train,
        config.core,
        config.machine,
    )

    def need(ok: bool, name: str, value: Any, allowed: str) -> None:
        if not ok:
            raise ConfigError(f"{name}={value!r} is invalid: {allowed}")

    need(config.model in MODELS, "model", config.model,
         "allowed: " + ", ".join(MODELS))
    need(config.task in TASKS, "task", config.task,
         "allowed: " + ", ".join(TASKS))
    # A setting of the wrong type (a hand-edited config.json, a Python
    # caller) fails the comparisons below with a TypeError, or not at all;
    # nan and inf pass (or fail) them for the wrong reason.
    for group in GROUPS:
        for field in dataclasses.fields(GROUPS[group]):
            name = f"{group}.{field.name}"
            value = getattr(getattr(config, group), field.name)
            types, words = _TYPES[field.type]
            need(isinstance(value, types)
                 and (bool in types or not isinstance(value, bool))
                 and (not isinstance(value, tuple) or all(
                     isinstance(v, numbers.Integral)
                     and not isinstance(v, bool) for v in value)),
                 name, value, f"must be {words}")
            need(not isinstance(value, float) or abs(value) < float("inf"),
                 name, value, "must be a finite number")
    need(d.canvas_size >= 28, "data.canvas_size", d.canvas_size,
         "the canvas must hold a 28x28 digit (>= 28)")
    need(g.size >= 1, "glimpse.size", g.size, "must be a positive integer")
    need(g.size <= d.canvas_size, "glimpse.size", g.size,
         f"a glimpse cannot be larger than the {d.canvas_size}x"
         f"{d.canvas_size} image")
    need(g.num_scales >= 1, "glimpse.num_scales", g.num_scales, "must be >= 1")
    # Past twice the canvas a coarser scale sees only more zero padding,
    # at the cost of extracting a patch that large.
    most = max(1, (2 * d.canvas_size // g.size).bit_length())
    need(g.num_scales <= most, "glimpse.num_scales", g.num_scales,
         f"the largest patch, {g.size} x 2^{g.num_scales - 1} = "
         f"{g.size * 2 ** (g.num_scales - 1)} px, would exceed twice the "
         f"{d.canvas_size} px canvas: at most {most} scales of {g.size} px")
    need(g.num_glimpses >= 1, "glimpse.num_glimpses", g.num_glimpses,
         "must be >= 1")
    need(m.backend in BACKENDS, "machine.backend", m.backend,
         "allowed: " + ", ".join(BACKENDS))
    for name in ("glimpse_hidden", "location_hidden", "glimpse_units",
                 "core_units"):
        need(getattr(c, name) >= 1, f"core.{name}", getattr(c, name),
             "must be a positive integer")
    need(c.core_layers in (1, 2), "core.core_layers", c.core_layers,
         "allowed: 1 (RAM) or 2 (DRAM)")
    need(c.core_cell in CORE_CELLS, "core.core_cell", c.core_cell,
         "allowed: " + ", ".join(CORE_CELLS))
    need(c.core_cell == "lstm" or c.core_layers == 1, "core.core_cell",
         c.core_cell, "DRAM's two core layers (core.core_layers=2) are "
         "LSTMs; the rectifier core is RAM's")
    need(4 <= c.context_size <= d.canvas_size, "core.context_size",
         c.context_size, f"must be between 4 and the canvas ({d.canvas_size})")
    need(c.context_resize in CONTEXT_RESIZES, "core.context_resize",
         c.context_resize, "allowed: " + ", ".join(CONTEXT_RESIZES))
    need(len(c.context_filters) == len(c.context_kernels) >= 1,
         "core.context_filters", c.context_filters,
         "one filter count per kernel size")
    need(c.fc_units >= 1, "core.fc_units", c.fc_units, "must be >= 1")
    need(p.std > 0, "policy.std", p.std, "must be > 0")
    need(0 < p.mean_bound <= 1, "policy.mean_bound", p.mean_bound,
         "must be in (0, 1]")
    need(p.location_loss_weight >= 0, "policy.location_loss_weight",
         p.location_loss_weight, "must be >= 0")
    need(0 <= p.label_fraction <= 1, "policy.label_fraction",
         p.label_fraction, "must be between 0 and 1")
    need(p.label_mask in LABEL_MASKS, "policy.label_mask",
         p.label_mask, "allowed: " + ", ".join(LABEL_MASKS))
    need(p.initial_location in INITIAL_LOCATIONS,
         "policy.initial_location", p.initial_location,
         "allowed: " + ", ".join(INITIAL_LOCATIONS))
    need(p.gradient_scope in GRADIENT_SCOPES, "policy.gradient_scope",
         p.gradient_scope, "allowed: " + ", ".join(GRADIENT_SCOPES))
    need(p.gradient_scope in RAM_GRADIENT_SCOPES or c.core_layers == 2,
         "policy.gradient_scope", p.gradient_scope,
         f"{p.gradient_scope!r} needs DRAM's two core layers "
         "(core.core_layers=2); RAM allows "
         + " or ".join(RAM_GRADIENT_SCOPES))
    need(p.reinforce_weight >= 0, "policy.reinforce_weight",
         p.reinforce_weight, "must be >= 0")
    need(0 <= d.min_distractors <= d.max_distractors, "data.min_distractors",
         (d.min_distractors, d.max_distractors),
         "need 0 <= min_distractors <= max_distractors")
    need(1 <= d.distractor_size <= min(28, d.canvas_size),
         "data.distractor_size", d.distractor_size,
         "must be between 1 and 28 (cut from a 28x28 digit)")
    # NumPy's and Keras's seeding takes 32 bits; placements use both seeds.
    for name, seed in (("train.seed", t.seed), ("data.seed", d.seed)):
        need(0 <= seed < 2**32, name, seed, "a seed in [0, 2**32 - 1]")
    need(t.steps >= 1, "train.steps", t.steps, "must be >= 1")
    need(t.batch_size >= 1, "train.batch_size", t.batch_size, "must be >= 1")
    need(t.mc_samples >= 1, "train.mc_samples", t.mc_samples, "must be >= 1")
    need(t.learning_rate > 0, "train.learning_rate", t.learning_rate,
         "must be > 0")
    need(0 < t.lr_decay <= 1, "train.lr_decay", t.lr_decay,
         "a factor in (0, 1] per decay period (1: a constant rate)")
    need(t.lr_decay_steps >= 1, "train.lr_decay_steps", t.lr_decay_steps,
         "must be >= 1 (updates per decay period)")
    need(0 <= t.min_learning_rate <= t.learning_rate,
         "train.min_learning_rate", t.min_learning_rate,
         f"the floor of the decayed rate, in [0, train.learning_rate="
         f"{t.learning_rate}]")
    need(t.clipnorm > 0, "train.clipnorm", t.clipnorm,
         "must be > 0 (the largest global gradient norm)")
    need(0 < p.location_loss_decay <= 1, "policy.location_loss_decay",
         p.location_loss_decay, "a factor in (0, 1] per decay period")
    need(isinstance(m.chains, int) and m.chains >= 0, "machine.chains",
         m.chains, "an integer >= 0 (0: automatic)")
    need(m.precision in PRECISIONS, "machine.precision", m.precision,
         "allowed: " + ", ".join(PRECISIONS))
    need(t.steps_per_epoch >= 1, "train.steps_per_epoch", t.steps_per_epoch,
         "must be >= 1")
    need(not (m.xla and m.backend == "extract_glimpse"), "machine.xla", m.xla,
         "extract_glimpse has no XLA kernel; use the matmul backend or "
         "turn xla off")
    need(m.jit_compile in (True, False, "auto"), "machine.jit_compile",
         m.jit_compile, "true, false or \"auto\"")
    need(m.distribute in STRATEGIES, "machine.distribute", m.distribute,
         "allowed: " + ", ".join(STRATEGIES))
    need(isinstance(m.replicas, int) and m.replicas >= 0, "machine.replicas",
         m.replicas, "an integer >= 0 (0: automatic)")
    need(m.replicas <= 1 or m.distribute != "none", "machine.replicas",
         m.replicas, "more than one replica needs machine.distribute "
         "\"mirrored\" or \"multi-worker\"")
    need(m.replicas == 0 or t.batch_size % m.replicas == 0,
         "machine.replicas", m.replicas,
         f"must divide train.batch_size={t.batch_size}: every replica "
         "takes an equal share of the global batch")
    need(not (m.jit_compile is True and m.backend == "extract_glimpse"),
         "machine.jit_compile", m.jit_compile,
         "extract_glimpse has no XLA kernel; use --no-jit or backend matmul")
