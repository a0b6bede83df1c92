"""Shared pieces of the command line: grouped options, errors, flags."""

from __future__ import annotations

import os
import sys

import click

from ram_tf import config as config_lib


class IntList(click.ParamType):
    """Comma-separated integers, e.g. "32,32"."""

    name = "INTS"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers",
                      param, ctx)


OPTION_GROUPS = {
    "glimpse": [
        ("--glimpse-size", "glimpse.size", int, "patch side g (pixels)"),
        ("--num-scales", "glimpse.num_scales", int, "scales g, 2g, 4g, ..."),
        ("--num-glimpses", "glimpse.num_glimpses", int, "glimpses T"),
        ("--backend", "glimpse.backend",
         click.Choice(["matmul", "gather", "extract_glimpse"]),
         "sensor backend"),
        ("--xla/--no-xla", "glimpse.xla", bool, "XLA-compile the sensor"),
    ],
    "core": [
        ("--glimpse-hidden", "core.glimpse_hidden", int, "width of h_g"),
        ("--location-hidden", "core.location_hidden", int, "width of h_l"),
        ("--glimpse-units", "core.glimpse_units", int, "width of g_t"),
        ("--core-units", "core.core_units", int, "LSTM units"),
        ("--core-layers", "core.core_layers", int, "1 (RAM) or 2 (DRAM)"),
        ("--context-size", "core.context_size", int,
         "DRAM context: side of the downsampled image"),
        ("--context-filters", "core.context_filters", IntList(),
         "DRAM context: conv filters, e.g. 32,32"),
        ("--context-kernels", "core.context_kernels", IntList(),
         "DRAM context: conv kernel sizes, e.g. 5,3"),
        ("--fc-units", "core.fc_units", int, "FC baseline width (64, 256)"),
    ],
    "policy": [
        ("--std", "policy.std", float, "location policy sigma"),
        ("--initial-location", "policy.initial_location",
         click.Choice(["center", "random"]), "l_0"),
        ("--reinforce-weight", "policy.reinforce_weight", float,
         "lambda of the REINFORCE term"),
        ("--gradient-scope", "policy.gradient_scope",
         click.Choice(list(config_lib.GRADIENT_SCOPES)),
         "layers REINFORCE and the baseline error train (DRAM: critic = "
         "baseline error into the top layer and context, where = both; "
         "RAM: location or all)"),
        ("--location-loss-weight", "policy.location_loss_weight", float,
         "L-DRAM gamma_0 (0: no location labels)"),
        ("--location-loss-decay", "policy.location_loss_decay", float,
         "gamma factor per lr decay period"),
        ("--label-fraction", "policy.label_fraction", float,
         "share of training digits whose centre L-DRAM may use"),
        ("--label-mask", "policy.label_mask",
         click.Choice(["fixed", "per-batch"]),
         "fixed seeded subset, or redrawn every batch"),
    ],
    "data": [
        ("--canvas-size", "data.canvas_size", int, "canvas side N"),
        ("--min-distractors", "data.min_distractors", int, "fewest pieces"),
        ("--max-distractors", "data.max_distractors", int, "most pieces"),
        ("--distractor-size", "data.distractor_size", int, "piece side"),
        ("--color/--no-color", "data.color", bool, "RGB clutter"),
        ("--data-seed", "data.seed", int, "seed of validation/test canvases"),
    ],
    "training": [
        ("--steps", "train.steps", int, "updates"),
        ("--batch-size", "train.batch_size", int, "images per update"),
        ("--mc-samples", "train.mc_samples", int,
         "Monte Carlo rollouts per image (training and MC evaluation)"),
        ("--learning-rate", "train.learning_rate", float, "initial Adam lr"),
        ("--lr-decay", "train.lr_decay", float, "lr factor per decay period"),
        ("--lr-decay-steps", "train.lr_decay_steps", int, "decay period"),
        ("--min-learning-rate", "train.min_learning_rate", float, "lr floor"),
        ("--clipnorm", "train.clipnorm", float, "global gradient norm clip"),
        ("--steps-per-epoch", "train.steps_per_epoch", int,
         "updates between validation and checkpoints"),
        ("--seed", "train.seed", int, "weights, training data, samples"),
        ("--jit/--no-jit", "train.jit_compile", bool,
         "XLA-compile the whole train step"),
        ("--precision", "train.precision",
         click.Choice(config_lib.PRECISIONS),
         "matmuls of the glimpse network and core in float32, or bfloat16 "
         "(mixed_bfloat16; fast on CPUs with AVX512-BF16 or AMX); auto: "
         "bfloat16 where the CPU has those"),
        ("--chains", "train.chains", click.IntRange(min=0),
         "batch slices computed concurrently, one per group of cores "
         "(0: automatic, 2 on a multi-core CPU)"),
    ],
}
FIELD_OF = {
    flag.split("/")[0].lstrip("-").replace("-", "_"): field
    for group in OPTION_GROUPS.values() for flag, field, _, _ in group
}


class GroupedCommand(click.Command):
    """Prints options in sections (glimpse / core / policy / ...)."""

    def format_options(self, ctx, formatter):
        sections: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                group = getattr(param, "ram_group", "general")
                sections.setdefault(group, []).append(record)
        for name, rows in sections.items():
            with formatter.section(f"{name.capitalize()} options"):
                formatter.write_dl(rows)


def grouped_options(*groups):
    """Decorator adding the options of `groups` (default: all)."""
    return lambda func: _add_options(func, groups or tuple(OPTION_GROUPS))


def _add_options(func, groups):
    for group in reversed(groups):
        for flag, field, kind, text in reversed(OPTION_GROUPS[group]):
            default = _default_of(field)
            is_flag = kind is bool
            opt = click.option(
                flag, type=None if is_flag else kind, default=None,
                help=f"{text} [task/paper default; e.g. {default}]",
                show_default=False,
            )
            func = opt(func)
            func.__click_params__[-1].ram_group = group
    return func


def _default_of(field: str):
    group, name = field.split(".")
    klass = config_lib._GROUPS[group]
    return klass.__dataclass_fields__[name].default


def fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


mnist_option = click.option(
    "--mnist-dir", envvar="RAM_TF_MNIST_DIR", default=None,
    help="folder with the four original MNIST .gz files (offline); "
         "default: TFDS downloads [env RAM_TF_MNIST_DIR]")
data_dir_option = click.option("--data-dir", default=None,
                                help="tensorflow-datasets data dir")
