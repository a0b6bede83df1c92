"""`ram-tf`: train, evaluate, look at data, benchmark.

Only this package talks to the terminal. Bad input (unknown task or model,
impossible settings, missing MNIST) ends with one line saying what was
wrong and what is allowed, and exit code 2.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys

import click

from ram_tf import config as config_lib

# Every train option: (flag, config field, type, help); grouped in --help.
_OPTION_GROUPS = {
    "glimpse": [
        ("--glimpse-size", "glimpse.size", int, "patch side g (pixels)"),
        ("--num-scales", "glimpse.num_scales", int, "scales g, 2g, 4g, ..."),
        ("--num-glimpses", "glimpse.num_glimpses", int, "glimpses T"),
        ("--backend", "glimpse.backend",
         click.Choice(["gather", "extract_glimpse"]), "sensor backend"),
        ("--xla/--no-xla", "glimpse.xla", bool, "XLA-compile the sensor"),
    ],
    "core": [
        ("--glimpse-hidden", "core.glimpse_hidden", int, "width of h_g"),
        ("--location-hidden", "core.location_hidden", int, "width of h_l"),
        ("--glimpse-units", "core.glimpse_units", int, "width of g_t"),
        ("--core-units", "core.core_units", int, "LSTM units"),
    ],
    "policy": [
        ("--std", "policy.std", float, "location policy sigma"),
        ("--initial-location", "policy.initial_location",
         click.Choice(["center", "random"]), "l_0"),
        ("--reinforce-weight", "policy.reinforce_weight", float,
         "lambda of the REINFORCE term"),
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
    ],
}
_FIELD_OF = {
    flag.split("/")[0].lstrip("-").replace("-", "_"): field
    for group in _OPTION_GROUPS.values() for flag, field, _, _ in group
}


class _GroupedCommand(click.Command):
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


def _grouped_options(*groups):
    """Decorator adding the options of `groups` (default: all)."""
    return lambda func: _add_options(func, groups or tuple(_OPTION_GROUPS))


def _add_options(func, groups):
    for group in reversed(groups):
        for flag, field, kind, text in reversed(_OPTION_GROUPS[group]):
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


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(context_settings={"show_default": True,
                               "help_option_names": ["-h", "--help"]})
@click.version_option(importlib.metadata.version("ram-tf"),
                      prog_name="ram-tf")
def cli():
    """Recurrent Attention Model (Mnih et al. 2014) on MNIST-derived tasks."""


_mnist_option = click.option(
    "--mnist-dir", envvar="RAM_TF_MNIST_DIR", default=None,
    help="folder with the four original MNIST .gz files (offline); "
         "default: TFDS downloads [env RAM_TF_MNIST_DIR]")
_data_dir_option = click.option("--data-dir", default=None,
                                help="tensorflow-datasets data dir")


@cli.command(cls=_GroupedCommand)
@click.option("--model", "model_name", default="ram",
              type=click.Choice(config_lib.MODELS), help="model")
@click.option("--task", required=True, help="task: " +
              ", ".join(config_lib.TASKS))
@click.option("--workdir", default=None,
              help="run directory [default: runs/MODEL_TASK]")
@_mnist_option
@_data_dir_option
@click.option("--verbose", type=click.IntRange(0, 2), default=1,
              help="1: progress bar, 2: one line per epoch")
@_grouped_options()
def train(model_name, task, workdir, mnist_dir, data_dir, verbose,
          **settings):
    """Train (or resume) a run, then score the fixed test set.

    Running the same command again resumes from the last checkpoint.
    """
    _quiet_tensorflow()
    overrides = {_FIELD_OF[k]: v for k, v in settings.items()}
    try:
        cfg = config_lib.resolve(model_name, task, overrides)
    except config_lib.ConfigError as e:
        _fail(str(e))
    workdir = workdir or os.path.join("runs", f"{model_name}_{task}")
    from ram_tf import mnist
    from ram_tf import training

    try:
        results = training.train_and_evaluate(
            cfg, workdir, mnist_dir=mnist_dir, data_dir=data_dir,
            verbose=verbose)
    except (mnist.MnistNotFoundError, training.RunDirError) as e:
        _fail(str(e))
    click.echo(
        f"{workdir}: {results['updates']} updates, test error "
        f"{results['test_error_deterministic']:.2f}% deterministic, "
        f"{results['test_error_mc']:.2f}% with M={results['mc_samples']}")


@cli.command()
@click.argument("workdir", type=click.Path(file_okay=False))
@_mnist_option
@_data_dir_option
@click.option("--split", type=click.Choice(["test", "validation"]),
              default="test")
def evaluate(workdir, mnist_dir, data_dir, split):
    """Re-score a run's latest weights on the fixed test (or val) set."""
    _quiet_tensorflow()
    from ram_tf import mnist
    from ram_tf import training

    try:
        cfg, model = training.load_run(workdir)
        scores = training.score(model, cfg, mnist_dir=mnist_dir,
                                data_dir=data_dir, split=split)
    except (mnist.MnistNotFoundError, training.RunDirError) as e:
        _fail(str(e))
    click.echo(json.dumps(scores, indent=2))


