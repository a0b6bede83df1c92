"""Shared pieces of the command line: grouped options, errors, flags.

Errors: `RamGroup` turns what the environment gets wrong (permissions, a
file where a folder should be, a missing folder, a damaged JSON file of a
run or export) into one line and exit code 2, for every command.
`OutputPath` creates the parent folders of the files a command writes.
TensorFlow's native log lines are filtered in `ram_tf_cli.stderr_filter`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys

import click

from ram_tf import config as config_lib
from ram_tf_cli.stderr_filter import filter_native_stderr  # noqa: F401 (public)


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
    ],
    "core": [
        ("--glimpse-hidden", "core.glimpse_hidden", int, "width of h_g"),
        ("--location-hidden", "core.location_hidden", int, "width of h_l"),
        ("--glimpse-units", "core.glimpse_units", int, "width of g_t"),
        ("--core-units", "core.core_units", int, "core units"),
        ("--core-cell", "core.core_cell", click.Choice(config_lib.CORE_CELLS),
         "lstm, or rectifier: Mnih et al.'s MNIST core (RAM)"),
        ("--core-layers", "core.core_layers", int, "1 (RAM) or 2 (DRAM)"),
        ("--context-size", "core.context_size", int,
         "DRAM context: side of the downsampled image"),
        ("--context-filters", "core.context_filters", IntList(),
         "DRAM context: conv filters, e.g. 32,32"),
        ("--context-kernels", "core.context_kernels", IntList(),
         "DRAM context: conv kernel sizes, e.g. 5,3"),
        ("--context-resize", "core.context_resize",
         click.Choice(config_lib.CONTEXT_RESIZES),
         "DRAM context: area (block means, then bilinear) or bilinear"),
        ("--fc-units", "core.fc_units", int, "FC baseline width (64, 256)"),
    ],
    "policy": [
        ("--std", "policy.std", float, "location policy sigma"),
        ("--mean-bound", "policy.mean_bound", float,
         "a in mu = a tanh(FC(h)), in (0, 1]"),
        ("--initial-location", "policy.initial_location",
         click.Choice(config_lib.INITIAL_LOCATIONS), "l_0"),
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
         click.Choice(config_lib.LABEL_MASKS),
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
    ],
    "machine": [
        ("--backend", "machine.backend",
         click.Choice(config_lib.BACKENDS),
         "sensor backend"),
        ("--xla/--no-xla", "machine.xla", bool, "XLA-compile the sensor"),
        ("--jit/--no-jit", "machine.jit_compile", bool,
         "XLA-compile the whole train step (auto: on a GPU)"),
        ("--precision", "machine.precision",
         click.Choice(config_lib.PRECISIONS),
         "matmuls of the glimpse network and core in float32, or bfloat16 "
         "(mixed_bfloat16; fast on CPUs with AVX512-BF16 or AMX); auto: "
         "bfloat16 where the CPU has those"),
        ("--chains", "machine.chains", click.IntRange(min=0),
         "batch slices computed concurrently, one per group of cores "
         "(0: automatic, 2 on a multi-core CPU)"),
        ("--distribute", "machine.distribute",
         click.Choice(config_lib.STRATEGIES),
         "tf.distribute strategy: mirrored over this machine's devices, "
         "multi-worker over the TF_CONFIG cluster (docs/distributed.md)"),
        ("--replicas", "machine.replicas", click.IntRange(min=0),
         "devices per worker (0: every GPU; without GPUs N splits the CPU "
         "into N logical devices)"),
    ],
}
FIELD_OF = {
    flag.split("/")[0].lstrip("-").replace("-", "_"): field
    for group in OPTION_GROUPS.values() for flag, field, _, _ in group
}


class GroupedCommand(click.Command):
    """Prints options in sections (glimpse / core / ... / machine)."""

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
    klass = config_lib.GROUPS[group]
    return klass.__dataclass_fields__[name].default


def fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def error_summary(results: dict) -> str:
    """"1.26% M=10, 2.12% deterministic" from a results dict; a baseline
    (no Monte Carlo rollouts, mc_samples 0) has one error."""
    det = f"{results['test_error_deterministic']:.2f}%"
    if not results.get("mc_samples"):
        return f"{det} (deterministic model)"
    return (f"{results['test_error_mc']:.2f}% M={results['mc_samples']}, "
            f"{det} deterministic")


def quiet_tensorflow() -> None:
    """TensorFlow's C++ log at ERROR and above, unless the user chose."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The figure formats matplotlib writes that the commands offer.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


