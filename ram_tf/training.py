"""`train_and_evaluate(config, workdir)`: one resumable training run.

A work dir holds everything a run produces:
  config.json       the resolved `ExperimentConfig`
  checkpoints/      tf.train checkpoints (model, optimizer, location-sample
                    RNG, epoch), written at the end of every epoch
  log.csv           one row of metrics per epoch (train and val_)
  tensorboard/      the same, for TensorBoard (if tensorboard is installed)
  progress.json     epochs done and training seconds so far
  model.weights.h5  final weights (rebuild the model from config.json)
  results.json      test error in both modes on the 10,000 fixed test
                    canvases, updates, wall time, hardware, versions

Resuming: running the same config in the same work dir restores the latest
checkpoint and continues from the epoch after it; the training stream is a
pure function of (seed, step) (`ram_tf.datasets.train_dataset`) and the
location-sample RNG is in the checkpoint, so a resumed run sees the same
batches as an uninterrupted one. A run killed mid-epoch loses that epoch's
updates only. Checkpoints are written by `tf.train.CheckpointManager`, which
moves its index to a new checkpoint only once that checkpoint is complete.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from ram_tf import __version__
from ram_tf import config as config_lib
from ram_tf import cpu
from ram_tf import datasets
from ram_tf import evaluation
from ram_tf.model import build_model


@keras.saving.register_keras_serializable(package="ram_tf")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(s) = max(lr0 * decay^floor(s / decay_steps), min_lr)."""

    def __init__(self, initial, decay, decay_steps, minimum):
        self.initial, self.decay = float(initial), float(decay)
        self.decay_steps, self.minimum = int(decay_steps), float(minimum)

    def __call__(self, step):
        exponent = tf.floor(tf.cast(step, tf.float32) / self.decay_steps)
        return tf.maximum(self.initial * self.decay**exponent, self.minimum)

    def get_config(self):
        return {"initial": self.initial, "decay": self.decay,
                "decay_steps": self.decay_steps, "minimum": self.minimum}


def make_optimizer(train: config_lib.TrainConfig) -> keras.optimizers.Adam:
    schedule = StepDecay(train.learning_rate, train.lr_decay,
                         train.lr_decay_steps, train.min_learning_rate)
    return keras.optimizers.Adam(schedule, global_clipnorm=train.clipnorm)


class RunDirError(RuntimeError):
    """The work dir holds a different run."""


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)  # atomic: a kill never leaves half a file


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


# Settings a resumed run may change: the total steps (the schedule and the
# data stream do not depend on it), and how the glimpse sensor is computed,
# which gives the same numbers to float rounding (backends, the sensor's
# own XLA), and the matmul precision (bfloat16 operands round each product
# to 8 significant bits; a run may carry on in float32 on a CPU without
# bfloat16 units), and the rollout chains (the same draws, only the
# gradient's summation order differs). Not train.jit_compile: under XLA the
# policy's random draws come from another generator algorithm.
_MAY_CHANGE_ON_RESUME = {("train", "steps"), ("glimpse", "backend"),
                         ("glimpse", "xla"), ("train", "precision"),
                         ("train", "chains")}


def _check_same_run(workdir: str, config: config_lib.ExperimentConfig):
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return []
    saved = _read_json(path)
    if (saved.get("core", {}).get("core_layers") == 2
            and "gradient_scope" not in saved.get("policy", {})):
        # Its REINFORCE trained every layer and its baseline only itself:
        # none of today's scopes. Loading it (evaluation, export) is fine.
        raise RunDirError(
            f"{workdir} holds a DRAM run started before "
            "policy.gradient_scope existed, with a gradient routing that is "
            "gone; it can still be evaluated and exported, but not resumed: "
            "choose another --workdir")
    # Through the dataclasses, so fields added since the run started take
    # their defaults instead of counting as changes.
    old = config_lib.ExperimentConfig.from_dict(saved).to_dict()
    new = config.to_dict()
    diffs = [
        f"{g}.{k}: {old.get(g, {}).get(k)!r} -> {v!r}"
        for g, fields in new.items() if isinstance(fields, dict)
        for k, v in fields.items() if old.get(g, {}).get(k) != v
        and (g, k) not in _MAY_CHANGE_ON_RESUME
    ] + [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in ("model", "task")
         if old.get(k) != new[k]]
    if diffs:
        raise RunDirError(
            f"{workdir} holds a run with other settings ({'; '.join(diffs)});"
            " resume it with the same settings or choose another --workdir"
        )
    return [f"{g}.{k}: {old[g][k]!r} -> {new[g][k]!r}"
            for g, k in sorted(_MAY_CHANGE_ON_RESUME)
            if old[g][k] != new[g][k] and (g, k) != ("train", "steps")]