@cli.command(cls=_GroupedCommand)
@click.option("--task", required=True,
              help="task: " + ", ".join(config_lib.TASKS))
@click.option("--split", type=click.Choice(["train", "validation", "test"]),
              default="test")
@click.option("--n", "count", type=click.IntRange(1, 100), default=16,
              help="examples to draw")
@click.option("--out", default=None, help="PNG path [default: TASK.png]")
@_mnist_option
@_data_dir_option
@_grouped_options("data")
def data(task, split, count, out, mnist_dir, data_dir, **settings):
    """Save a PNG grid of a task's examples with ground-truth boxes."""
    _quiet_tensorflow()
    overrides = {_FIELD_OF[k].split(".")[1]: v for k, v in settings.items()
                 if v is not None}
    from ram_tf import datasets
    from ram_tf import mnist
    from ram_tf import plots

    try:
        ds = datasets.load(task, split, batch_size=count,
                           mnist_dir=mnist_dir, data_dir=data_dir,
                           **overrides)
    except config_lib.ConfigError as e:
        _fail(str(e))
    except mnist.MnistNotFoundError as e:
        _fail(str(e))
    batch = {k: v.numpy() for k, v in next(iter(ds)).items()}
    out = out or f"{task}.png"
    plots.example_grid(batch, out, title=f"{task} ({split})")
    click.echo(out)


@cli.command()
@click.option("--model", "model_name", default="ram",
              type=click.Choice(config_lib.MODELS))
@click.option("--task", default="translated60",
              help="task: " + ", ".join(config_lib.TASKS))
@click.option("--batch-size", type=int, default=32)
@click.option("--mc-samples", type=int, default=10)
@click.option("--repeats", type=click.IntRange(1), default=5,
              help="timed blocks; the median is reported")
@click.option("--steps", type=click.IntRange(1), default=20,
              help="updates per timed block")