class OutputPath(click.Path):
    """A path the command writes: a file, whose parent folders are created
    here, or (`folder=True`) a folder, which the command creates once its
    inputs have loaded. `suffixes`: the file endings allowed."""

    def __init__(self, folder: bool = False, suffixes=()):
        super().__init__(file_okay=not folder, dir_okay=folder)
        self.folder = folder
        self.suffixes = tuple(suffixes)

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if self.suffixes and not value.lower().endswith(self.suffixes):
            self.fail(f"{value!r} does not end in one of "
                      f"{', '.join(self.suffixes)}", param, ctx)
        if not self.folder:  # OSError: one line (RamGroup)
            os.makedirs(os.path.dirname(os.path.abspath(value)),
                        exist_ok=True)
        return value


def _os_error_line(e: OSError) -> str:
    name = e.filename if e.filename is not None else None
    if name is None:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, PermissionError) or e.errno == errno.EROFS:
        what = ("read-only file system" if e.errno == errno.EROFS
                else "permission denied")
        return (f"cannot write or read {name}: {what}; expected a path this "
                "user can write to (choose another path or fix its "
                "permissions)")
    if isinstance(e, FileExistsError):
        return (f"{name} exists and is not a folder; expected a folder or a "
                "path that does not exist yet")
    if isinstance(e, NotADirectoryError):
        return (f"{name}: part of this path is a file, not a folder; "
                "expected folders along the path")
    if isinstance(e, IsADirectoryError):
        return f"{name} is a folder; expected a file"
    if isinstance(e, FileNotFoundError):
        return f"{name} does not exist; expected an existing file or folder"
    return f"{e.strerror or e}: {name}"


def _json_file_in(tb) -> str | None:
    """The innermost .json file a frame of the traceback was reading."""
    found = None
    while tb is not None:
        for key, value in tb.tb_frame.f_locals.items():
            name = getattr(value, "name", value) if key in (
                "f", "file", "handle") else value
            if key in ("path", "manifest", "f", "file", "handle",
                       "filename") and isinstance(name, str) \
                    and name.endswith(".json"):
                found = name
        tb = tb.tb_next
    return found


def _from_config_parsing(tb) -> bool:
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in ("from_dict", "from_json") and code.co_filename\
                .endswith(os.path.join("ram_tf", "config.py")):
            return True
        tb = tb.tb_next
    return False


def _tf_error_line(e: Exception) -> str | None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    kinds = (tf.errors.PermissionDeniedError, tf.errors.AlreadyExistsError,
             tf.errors.NotFoundError)
    if isinstance(e, kinds):
        text = (getattr(e, "message", "") or str(e)).strip()
        return text.splitlines()[0] if text else type(e).__name__
    return None


class RamGroup(click.Group):
    """A click group whose commands end environment errors in one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OSError as e:
            fail(_os_error_line(e))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError,
                ValueError) as e:
            tb = e.__traceback__
            if not (isinstance(e, json.JSONDecodeError)
                    or _from_config_parsing(tb)):
                raise  # a bug: keep the traceback
            name = _json_file_in(tb) or "a JSON file of the run or export"
            reason = (str(e) if not isinstance(e, KeyError)
                      else f"no {e} field")
            fail(f"{name} is damaged or not written by ram-tf "
                 f"({type(e).__name__}: {reason}); expected the JSON file "
                 "ram-tf writes there: restore it, or train or export "
                 "into another folder")
        except Exception as e:
            line = _tf_error_line(e)
            if line is None:
                raise
            fail(line)


mnist_option = click.option(
    "--mnist-dir", envvar="RAM_TF_MNIST_DIR", default=None,
    help="folder with the four original MNIST .gz files (offline); "
         "default: TFDS downloads [env RAM_TF_MNIST_DIR]")
data_dir_option = click.option("--data-dir", default=None,
                                help="tensorflow-datasets data dir")


class _Echo(logging.Handler):
    """The library's notes (logger `ram_tf`) as plain lines; warnings on
    stderr."""

    def emit(self, record):
        click.echo(self.format(record),
                   err=record.levelno >= logging.WARNING)


def echo_library_messages() -> None:
    """Show the library's logger `ram_tf` (INFO and up) on the terminal."""
    logger = logging.getLogger("ram_tf")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _Echo) for h in logger.handlers):
        logger.addHandler(_Echo())
