"""`ram-tf export` and `ram-tf predict`."""

from __future__ import annotations

import os
import warnings

import click

from ram_tf import manifest as manifest_lib
from ram_tf_cli.common import FIGURE_SUFFIXES
from ram_tf_cli.common import OutputPath
from ram_tf_cli.common import data_dir_option
from ram_tf_cli.common import fail
from ram_tf_cli.common import mnist_option
from ram_tf_cli.common import quiet_tensorflow


@click.command()
@click.argument("workdir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(manifest_lib.FORMATS),
              default="saved_model")
@click.option("--quantize", type=click.Choice(manifest_lib.QUANTIZE),
              default="none", help="TFLite only")
@click.option("--name", default=None, help="[default: MODEL_TASK]")
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="SavedModel version; required beside existing versions, "
              "since TF Serving serves the highest [default: 1 in a new "
              "model folder]")
# Not exported_models/, the repository's shipped models.
@click.option("--out", default=manifest_lib.DEFAULT_OUT,
              help="exported-models dir")
@click.option("--force", is_flag=True,
              help="replace an existing version or TFLite file (otherwise "
              "refused, nothing written)")
@click.option("--chains", type=click.IntRange(1), default=None,
              help="SavedModel only: batch slices computed concurrently; "
              "serve with one intra-op thread per core's slice "
              "(docs/serving.md, \"Rollout chains\"); 1: no slicing "
              f"[default: {manifest_lib.DEFAULT_CHAINS}; 1 with --xla]")
@click.option("--xla", is_flag=True,
              help="SavedModel only, float32: XLA-compiled signatures, "
              "faster at batch 1; TF Serving runs them with "
              "--xla_cpu_compilation_enabled=true (docs/serving.md, "
              "\"XLA\")")
@click.option("--precision", type=click.Choice(manifest_lib.EXPORT_PRECISIONS),
              default="float32", show_default=True,
              help="SavedModel only: mixed_bfloat16 multiplies the glimpse "
              "network, core and sensor in bfloat16: faster at large "
              "batches on CPUs with AVX512-BF16 or AMX, slower without "
              "them (docs/serving.md, \"Precision\")")
@click.option("--no-score", is_flag=True,
              help="skip measuring the artefact's test error")
@mnist_option
@data_dir_option
def export(workdir, fmt, quantize, name, version, out, chains, xla,
           precision, force, no_score, mnist_dir, data_dir):
    """Export a run as a TF Serving SavedModel, a TFLite file or an ONNX file.

    --format onnx writes the deterministic float32 policy for ONNX Runtime
    (pip install "ram-tf[onnx]"), checked there against TensorFlow on test
    images before it is written (docs/serving.md, "ONNX").

    An existing version or file is replaced only with --force; a new
    version beside existing ones needs --version (TF Serving serves the
    highest); a model folder holds one task and input shape. A refused
    export writes nothing. --out defaults to exports/, not the repository's
    shipped models (exported_models/).
    """
    quiet_tensorflow()
    if manifest_lib.is_shipped_folder(out):
        click.secho(f"WARNING: {out} is this repository's folder of shipped "
                    "models; an export there changes what is shipped and "
                    "served (use --out elsewhere for your own models)",
                    err=True, fg="red", bold=True)
    if quantize != "none" and fmt != "tflite":
        fail("--quantize applies to --format tflite only")
    if precision != "float32" and fmt != "saved_model":
        fail("--precision mixed_bfloat16 applies to --format saved_model "
             "only (TFLite and ONNX exports are float32; see --quantize "
             "float16 for a smaller TFLite file)")
    if chains is not None and fmt != "saved_model":
        fail("--chains applies to --format saved_model only")
    if xla and fmt != "saved_model":
        fail("--xla applies to --format saved_model only (TFLite and ONNX "
             "files run in their own runtimes)")
    if xla and precision != "float32":
        fail("--xla exports are float32; --precision mixed_bfloat16 applies "
             "to plain SavedModels")
    if xla and chains not in (None, 1):
        fail(f"--chains {chains} with --xla: an XLA export computes a batch "
             "as one cluster (chains 1)")
    from ram_tf import runtime

    # The test error is measured here: bfloat16 matmuls need oneDNN. After
    # the checks above, so that a refused command warns of nothing.
    runtime.prepare_tensorflow(precision)
    from ram_tf import export as export_lib
    from ram_tf import mnist
    from ram_tf import training

    try:
        entry = export_lib.export_run(
            workdir, out=out, name=name, version=version, fmt=fmt,
            quantize=quantize, chains=chains, precision=precision, xla=xla,
            force=force, mnist_dir=mnist_dir,
            data_dir=data_dir,
            score=not no_score)
    except (export_lib.ExportError, training.RunDirError,
            mnist.MnistNotFoundError) as e:
        fail(str(e))
    error = entry.get("test_error")
    click.echo(entry["path"] + (f": test error {error:.2f}%"
                                if error is not None else ""))
    if entry["updates"] < entry["planned_updates"]:
        click.echo(f"note: the run is unfinished; exported its latest "
                   f"checkpoint, {entry['updates']:,} of "
                   f"{entry['planned_updates']:,} updates")