def _epoch_plan(train: config_lib.TrainConfig) -> tuple[int, int]:
    steps_per_epoch = min(train.steps_per_epoch, train.steps)
    return steps_per_epoch, math.ceil(train.steps / steps_per_epoch)


class _UpdateCounter(keras.callbacks.Callback):
    """Adds the optimizer's update count and learning rate to the epoch logs.

    Listed before CSVLogger, so these columns reach log.csv too.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["updates"] = int(self.model.optimizer.iterations.numpy())
            logs["learning_rate"] = float(
                self.model.optimizer.learning_rate.numpy())


class _Checkpointer(keras.callbacks.Callback):
    """Saves progress, then model, optimizer and RNG state, at each epoch end.

    Listed last: the checkpoint is the commit point of an epoch. A kill
    before it re-runs the epoch on resume (its log row is trimmed and
    written again); a kill after it has already logged everything.
    """

    def __init__(self, manager, epoch_var, progress_path, started, before):
        super().__init__()
        self.manager, self.epoch_var = manager, epoch_var
        self.progress_path = progress_path
        self.started, self.before = started, before

    def on_epoch_end(self, epoch, logs=None):
        _write_json(self.progress_path, {
            "epochs_done": epoch + 1,
            "train_seconds": self.before + time.time() - self.started,
        })
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


def _trim_csv(path: str, first_epoch: int) -> None:
    """Drop log rows of epochs that will be re-run after a resume."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < first_epoch]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def versions() -> dict[str, str]:
    import tensorflow_probability as tfp

    return {
        "ram_tf": __version__, "tensorflow": tf.__version__,
        "keras": keras.__version__, "tensorflow_probability": tfp.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
    }


def hardware() -> dict[str, object]:
    """Where a number was measured: CPU model, cores and the vector units
    that set its matmul rate (machines of one kind differ: AVX2 only vs
    AVX-512 with BF16), read from /proc/cpuinfo where there is one."""
    return {"machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "gpus": cpu.visible_gpus(),
            "onednn": cpu.onednn_enabled(), **cpu.cpu_info()}


