"""Trained runs as servable artefacts: SavedModel (TF Serving), TFLite and
ONNX.

Layout, one folder per model name (`ram_tf.manifest`):
  OUT/NAME/N/               SavedModel, TF Serving version N
  OUT/NAME/model_fp32.tflite (and _dynamic, _float16, _int8)
  OUT/NAME/model.onnx       ONNX Runtime (`ram_tf.onnx_export`)
  OUT/NAME/MANIFEST.json    task, input; per artefact its config, test
                            error, library versions, sha256

The signatures (public API, tested) are `ram_tf.signatures`':
serving_default(images) and monte_carlo(images, seed), both refusing
images of another shape and NaN or Inf pixels (SavedModels exported before
these checks lack them, and `load_exported` checks in Python for every
artefact). `xla=True` (`ram-tf export --xla`) compiles their rollouts with
XLA: faster at batch 1, for TF Serving started with
`--xla_cpu_compilation_enabled=true` (docs/serving.md, "XLA").

Rollout chains (plain SavedModel): both signatures cut a request's batch
into `chains` slices (default 2, `RecurrentAttentionModel.rollouts`) whose
rollouts share no op, so a server's inter-op threads run them at once. With
one intra-op thread per op (TF Serving
`--tensorflow_intra_op_parallelism=1`, or
`tf.config.threading.set_intra_op_parallelism_threads(1)` in Python) each
core then runs its own slice, more images/s than one chain at large
batches; under TensorFlow's default pool (every core in each op) 2 chains
serve about as fast as 1 (docs/serving.md, "Rollout chains"). An XLA
export has one chain: XLA's CPU code runs one cluster at a time. The
answers do not depend on it.

Every artefact comes from a copy of the model with a builtin-op glimpse
sensor (`SENSOR_OF_FORMAT`, `XLA_SENSOR`: matmul for the plain SavedModel
and ONNX, gather for TFLite and the XLA SavedModel: each the faster there)
and no nested XLA;
the same windows as `tf.image.extract_glimpse`, to float rounding. The
copy computes in float32 unless a SavedModel is asked for in
mixed_bfloat16 (`serving_model`, `ram-tf export --precision`). Writes are
atomic: an artefact is assembled in a hidden temporary folder and renamed
into place, and the manifest is replaced in one `os.replace`. What may be
written where (one task per folder, no replacement unless forced) is
`ram_tf.manifest`'s.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import tensorflow as tf

from ram_tf import datasets
from ram_tf import manifest as manifest_lib
from ram_tf import onnx_export
from ram_tf.manifest import DEFAULT_CHAINS
from ram_tf.manifest import DEFAULT_OUT
from ram_tf.manifest import EXPORT_PRECISIONS
from ram_tf.manifest import ExportError
from ram_tf.manifest import sha256
from ram_tf.model import RecurrentAttentionModel
from ram_tf.signatures import checked_images  # noqa: F401  (public here)
from ram_tf.signatures import write_saved_model
from ram_tf.tflite_export import tflite_bytes

__all__ = ["ExportError", "export_run", "keras_from_export", "serving_model",
           "sha256", "tflite_bytes", "write_saved_model"]



# The glimpse sensor each artefact format is built with (see serving_model).
SENSOR_OF_FORMAT = {"saved_model": "matmul", "tflite": "gather",
                    "onnx": "matmul"}
# Under XLA the gather sensor is the faster, at batch 1 and 256 alike
# (docs/performance.md, "Serving").
XLA_SENSOR = "gather"
# The test images an ONNX export is compared on (`ram_tf.onnx_export`).
ONNX_CHECK_IMAGES = 256


def use_export_sensor(model, precision: str) -> None:
    """Give `model` the sensor arithmetic of an export in `precision`: a
    bfloat16 export's matmul sensor multiplies in bfloat16 (exact tables;
    docs/performance.md, "Design decisions"). Training never does this."""
    if precision == "mixed_bfloat16" and model.sensor.backend == "matmul":
        model.sensor.product_dtype = "bfloat16"


def serving_model(model: RecurrentAttentionModel, fmt: str = "saved_model",
                  chains: int = 1, precision: str = "float32",
                  backend: str | None = None) -> RecurrentAttentionModel:
    """A copy of `model` with a builtin-op sensor and no nested XLA,
    cutting batches into `chains` slices (SavedModel; TFLite serves batch 1
    and keeps one).

    `precision` is the copy's, not the training run's (the weights are
    float32 either way):
    - "float32" (default): what any CPU serves at full speed; TFLite has
      no bfloat16 kernels and TF Serving's CPUs may lack bfloat16 units.
    - "mixed_bfloat16" (SavedModel only): the glimpse network's and core's
      matmuls take bfloat16 operands, as `--precision mixed_bfloat16`
      trains them, with the kernels cast once into constants
      (`precision.frozen_kernels`), and so do the sensor's selection
      products (`GlimpseSensor` product_dtype; training keeps them in
      float32). Faster than float32 at large batches on a CPU with
      AVX512-BF16 under oneDNN, slower at batch 1 and on CPUs without
      bfloat16 units (docs/serving.md, "Precision").
    TF Serving runs no XLA by default and TFLite needs builtin ops. The
    matmul sensor is the fastest SavedModel without XLA; in TFLite at batch
    1, and under XLA, the gather sensor is (docs/performance.md). `backend`
    overrides the format's sensor (`XLA_SENSOR` for an XLA SavedModel).
    """
    if not isinstance(model, RecurrentAttentionModel):
        raise ExportError(f"only attention models (RAM, DRAM, L-DRAM) are "
                          f"exported; got {type(model).__name__}")
    if precision not in EXPORT_PRECISIONS:
        raise ExportError(f"precision={precision!r}; allowed: "
                          f"{', '.join(EXPORT_PRECISIONS)}")
    if precision != "float32" and fmt != "saved_model":
        raise ExportError(f"precision {precision!r} is for SavedModels; "
                          f"{fmt} exports are float32 (TFLite and ONNX "
                          "Runtime have no bfloat16 kernels for these "
                          "layers)")
    config = {**model.get_config(),
              "backend": backend or SENSOR_OF_FORMAT[fmt],
              "xla_sensor": False, "precision": precision}
    copy = type(model).from_config(config)
    h, w, c = model.input_hwc
    copy(tf.zeros([1, h, w, c]))
    copy.set_weights(model.get_weights())
    for layer in copy._flatten_layers():
        if hasattr(layer, "freeze_operands"):
            layer.freeze_operands()  # after set_weights: casts them
    use_export_sensor(copy, precision)
    copy.input_hwc = model.input_hwc
    copy.chains = chains if fmt == "saved_model" else 1
    return copy


def export_run(workdir: str, *, out: str = DEFAULT_OUT,
               name: str | None = None, version: int | None = None,
               fmt: str = "saved_model", quantize: str = "none",
               chains: int | None = None, precision: str = "float32",
               xla: bool = False, force: bool = False, mnist_dir=None,
               data_dir=None, cache_dir=None, score: bool = True) -> dict:
    """Export the run in `workdir`; returns the manifest entry written.

    Args:
      workdir: a run directory (`ram_tf.training`).
      out: the exported-models folder (default "exports"; the repository's
        exported_models/ holds the shipped models).
      name: model name (default MODEL_TASK). A model folder holds one task
        and input shape; another is refused.
      version: SavedModel version. Default: 1 in a new folder; beside
        existing versions a number must be given (TF Serving serves the
        highest), unless `force` (then the next free number).
      fmt: "saved_model" or "tflite".
      quantize: TFLite only: none, dynamic, float16 or int8.
      chains: SavedModel only: batch slices computed concurrently (module
        docstring); 1 computes a batch as one. Default: 2, or 1 with `xla`
        (the only value it takes).
      precision: SavedModel only: "float32" or "mixed_bfloat16"
        (`serving_model`).
      xla: SavedModel only, float32: XLA-compiled signatures
        (`ram_tf.signatures`) with the gather sensor and one chain.
      force: replace an existing version or TFLite file of that name.
      score: measure the artefact's test error for the manifest.

    Raises:
      ExportError: on a refusal (`manifest.check_target`) or a failed
        conversion; nothing is written then.
    """
    from ram_tf import inference
    from ram_tf import loading
    from ram_tf import provenance

    if name is not None and (not name or name in (".", "..") or any(
            sep in name for sep in ("/", "\\", os.sep))):
        raise ExportError(f"name={name!r}; expected one folder name, the "
                          "model's folder inside out")
    config, trained = loading.load_run(workdir)
    d = config.data
    trained.input_hwc = (d.canvas_size, d.canvas_size, d.channels)
    if fmt not in SENSOR_OF_FORMAT:
        raise ExportError(f"format {fmt!r}; allowed: "
                          + ", ".join(SENSOR_OF_FORMAT))
    if quantize != "none" and fmt != "tflite":
        raise ExportError(f"quantize={quantize!r} applies to TFLite files "
                          f"only; a {fmt} export is float32")
    if xla and fmt != "saved_model":
        raise ExportError(f"xla applies to SavedModels only; a {fmt} export "
                          "runs in its own runtime")
    if xla and precision != "float32":
        raise ExportError(f"xla exports are float32; precision={precision!r}"
                          " applies to plain SavedModels")
    if chains is None:
        chains = 1 if xla else DEFAULT_CHAINS
    if isinstance(chains, bool) or not isinstance(chains, int) or chains < 1:
        raise ExportError(f"chains={chains!r}; expected a positive integer "
                          "(1: no slicing)")
    if xla and chains != 1:
        raise ExportError(f"chains={chains} with xla: an XLA export computes "
                          "a batch as one cluster (chains 1)")
    model = serving_model(trained, fmt, chains, precision,
                          backend=XLA_SENSOR if xla else None)
    name = name or f"{config.model}_{config.task}"
    base = os.path.join(out, name)
    manifest = manifest_lib.read(base)
    if fmt == "saved_model":
        existing = manifest_lib.versions(base)
        if version is not None and (isinstance(version, bool) or not
                                    isinstance(version, int) or version < 1):
            raise ExportError(f"version={version!r}; expected an integer "
                              ">= 1 (TF Serving's version folders)")
        key = str(version if version is not None
                  else (existing[-1] + 1 if existing else 1))
    elif fmt == "onnx":
        key = "model.onnx"
    else:
        key = f"model_{'fp32' if quantize == 'none' else quantize}.tflite"
    manifest_lib.check_target(base, manifest, task=config.task,
                              hwc=trained.input_hwc, key=key,
                              version_given=version is not None, force=force)
    final = os.path.join(base, key)
    arrays = None
    if score or quantize == "int8" or fmt == "onnx":
        arrays = datasets.fixed_arrays(d, "test", mnist_dir, data_dir,
                                       cache_dir)
    os.makedirs(base, exist_ok=True)
    staging = manifest_lib.new_staging(base)
    try:
        if fmt == "saved_model":
            write_saved_model(model, staging, config.train.mc_samples,
                              xla=xla)
            probe = staging
        elif fmt == "onnx":
            sm_dir = os.path.join(staging, "saved_model")
            write_saved_model(model, sm_dir, config.train.mc_samples,
                              checked=False)
            images = (arrays["image"][:ONNX_CHECK_IMAGES]
                      .astype(np.float32) / 255.0)
            probe = os.path.join(staging, key)
            data = onnx_export.onnx_bytes(
                sm_dir, lambda x: answers(model, x), images)
            with open(probe, "wb") as f:
                f.write(data)
        else:  # "tflite" (formats were checked above)
            sm_dir = os.path.join(staging, "saved_model")
            # TFLite keeps builtins only: the converter drops the checked
            # ops, so `load_exported` checks TFLite inputs in Python.
            write_saved_model(model, sm_dir, config.train.mc_samples,
                              checked=False)
            rep = None
            if quantize == "int8":
                rep = arrays["image"][:200].astype(np.float32) / 255.0
            probe = os.path.join(staging, key)
            with open(probe, "wb") as f:
                f.write(tflite_bytes(sm_dir, quantize, rep))
        entry = {"format": fmt, "quantize": quantize if fmt == "tflite"
                 else None,
                 # The run directory's name: a manifest travels with the
                 # models and never names a folder of the exporting machine.
                 "source_run": os.path.basename(os.path.normpath(workdir)),
                 "task": config.task,
                 # The run's config; the artefact's sensor is this one
                 # (same windows to float rounding).
                 "config": config.to_dict(),
                 "glimpse_backend": model.sensor.backend,
                 "chains": model.chains,
                 "precision": precision,
                 "xla": xla,
                 # New exports refuse other shapes and NaN/Inf inside the
                 # SavedModel graph (`checked_images`).
                 "input_checks": fmt == "saved_model",
                 # An unfinished run exports its latest checkpoint; say so.
                 "updates": loading.trained_updates(workdir, config),
                 "planned_updates": config.train.steps,
                 "versions": provenance.versions()}
        if score:
            try:
                entry["test_error"] = inference.test_error(
                    inference.load_exported(probe, verify=False), arrays)
            except RuntimeError as e:  # the interpreter refused the model
                raise ExportError(f"the exported {key} does not run: {e}"
                                  ) from e
            entry["test_images"] = int(len(arrays["label"]))
            entry["test_sha256"] = datasets.fingerprint(arrays)
        entry["sha256"] = sha256(probe)
        manifest_lib.move_into_place(probe, final, force)
        if not manifest.get("task"):  # a new folder: its task and input
            manifest.update({
                "name": name, "task": config.task, "config": config.to_dict(),
                "input": {"name": "images", "dtype": "float32",
                          "shape": [None, *trained.input_hwc],
                          "range": [0, 1], "polarity": "white on black"},
                "signatures": {
                    "serving_default": ["probabilities", "classes",
                                        "locations"],
                    "monte_carlo": ["probabilities", "classes",
                                    "locations"]},
                "versions": provenance.versions()})
        manifest["artefacts"][key] = entry
        manifest_lib.fill_checksums(base, manifest)
        manifest_lib.write(base, manifest)
        return {"path": final, **entry}
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def answers(model, images) -> dict:
    """The deterministic policy's probabilities and classes (NumPy)."""
    out = model.rollouts(tf.constant(images))
    probabilities = tf.nn.softmax(out["logits"]).numpy()
    return {"probabilities": probabilities,
            "classes": probabilities.argmax(axis=-1)}