@click.option("--json", "as_json", is_flag=True, help="print JSON only")
@_mnist_option
@_data_dir_option
def benchmark(model_name, task, batch_size, mc_samples, repeats, steps,
              as_json, mnist_dir, data_dir):
    """Training and inference speed, and the machine's matmul rate."""
    _quiet_tensorflow()
    try:
        cfg = config_lib.resolve(model_name, task, {
            "train.batch_size": batch_size, "train.mc_samples": mc_samples})
    except config_lib.ConfigError as e:
        _fail(str(e))
    from ram_tf import benchmark as bench
    from ram_tf import mnist

    try:
        result = bench.run(cfg, repeats=repeats, steps=steps,
                           mnist_dir=mnist_dir, data_dir=data_dir)
    except mnist.MnistNotFoundError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    fit, step = result["train_fit"], result["train_step"]
    click.echo(f"{task}, {model_name}, batch {batch_size} x M {mc_samples} "
               f"(median of {repeats})")
    click.echo(f"matmul 2048^3:   {result['matmul']['gflops']:.0f} GFLOP/s")
    for name, r in (("train (fit):", fit), ("train step:", step)):
        click.echo(
            f"{name:16} {r['ms_per_update']:.1f} ms/update, "
            f"{r['updates_per_s']:.2f} updates/s, "
            f"{r['images_per_s']:.0f} images/s, "
            f"{r['rollouts_per_s']:.0f} rollouts/s, "
            f"{100 * r['fraction_of_matmul']:.0f}% of matmul rate")
    click.echo(f"data pipeline:   {result['data']['canvases_per_s']:.0f} "
               "canvases/s")
    for key, r in result["inference"].items():
        click.echo(f"inference {key.replace('_', ' ')}: "
                   f"{r['images_per_s']:.0f} images/s")
    click.echo(f"FLOPs: {result['flops']['train_update'] / 1e9:.2f} G per "
               f"update, {result['flops']['forward_per_image'] / 1e6:.2f} M "
               "per image (deterministic inference)")


@cli.command()
@click.argument("workdir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["saved_model", "tflite"]),
              default="saved_model")
@click.option("--quantize", type=click.Choice(
    ["none", "dynamic", "float16", "int8"]), default="none",
    help="TFLite only")
@click.option("--name", default=None, help="[default: MODEL_TASK]")
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="SavedModel version [default: next free number]")
@click.option("--out", default="exported_models", help="exported-models dir")
@click.option("--no-score", is_flag=True,
              help="skip measuring the artefact's test error")
@_mnist_option
@_data_dir_option
def export(workdir, fmt, quantize, name, version, out, no_score, mnist_dir,
           data_dir):
    """Export a run as a TF Serving SavedModel or a TFLite file."""
    _quiet_tensorflow()
    if quantize != "none" and fmt != "tflite":
        _fail("--quantize applies to --format tflite only")
    from ram_tf import export as export_lib
    from ram_tf import mnist
    from ram_tf import training

    try:
        entry = export_lib.export_run(
            workdir, out=out, name=name, version=version, fmt=fmt,
            quantize=quantize, mnist_dir=mnist_dir, data_dir=data_dir,
            score=not no_score)
    except (export_lib.ExportError, training.RunDirError,
            mnist.MnistNotFoundError) as e:
        _fail(str(e))
    error = entry.get("test_error")
    click.echo(entry["path"] + (f": test error {error:.2f}%"
                                if error is not None else ""))


@cli.command()
@click.argument("model_path", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
@click.option("--plot", default=None,
              help="PNG with the glimpse boxes (IMAGE name appended when "
                   "several images are given)")
def predict(model_path, images, plot):
    """Classify PNG/JPEG images with an exported model (SavedModel/TFLite)."""
    _quiet_tensorflow()
    import numpy as np
    from PIL import Image

    from ram_tf import inference
    from ram_tf import plots

    try:
        fn = inference.load_exported(model_path)
    except (FileNotFoundError, OSError, ValueError) as e:
        _fail(f"cannot load {model_path}: {e}")
    h, w, c = fn.input_shape
    sensor = _sensor_of(model_path)
    for path in images:
        try:
            picture = Image.open(path).convert("L" if c == 1 else "RGB")
        except OSError as e:
            _fail(f"{path} is not a readable PNG/JPEG image ({e})")
        x = np.asarray(picture, np.float32) / 255.0
        x = x.reshape(x.shape[0], x.shape[1], c)
        if x.shape[:2] != (h, w):
            _fail(f"{path} is {x.shape[1]}x{x.shape[0]} pixels; the model "
                  f"expects {w}x{h}")
        out = fn(x[None])
        k = int(out["classes"][0])
        route = " ".join(f"({y:+.2f},{x_:+.2f})"
                         for y, x_ in out["locations"][0])
        click.echo(f"{path}: class {k} (p={out['probabilities'][0, k]:.3f}) "
                   f"glimpses {route}")
        if plot:
            target = plot
            if len(images) > 1:
                stem = os.path.splitext(os.path.basename(path))[0]
                target = f"{os.path.splitext(plot)[0]}_{stem}.png"
            plots.glimpse_path(x, out["locations"][0], target,
                               title=f"prediction {k}", **sensor)
            click.echo(f"  -> {target}")


def _sensor_of(model_path):
    """Glimpse size and scales from the export's MANIFEST.json, if any."""
    here = os.path.abspath(model_path)
    for folder in (os.path.dirname(here), os.path.dirname(os.path.dirname(
            here)), here):
        manifest = os.path.join(folder, "MANIFEST.json")
        if os.path.exists(manifest):
            with open(manifest) as f:
                glimpse = json.load(f)["config"]["glimpse"]
            return {"glimpse_size": glimpse["size"],
                    "num_scales": glimpse["num_scales"]}
    return {}


@cli.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--n", "count", type=click.IntRange(1, 64), default=16,
              help="test images")