def train_and_evaluate(
    config: config_lib.ExperimentConfig,
    workdir: str,
    *,
    mnist_dir: str | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    verbose: int | str = 2,
    evaluate_test: bool = True,
) -> dict:
    """Train (or resume) the run in `workdir`, then score the test set.

    Returns:
      the results dict also written to `workdir/results.json`.
    """
    config_lib.validate(config)
    os.makedirs(workdir, exist_ok=True)
    changed = _check_same_run(workdir, config)
    if changed and verbose:
        print(f"{workdir}: resuming with {'; '.join(changed)} (the same "
              "numbers to float rounding)", flush=True)
    _write_json(os.path.join(workdir, "config.json"), config.to_dict())
    t = config.train
    cpu.prepare_tensorflow(t.precision)  # warns if bf16 would be emulated
    # Before TensorFlow's first op, which fixes its thread pools.
    chains, note = cpu.configure_chains(t.chains)
    if note and verbose:
        print(note, flush=True)
    keras.utils.set_random_seed(t.seed)

    data_kwargs = dict(mnist_dir=mnist_dir, data_dir=data_dir)
    val_arrays = datasets.fixed_arrays(config.data, "validation",
                                       cache_dir=cache_dir, **data_kwargs)
    model = build_model(config)
    if hasattr(model, "chains"):
        model.chains = chains
        precision = model.get_config()["precision"]  # "auto" resolved
    else:
        # The baselines: one Keras forward pass, in float32.
        chains, precision = 1, "float32"
    if verbose:
        print(f"{config.model} on {config.task}: "
              f"{model.count_params():,} parameters, {chains} rollout "
              f"chain{'s' if chains > 1 else ''}, {precision}"
              + (" (auto)" if t.precision == "auto" else ""), flush=True)
    optimizer = make_optimizer(t)
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer, jit_compile=t.jit_compile)

    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    extra = {}
    if hasattr(model, "seed_generator"):  # not the baselines
        extra["seed_state"] = model.seed_generator.state
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer,
                               epoch=epoch_var, **extra)
    manager = tf.train.CheckpointManager(
        ckpt, os.path.join(workdir, "checkpoints"), max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    initial_epoch = int(epoch_var.numpy())
    progress_path = os.path.join(workdir, "progress.json")
    before = (_read_json(progress_path)["train_seconds"]
              if initial_epoch and os.path.exists(progress_path) else 0.0)

    steps_per_epoch, epochs = _epoch_plan(t)
    csv_path = os.path.join(workdir, "log.csv")
    _trim_csv(csv_path, initial_epoch)
    if initial_epoch < epochs:
        # A finished run carried on to more steps: its final weights and
        # results describe an earlier end; the checkpoints take over.
        for name in ("model.weights.h5", "results.json"):
            if os.path.exists(os.path.join(workdir, name)):
                os.remove(os.path.join(workdir, name))
        train_ds = datasets.train_dataset(
            config.data, t.batch_size, t.seed,
            start_step=initial_epoch * steps_per_epoch,
            label_fraction=config.policy.label_fraction,
            label_mask=config.policy.label_mask, **data_kwargs,
        ).prefetch(tf.data.AUTOTUNE)
        val_ds = datasets.fixed_dataset(val_arrays).batch(500)
        callbacks = [_UpdateCounter(),
                     keras.callbacks.CSVLogger(csv_path, append=True)]
        try:
            import tensorboard  # noqa: F401  (optional dependency)

            callbacks.append(keras.callbacks.TensorBoard(
                os.path.join(workdir, "tensorboard"), write_graph=False))
        except ImportError:
            pass
        callbacks.append(_Checkpointer(manager, epoch_var, progress_path,
                                       time.time(), before))
        # shuffle=False: the pipeline places fresh digits in every batch;
        # fit's default True only earns a warning on a tf.data.Dataset.
        model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                  initial_epoch=initial_epoch, shuffle=False,
                  steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                  verbose=verbose)
    model.save_weights(os.path.join(workdir, "model.weights.h5"))
    results = {
        "model": config.model, "task": config.task,
        "updates": int(optimizer.iterations.numpy()),
        "epochs": epochs, "steps_per_epoch": steps_per_epoch,
        "train_seconds": _read_json(progress_path)["train_seconds"],
        "hardware": hardware(), "versions": versions(),
        "parameters": int(model.count_params()), "chains": chains,
        # What computed the last stretch of training (train.precision may
        # be "auto", or changed on resume).
        "precision": precision,
    }
    if evaluate_test:
        results.update(score(model, config, mnist_dir=mnist_dir,
                             data_dir=data_dir, cache_dir=cache_dir))
    _write_json(os.path.join(workdir, "results.json"), results)
    return results


def score(model, config, *, mnist_dir=None, data_dir=None, cache_dir=None,
          split="test") -> dict:
    """Errors of `model` on a fixed split, with the split's fingerprint."""
    arrays = datasets.fixed_arrays(config.data, split, mnist_dir, data_dir,
                                   cache_dir)
    started = time.time()
    errors = evaluation.evaluate(model, arrays, config.train.mc_samples,
                                 seed=config.train.seed)
    return {
        f"{split}_error_deterministic": errors["error_deterministic"],
        f"{split}_error_mc": errors["error_mc"],
        "mc_samples": errors["mc_samples"],
        f"{split}_images": errors["images"],
        f"{split}_sha256": datasets.fingerprint(arrays),
        f"{split}_eval_seconds": time.time() - started,
    }


def trained_updates(workdir: str, config) -> int:
    """Updates behind the weights `load_run` returns: the finished run's
    count, else the optimizer step stored in the latest checkpoint."""
    if os.path.exists(os.path.join(workdir, "model.weights.h5")):
        path = os.path.join(workdir, "results.json")
        return (int(_read_json(path)["updates"]) if os.path.exists(path)
                else config.train.steps)
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest is None:
        return 0
    return int(tf.train.load_variable(latest, _ITERATIONS_KEY))


# Where tf.train.Checkpoint(model=..., optimizer=...) keeps the step count.
_ITERATIONS_KEY = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"


def load_run(workdir: str):
    """(config, model with final or latest weights) of a run directory."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise RunDirError(f"{workdir} is not a run directory (no config.json)")
    config = config_lib.ExperimentConfig.from_json(open(path).read())
    model = build_model(config)
    weights = os.path.join(workdir, "model.weights.h5")
    if os.path.exists(weights):
        model.load_weights(weights)
    else:
        ckpt = tf.train.Checkpoint(model=model)
        latest = tf.train.latest_checkpoint(os.path.join(workdir,
                                                         "checkpoints"))
        if latest is None:
            raise RunDirError(f"{workdir} has no weights or checkpoints yet")
        ckpt.restore(latest).expect_partial()
    return config, model