def keras_from_export(path: str):
    """(config, Keras model) rebuilt from an exported SavedModel.

    `path` is a version folder or a model folder (highest version). The
    SavedModel is checked against the sha256 its manifest records, the
    model is rebuilt from the config the manifest records for it, and its
    variables are assigned from the SavedModel's, which `ExportArchive`
    stores in the model's own variable order (shapes are checked).

    Raises:
      ExportError: no manifest, a checksum mismatch, or other variables.
    """
    from ram_tf import config as config_lib
    from ram_tf.builders import build_model

    version = manifest_lib.latest_version(path)
    data, entry = manifest_lib.entry_of(version)
    if not data:
        raise ExportError(f"no {manifest_lib.MANIFEST} beside {version}")
    try:
        manifest_lib.verify(version)
    except manifest_lib.IntegrityError as e:
        raise ExportError(str(e)) from e
    try:
        config = config_lib.ExperimentConfig.from_dict(
            entry.get("config", data.get("config")))
    except config_lib.ConfigError as e:
        raise ExportError(f"{manifest_lib.MANIFEST} beside {version}: "
                          f"{e}") from e
    # Computed as it was exported (`serving_model`): float32 unless the
    # version was exported with --precision mixed_bfloat16.
    precision = entry.get("precision", "float32")
    model = build_model(dataclasses.replace(
        config, machine=dataclasses.replace(config.machine,
                                            precision=precision)))
    use_export_sensor(model, precision)
    loaded = tf.saved_model.load(version)
    if len(loaded.variables) != len(model.variables):
        raise ExportError(f"{version} does not match its manifest's model")
    for mine, theirs in zip(model.variables, loaded.variables):
        if tuple(mine.shape) != tuple(theirs.shape):
            raise ExportError(f"{version}: variable {mine.path} has shape "
                              f"{tuple(theirs.shape)}, expected "
                              f"{tuple(mine.shape)}")
        mine.assign(theirs)
    return config, model
