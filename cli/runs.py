"""`ram-tf train`, `evaluate`, `data` and `benchmark`."""

from __future__ import annotations

import json
import os

import click

from ram_tf import config as config_lib
from ram_tf import runtime
from ram_tf_cli.common import FIELD_OF
from ram_tf_cli.common import FIGURE_SUFFIXES
from ram_tf_cli.common import GroupedCommand
from ram_tf_cli.common import OutputPath
from ram_tf_cli.common import data_dir_option
from ram_tf_cli.common import echo_library_messages
from ram_tf_cli.common import error_summary
from ram_tf_cli.common import fail
from ram_tf_cli.common import grouped_options
from ram_tf_cli.common import mnist_option
from ram_tf_cli.common import quiet_tensorflow


@click.command(cls=GroupedCommand)
@click.option("--model", "model_name", default="ram",
              type=click.Choice(config_lib.MODELS), help="model")
@click.option("--task", required=True, help="task: " +
              ", ".join(config_lib.TASKS))
@click.option("--workdir", default=None,
              help="run directory [default: runs/MODEL_TASK]")
@mnist_option
@data_dir_option
@click.option("--verbose", type=click.IntRange(0, 2), default=1,
              help="1: progress bar, 2: one line per epoch")
@grouped_options()
def train(model_name, task, workdir, mnist_dir, data_dir, verbose,
          **settings):
    """Train (or resume) a run, then score the fixed test set.

    Running the same command again resumes from the last checkpoint.
    """
    quiet_tensorflow()
    overrides = {FIELD_OF[k]: v for k, v in settings.items()}
    try:
        cfg = config_lib.resolve(model_name, task, overrides)
    except config_lib.ConfigError as e:
        fail(str(e))
    if workdir == "":
        fail("--workdir is empty; expected a folder path (or leave it out "
             "for runs/MODEL_TASK)")
    workdir = workdir or os.path.join("runs", f"{model_name}_{task}")
    runtime.prepare_tensorflow(cfg.machine.precision)  # before TensorFlow loads
    from ram_tf import devices
    from ram_tf import distribute
    from ram_tf import mnist
    from ram_tf import training

    click.echo(f"run directory {workdir}")
    echo_library_messages()
    try:
        results = training.train_and_evaluate(
            cfg, workdir, mnist_dir=mnist_dir, data_dir=data_dir,
            verbose=verbose)
    except (mnist.MnistNotFoundError, training.RunDirError,
            training.TrainingDiverged, devices.DeviceError,
            distribute.DistributeError) as e:
        fail(str(e))
    if not results.get("chief", True):
        click.echo(f"worker {results['worker']}: {results['updates']} "
                   f"updates; the chief writes {workdir}")
        return
    click.echo(
        f"{workdir}: {results['updates']} updates, test error "
        f"{error_summary(results)}")


@click.command()
@click.argument("workdir", type=click.Path(file_okay=False))
@mnist_option
@data_dir_option
@click.option("--split", type=click.Choice(["test", "validation"]),
              default="test")
def evaluate(workdir, mnist_dir, data_dir, split):
    """Re-score a run's latest weights on the fixed test (or val) set,
    in the precision the run trained with."""
    quiet_tensorflow()
    from ram_tf import rundir

    precision, source = rundir.trained_precision(workdir)
    runtime.prepare_tensorflow(precision or "auto")  # before TensorFlow loads
    from ram_tf import mnist
    from ram_tf import training

    echo_library_messages()
    try:
        cfg, model = training.load_run(workdir, precision=precision)
        used = model.get_config().get("precision", "float32")
        click.echo(f"evaluating in {used}"
                   + (f", {source}" if source else ""), err=True)
        scores = training.score(model, cfg, mnist_dir=mnist_dir,
                                data_dir=data_dir, split=split)
    except (mnist.MnistNotFoundError, training.RunDirError) as e:
        fail(str(e))
    click.echo(json.dumps({**scores, "precision": used}, indent=2))


@click.command(cls=GroupedCommand)
@click.option("--task", required=True,
              help="task: " + ", ".join(config_lib.TASKS))
@click.option("--split", type=click.Choice(["train", "validation", "test"]),
              default="test")
@click.option("--n", "count", type=click.IntRange(1, 100), default=16,
              help="examples to draw")
@click.option("--out", default=None, type=OutputPath(
              suffixes=FIGURE_SUFFIXES),
              help="PNG path, folders created [default: TASK.png]")
@mnist_option
@data_dir_option
@grouped_options("data")
def data(task, split, count, out, mnist_dir, data_dir, **settings):
    """Save a PNG grid of a task's examples with ground-truth boxes."""
    quiet_tensorflow()
    overrides = {FIELD_OF[k].split(".")[1]: v for k, v in settings.items()
                 if v is not None}
    # data.seed places the validation and test canvases drawn here.
    seed = overrides.pop("seed", None)
    from ram_tf import datasets
    from ram_tf import mnist
    from ram_tf import plots

    try:
        ds = datasets.load(task, split, batch_size=count, seed=seed,
                           mnist_dir=mnist_dir, data_dir=data_dir,
                           **overrides)
    except config_lib.ConfigError as e:
        fail(str(e))
    except mnist.MnistNotFoundError as e:
        fail(str(e))
    batch = {k: v.numpy() for k, v in next(iter(ds)).items()}
    out = out or f"{task}.png"
    plots.example_grid(batch, out, title=f"{task} ({split})")
    click.echo(out)