@click.command()
@click.argument("model_path", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
@click.option("--plot", default=None, type=OutputPath(
              suffixes=FIGURE_SUFFIXES),
              help="PNG with the glimpse boxes (IMAGE name appended when "
                   "several images are given)")
def predict(model_path, images, plot):
    """Classify images with an exported model (SavedModel folder, .tflite or
    .onnx).

    IMAGES are PNG/JPEG files (scaled to [0, 1]) or .npy float arrays
    [H, W] or [H, W, C] (taken as they are). The models expect MNIST's look:
    a white digit (1.0) on a black background (0.0), float pixels in
    [0, 1], at the model's input size (e.g. 60x60). NaN or Inf pixels are
    refused; values outside [0, 1] and inverted-looking images (dark digit
    on white) get a warning, since the model answers them wrongly with
    confidence.

    The model is checked against the sha256 its MANIFEST.json records.
    Load only SavedModels you trust: a SavedModel's graph can hold ops that
    read and write files (TFLite builtin ops cannot).
    """
    quiet_tensorflow()
    from ram_tf import inference
    from ram_tf import plots

    try:
        fn = inference.load_exported(model_path)
        recorded = manifest_lib.entry_of(model_path)[1].get("sha256")
    except (OSError, ValueError, ImportError, manifest_lib.ExportError) as e:
        fail(f"cannot load {model_path}: {e}")
    if recorded is None:
        click.echo(f"warning: {model_path} has no {manifest_lib.MANIFEST} "
                   "record of its sha256, so it was loaded unchecked",
                   err=True)
    h, w, c = fn.input_shape
    sensor = _sensor_of(model_path)
    for path in images:
        x = _read_image(path, c)
        if x.shape[:2] != (h, w):
            fail(f"{path} is {x.shape[1]}x{x.shape[0]} pixels; the model "
                  f"expects {w}x{h}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", inference.InputWarning)
            try:
                out = fn(x[None])
            except inference.InputError as e:
                fail(f"{path}: {e}")
        for warning in caught:
            if issubclass(warning.category, inference.InputWarning):
                click.echo(f"warning: {path}: {warning.message}", err=True)
        k = int(out["classes"][0])
        route = " ".join(f"({y:+.2f},{x_:+.2f})"
                         for y, x_ in out["locations"][0])
        click.echo(f"{path}: class {k} (p={out['probabilities'][0, k]:.3f}) "
                   f"glimpses {route}")
        if plot:
            target = plot
            if len(images) > 1:
                stem = os.path.splitext(os.path.basename(path))[0]
                root, suffix = os.path.splitext(plot)
                target = f"{root}_{stem}{suffix}"
            plots.glimpse_path(x, out["locations"][0], target,
                               title=f"prediction {k}", **sensor)
            click.echo(f"  -> {target}")


def _read_image(path, channels):
    """[H, W, channels] float32: a .npy array as it is, or a PNG/JPEG
    scaled to [0, 1]."""
    import numpy as np

    if path.endswith(".npy"):
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:  # EOF: an empty file
            fail(f"{path} is not a readable .npy array "
                 f"({e or type(e).__name__})")
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3 or x.shape[-1] != channels or x.dtype.kind not in (
                "f", "i", "u"):
            fail(f"{path} holds a {x.dtype} array of shape {list(x.shape)}; "
                 f"expected a float array [H, W] or [H, W, {channels}]")
        return x.astype(np.float32)
    from PIL import Image

    try:
        picture = Image.open(path).convert("L" if channels == 1 else "RGB")
    except OSError as e:
        fail(f"{path} is not a readable PNG/JPEG image ({e})")
    x = np.asarray(picture, np.float32) / 255.0
    return x.reshape(x.shape[0], x.shape[1], channels)


def _sensor_of(model_path):
    """Glimpse size and scales of the artefact's config in its
    MANIFEST.json, if any."""
    try:
        config = manifest_lib.config_of(model_path)
    except (OSError, ValueError, manifest_lib.ExportError):
        return {}
    if not config:
        return {}
    glimpse = config["glimpse"]
    return {"glimpse_size": glimpse["size"],
            "num_scales": glimpse["num_scales"]}