@click.option("--out", default="visualize", help="output folder")
@click.option("--sample", is_flag=True,
              help="stochastic rollouts instead of the policy mean")
@click.option("--seed", type=int, default=0, help="seed of --sample")
@_mnist_option
@_data_dir_option
def visualize(run, count, out, sample, seed, mnist_dir, data_dir):
    """Glimpse GIFs (one per image) and a trajectory grid of a run."""
    _quiet_tensorflow()
    from ram_tf import datasets
    from ram_tf import mnist
    from ram_tf import training
    from ram_tf import visualize as vis

    try:
        cfg, model = training.load_run(run)
        arrays = datasets.fixed_arrays(cfg.data, "test", mnist_dir, data_dir)
    except (training.RunDirError, mnist.MnistNotFoundError) as e:
        _fail(str(e))
    os.makedirs(out, exist_ok=True)
    images = arrays["image"][:count].astype("float32") / 255.0
    labels = arrays["label"][:count]
    rolls = vis.rollouts(model, images, sample=sample, seed=seed)
    for i in range(count):
        path = os.path.join(out, f"glimpses_{i:02d}.gif")
        one = {k: v[i] for k, v in rolls.items()}
        vis.animation(images[i], one, labels[i], path,
                      bbox=arrays["bbox"][i], glimpse_size=cfg.glimpse.size)
    grid = os.path.join(out, "trajectories.png")
    vis.trajectory_grid(images, rolls, labels, grid)
    right = int((rolls["prediction"] == labels).sum())
    click.echo(f"{out}: {count} GIFs and {grid} ({right}/{count} right)")


@cli.command()
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="curves.png", help="PNG path")
@click.option("--threshold", "thresholds", type=float, multiple=True,
              default=(0.9, 0.95), help="validation accuracy thresholds")
def curves(runs, out, thresholds):
    """Learning curves of runs in one PNG; updates to reach thresholds."""
    from ram_tf import plots

    logs = {}
    for run in runs:
        path = os.path.join(run, "log.csv")
        if not os.path.exists(path):
            _fail(f"{run} has no log.csv (not a run directory)")
        logs[os.path.basename(os.path.normpath(run))] = plots.read_log(path)
    plots.learning_curves(logs, out)
    click.echo(out)
    first = None
    for threshold in thresholds:
        for i, (label, log) in enumerate(logs.items()):
            reached = plots.updates_to_reach(log, threshold)
            if i == 0:
                first = reached
            text = ("not reached" if reached is None
                    else f"{reached:.0f} updates")
            speedup = ""
            if i > 0 and reached and first:
                speedup = f" (speed-up x{first / reached:.2f} vs first run)"
            click.echo(f"val acc >= {threshold:.0%}: {label}: {text}"
                       f"{speedup}")


def main():
    cli(prog_name="ram-tf")


if __name__ == "__main__":
    main()