@click.command()
@click.option("--model", "model_name", default="ram",
              type=click.Choice(config_lib.ATTENTION_MODELS),
              help="attention model to time (FLOPs counted for each)")
@click.option("--task", default="translated60",
              help="task: " + ", ".join(config_lib.TASKS))
@click.option("--batch-size", type=int, default=32)
@click.option("--mc-samples", type=int, default=10)
@click.option("--repeats", type=click.IntRange(1), default=5,
              help="timed blocks; the median is reported")
@click.option("--steps", type=click.IntRange(1), default=20,
              help="updates per timed block")
@click.option("--precision", type=click.Choice(config_lib.PRECISIONS),
              default=None, help="machine.precision of the timed model "
              "(the exports: float32, and bfloat16 on CPUs that multiply "
              "it natively) [default: the train default]")
@click.option("--chains", type=click.IntRange(min=0), default=None,
              help="machine.chains of the timed model (0: automatic) "
              "[default: the train default]")
@click.option("--backend", type=click.Choice(config_lib.BACKENDS),
              default=None, help="machine.backend, the glimpse sensor of "
              "the timed model [default: the train default]")
@click.option("--exported/--no-exported", default=True, show_default=True,
              help="also time the exported SavedModels, TFLite file and ONNX "
              "model (fresh processes; the slowest part)")
@click.option("--json", "as_json", is_flag=True, help="print JSON only")
@mnist_option
@data_dir_option
def benchmark(model_name, task, batch_size, mc_samples, repeats, steps,
              precision, chains, backend, exported, as_json, mnist_dir,
              data_dir):
    """Training and inference speed, and the machine's matmul rate."""
    quiet_tensorflow()
    try:
        cfg = config_lib.resolve(model_name, task, {
            "train.batch_size": batch_size, "train.mc_samples": mc_samples,
            "machine.precision": precision, "machine.chains": chains,
            "machine.backend": backend})
    except config_lib.ConfigError as e:
        fail(str(e))
    runtime.prepare_tensorflow(cfg.machine.precision)  # before TensorFlow loads
    from ram_tf import benchmark as bench
    from ram_tf import mnist

    try:
        result = bench.run(cfg, repeats=repeats, steps=steps,
                           mnist_dir=mnist_dir, data_dir=data_dir,
                           exported=exported)
    except mnist.MnistNotFoundError as e:
        fail(str(e))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    fit, step = result["train_fit"], result["train_step"]
    click.echo(f"{task}, {model_name}, batch {batch_size} x M {mc_samples} "
               f"(median of {repeats})")
    machine = result["machine"]
    click.echo(f"machine:         {machine['cpu_count']} x {machine['cpu']} "
               f"({', '.join(machine['flags']) or 'no flags read'})")
    click.echo(f"precision:       {result['precision']}, "
               f"{result['chains']} rollout chain(s), "
               f"{result['backend']} sensor")
    click.echo(f"matmul 2048^3:   {result['matmul']['gflops']:.0f} GFLOP/s")
    if "matmul_bf16" in result:
        click.echo(f"bf16 matmul:     {result['matmul_bf16']['gflops']:.0f} "
                   "GFLOP/s")
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
        click.echo(f"Keras inference {key.replace('_', ' ')}: "
                   f"{r['images_per_s']:.0f} images/s")
    exported = result.get("exported")
    chains = exported and exported["saved_model_chains"]
    artefacts = (("saved_model", f"SavedModel ({chains} chains)"),
                 ("saved_model_xla", "SavedModel XLA"),
                 ("saved_model_bf16", "SavedModel bf16"),
                 ("tflite_fp32", "TFLite fp32"), ("onnx", "ONNX"))
    for key, threads in (("tf_defaults", "default threads"),
                         ("intra_op_1", "1 intra-op thread")):
        if exported is None:
            break
        for kind, label in artefacts:
            one = exported[key].get(f"{kind}_batch_1")
            many = exported[key].get(f"{kind}_batch_256")
            if one is None:  # bf16 where the CPU has bf16 units; ONNX extra
                continue
            lat = one["latency_ms"]
            click.echo(f"{label}, {threads}: batch 1 median "
                       f"{lat['median']:.2f} ms, p99 {lat['p99']:.2f} ms; "
                       f"batch 256 {many['images_per_s']:.0f} images/s")
    if exported is not None and "onnx" in exported:
        click.echo(f"ONNX {exported['onnx']}")
    click.echo(f"FLOPs: {result['flops']['train_update'] / 1e9:.2f} G per "
               f"update, {result['flops']['forward_per_image'] / 1e6:.2f} M "
               "per image (deterministic inference)")
