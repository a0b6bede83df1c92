"""Speed figures measured in one process, compared with the machine.

Figures (median of `repeats` timed blocks after warm-up, with min and max):
- train_fit: updates/s and rollouts/s through `model.fit` with the real
  training pipeline (data placement included);
- train_step: the same step on one fixed batch (the model alone);
- data: training canvases/s of the tf.data pipeline alone;
- inference: images/s of the deterministic policy at batch 1 and 256, for
  the Keras model (its rollout chains) and every exported artefact: the
  SavedModel with `ram-tf export`'s 2 rollout chains, the XLA SavedModel
  (`--xla`), the bf16 one where the CPU has bf16 units, TFLite fp32
  (LiteRT interpreter) and, with the onnx extra, ONNX (onnxruntime). The
  exported artefacts are timed in fresh processes with TensorFlow's own
  kernels (oneDNN), not under the training process's kernel and thread
  choices: once with the default thread pools, once with one intra-op
  thread per op (the serving setting for chains). At batch 1 every
  artefact also gets its latency distribution (`latency_ms`: median, p90,
  p99, max of calls timed one by one), since a person waits for the slow
  calls too;
- machine_plan: the settings chosen for the device found
  (`ram_tf.devices.Plan`), and the device's name;
- matmul: dense float32 GFLOP/s of a 2048^3 matmul, the machine's yardstick
  (and, when the model computes in mixed_bfloat16, matmul_bf16: the same in
  bfloat16, what that step's matmuls could reach); with c rollout chains,
  c such products at once, as every core then works on its own op.

Model figures are also given as a fraction of the matmul rate, using
analytic FLOP counts (`ram_tf.flops.model_flops`), so numbers compare
across machines.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from ram_tf import datasets
from ram_tf import devices
from ram_tf import runtime
from ram_tf.builders import build_model
from ram_tf.flops import model_flops
from ram_tf.optimizer import make_optimizer
from ram_tf.provenance import hardware


def _timed(fn, repeats: int, iterations: int) -> dict[str, float]:
    """Seconds per iteration: median, min, max over `repeats` blocks."""
    fn()  # warm-up / tracing
    per_iter = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        per_iter.append((time.perf_counter() - start) / iterations)
    return {"median": statistics.median(per_iter), "min": min(per_iter),
            "max": max(per_iter)}


def latency_ms(fn, calls: int) -> dict[str, float]:
    """The distribution of one call's latency in milliseconds, each of
    `calls` calls timed on its own after a warm-up: median, p90, p99 and
    max. At batch 1 a person waits for one call, the slow ones included,
    so the tail matters as much as the median."""
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return {"median": statistics.median(times),
            "p90": percentile(times, 90), "p99": percentile(times, 99),
            "max": max(times), "calls": calls}


def percentile(values, q: float) -> float:
    """The q-th percentile of `values`, interpolated between order
    statistics (NumPy's default, "linear")."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def matmul_gflops(repeats: int = 5, n: int = 2048, dtype=tf.float32,
                  parallel: int = 1) -> dict[str, float]:
    """Dense n^3 matmul rate; `parallel` independent products at once, so
    that with a pool of cores / chains threads per op every core works."""
    a = tf.cast(tf.random.uniform([n, n]), dtype)
    b = tf.cast(tf.random.uniform([n, n]), dtype)
    f = tf.function(lambda: [tf.matmul(a + i, b) for i in range(parallel)])
    s = _timed(lambda: [x.numpy() for x in f()], repeats, 5)
    flops = 2.0 * n**3 * parallel
    return {"gflops": flops / s["median"] / 1e9,
            "gflops_min": flops / s["max"] / 1e9,
            "gflops_max": flops / s["min"] / 1e9}


def run(config, *, repeats: int = 5, steps: int = 20,
        mnist_dir=None, data_dir=None, exported: bool = True) -> dict:
    """All figures for one config; see the module docstring."""
    t, m = config.train, config.machine
    plan = devices.choose(m, devices.find())
    # Before the first op: it fixes TensorFlow's thread pools.
    chains, note = runtime.configure_threads(
        plan.chains, plan.intra_op_threads, automatic=m.chains == 0)
    plan = dataclasses.replace(plan, chains=chains)
    rollouts = t.batch_size * t.mc_samples
    flops = model_flops(config)
    out = {"model": config.model, "task": config.task,
           "batch_size": t.batch_size, "mc_samples": t.mc_samples,
           "precision": plan.precision,
           "precision_setting": m.precision, "chains": chains,
           "backend": m.backend,
           "device": plan.device_name, "machine_plan": plan.as_run(),
           "flops": flops,
           "repeats": repeats}
    if note:
        out["chains_note"] = note
    out["matmul"] = matmul_gflops(repeats, parallel=chains)
    if out["precision"] == "mixed_bfloat16":
        out["matmul_bf16"] = matmul_gflops(repeats, dtype=tf.bfloat16,
                                           parallel=chains)
    peak = out["matmul"]["gflops"] * 1e9

    model = build_model(dataclasses.replace(config, machine=dataclasses.replace(
        m, precision=plan.precision)))
    model.chains = chains
    model.compile(optimizer=make_optimizer(t), jit_compile=plan.jit_compile)
    ds = datasets.train_dataset(config.data, t.batch_size, t.seed,
                                mnist_dir=mnist_dir, data_dir=data_dir)

    data_it = iter(ds)
    s = _timed(lambda: next(data_it)["image"].numpy(), repeats, steps)
    out["data"] = {"canvases_per_s": t.batch_size / s["median"],
                   "spread": [t.batch_size / s["max"],
                              t.batch_size / s["min"]]}

    # One fit call; batch-end timestamps split it into `repeats` blocks of
    # `steps` updates after 3 warm-up updates (tracing).
    clock = _BatchClock()
    model.fit(ds.prefetch(tf.data.AUTOTUNE), epochs=1, verbose=0,
              shuffle=False,
              steps_per_epoch=3 + repeats * steps, callbacks=[clock])
    ends = clock.times[2:]
    blocks = [(ends[(i + 1) * steps] - ends[i * steps]) / steps
              for i in range(repeats)]
    s = {"median": statistics.median(blocks), "min": min(blocks),
         "max": max(blocks)}
    per_update = s["median"]
    out["train_fit"] = _rates(per_update, s, 1, t.batch_size, rollouts,
                              flops["train_update"], peak)

    batch = next(iter(ds))
    step = tf.function(model.train_step)
    s = _timed(lambda: step(batch)["loss"].numpy(), repeats, steps)
    out["train_step"] = _rates(s["median"], s, 1, t.batch_size, rollouts,
                               flops["train_update"], peak)

    out["inference"] = {}
    infer = tf.function(lambda x: model.rollouts(x)["logits"])
    for size in (1, 256):
        x = tf.repeat(batch["image"][:1], size, axis=0)
        iters = max(1, steps * 4 // max(1, size // 32))
        s = _timed(lambda: infer(x).numpy(), repeats, iters)
        ips = size / s["median"]
        out["inference"][f"batch_{size}"] = {
            "images_per_s": ips,
            "ms_per_batch": 1000 * s["median"],
            "spread_images_per_s": [size / s["max"], size / s["min"]],
            "fraction_of_matmul": ips * flops["forward_per_image"] / peak,
        }
        if size == 1:
            out["inference"]["batch_1"]["latency_ms"] = latency_ms(
                lambda: infer(x).numpy(), _latency_calls(repeats, steps))
    if exported:
        out["exported"] = exported_inference(model, config, batch["image"],
                                             repeats, steps)
    out["versions"] = {"tensorflow": tf.__version__,
                       "keras": keras.__version__, "numpy": np.__version__}
    # Eigen (0) or oneDNN (1) CPU kernels; ram_tf defaults to Eigen.
    out["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    out["machine"] = hardware()
    return out


def exported_inference(model, config, images, repeats, steps) -> dict:
    """Batch-1 latency and batch-256 images/s of every exported artefact
    (module docstring), timed by `time_exported` in fresh processes: one
    with TensorFlow's defaults (oneDNN, every core in each op), as a server
    loads them untuned, and one with one intra-op thread per op, the
    serving setting for the export's rollout chains (`ram_tf.export`).
    ONNX is left out, and said so, without the onnx extra.
    """
    from ram_tf import export
    from ram_tf import onnx_export

    d = config.data
    model.input_hwc = (d.canvas_size, d.canvas_size, d.channels)
    chains = export.DEFAULT_CHAINS  # what `ram-tf export` writes
    serving = export.serving_model(model, chains=chains)
    tflite_model = export.serving_model(model, "tflite")
    results = {"saved_model_chains": chains}
    with tempfile.TemporaryDirectory() as tmp:
        export.write_saved_model(serving, tmp + "/sm", config.train.mc_samples)
        if runtime.has_native_bf16():  # `ram-tf export --precision` choice
            export.write_saved_model(
                export.serving_model(model, chains=chains,
                                     precision="mixed_bfloat16"),
                tmp + "/sm_bf16", config.train.mc_samples)
        export.write_saved_model(tflite_model, tmp + "/sm_tflite",
                                 config.train.mc_samples)
        with open(tmp + "/model.tflite", "wb") as f:
            f.write(export.tflite_bytes(tmp + "/sm_tflite"))
        export.write_saved_model(
            export.serving_model(model, backend=export.XLA_SENSOR),
            tmp + "/sm_xla", config.train.mc_samples, xla=True)
        onnx_model = export.serving_model(model, "onnx")
        export.write_saved_model(onnx_model, tmp + "/sm_onnx",
                                 config.train.mc_samples, checked=False)
        try:
            data = onnx_export.onnx_bytes(
                tmp + "/sm_onnx", lambda x: export.answers(onnx_model, x),
                images.numpy())
            with open(tmp + "/model.onnx", "wb") as f:
                f.write(data)
        except onnx_export.OnnxExportError as e:
            results["onnx"] = f"not timed: {e}"
        np.save(tmp + "/image.npy", images[:1].numpy())
        # TensorFlow's own kernel default (oneDNN on x86), not ram_tf's.
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}
        code = ("import json, sys; from ram_tf.benchmark import "
                "time_exported; print(json.dumps(time_exported(sys.argv[1], "
                "*map(int, sys.argv[2:]))))")
        for key, intra in (("tf_defaults", 0), ("intra_op_1", 1)):
            done = subprocess.run(
                [sys.executable, "-c", code, tmp, str(repeats), str(steps),
                 str(intra)], env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError("timing the exported models failed:\n"
                                   + done.stderr[-2000:])
            results[key] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def time_exported(folder: str, repeats: int, steps: int,
                  intra_op: int = 0) -> dict:
    """Time `folder`/sm (SavedModel), sm_xla (the same with XLA
    signatures), sm_bf16 (exported with precision mixed_bfloat16, where
    present), model.tflite and model.onnx (where present) on copies of
    `folder`/image.npy [1, H, W, C], in the calling process, before whose
    first op `intra_op` (when > 0) sets TensorFlow's intra-op pool."""
    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    from ram_tf import inference

    one = np.load(folder + "/image.npy")
    # TFLite first, before TensorFlow runs an op here: on a device no
    # TensorFlow thread pool competes with the interpreter's threads.
    runners = {"tflite_fp32": inference.load_exported(
        folder + "/model.tflite")}
    if os.path.exists(folder + "/model.onnx"):
        runners["onnx"] = inference.load_exported(folder + "/model.onnx")
    standalone = {}
    for key, fn in runners.items():
        s = _timed(lambda: fn(one), repeats, steps * 10)
        standalone[f"{key}_batch_1"] = {
            "ms_per_image": 1000 * s["median"],
            "spread_ms": [1000 * s["min"], 1000 * s["max"]],
            "latency_ms": latency_ms(lambda: fn(one),
                                     _latency_calls(repeats, steps))}
        x = np.repeat(one, 256, axis=0)
        s = _timed(lambda: fn(x), repeats, max(1, steps // 2))
        standalone[f"{key}_batch_256"] = {
            "images_per_s": 256 / s["median"],
            "spread_images_per_s": [256 / s["max"], 256 / s["min"]]}
    saved = {"saved_model": inference.load_exported(folder + "/sm"),
             "saved_model_xla": inference.load_exported(folder + "/sm_xla")}
    if os.path.isdir(folder + "/sm_bf16"):
        saved["saved_model_bf16"] = inference.load_exported(
            folder + "/sm_bf16")
    # As TensorFlow reports them (0: its default, every core).
    threading = tf.config.threading
    result = {"intra_op_threads": threading.get_intra_op_parallelism_threads(),
              "inter_op_threads": threading.get_inter_op_parallelism_threads()}
    for key, sm in saved.items():
        for size in (1, 256):
            x = np.repeat(one, size, axis=0)
            iters = max(1, steps * 4 // max(1, size // 32))
            s = _timed(lambda: sm(x), repeats, iters)
            result[f"{key}_batch_{size}"] = {
                "images_per_s": size / s["median"],
                "spread_images_per_s": [size / s["max"], size / s["min"]]}
            if size == 1:
                result[f"{key}_batch_1"]["latency_ms"] = latency_ms(
                    lambda: sm(x), _latency_calls(repeats, steps))
    result.update(standalone)
    result["onednn"] = runtime.onednn_enabled()
    return result


def _latency_calls(repeats, steps) -> int:
    """Calls timed one by one for a latency distribution: as many as the
    throughput blocks make, and at least 100 so that p99 is a call."""
    return max(100, repeats * steps * 10)


class _BatchClock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def _rates(per_update, s, steps, batch_size, rollouts, update_flops, peak):
    return {
        "ms_per_update": 1000 * per_update,
        "updates_per_s": 1 / per_update,
        "images_per_s": batch_size / per_update,
        "rollouts_per_s": rollouts / per_update,
        "spread_ms_per_update": [1000 * s["min"] / steps,
                                 1000 * s["max"] / steps],
        "fraction_of_matmul": update_flops / per_update / peak,
    }
