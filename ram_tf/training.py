"""`train_and_evaluate(config, workdir)`: one resumable training run.

A work dir holds everything a run produces:
  config.json       the resolved `ExperimentConfig`
  checkpoints/      tf.train checkpoints (model, optimizer, location-sample
                    RNG, epoch), written at the end of every epoch
  log.csv           one row of metrics per epoch (train and val_)
  tensorboard/      the same, for TensorBoard (if tensorboard is installed)
  progress.json     epochs and updates done, training seconds, precision
  model.weights.h5  final weights (rebuild the model from config.json)
  results.json      test error in both modes on the 10,000 fixed test
                    canvases, updates, wall time, hardware, versions
  lock              present while a process trains here (`ram_tf.rundir`)

Resuming: running the same config in the same work dir restores the latest
readable checkpoint and carries on from its update count (the optimizer's
`iterations`), to exactly `train.steps` updates: epochs are
`train.steps_per_epoch` updates counted from the resume point, and the
last one is shorter when the steps left are not a multiple of it. The
training stream is a pure function of (seed, step)
(`ram_tf.datasets.train_dataset`) and the location-sample RNG is in the
checkpoint, so a resumed run, even one resumed with other `--steps` or
`--steps-per-epoch`, sees the same batches and draws as an uninterrupted
one. A run killed mid-epoch loses that epoch's updates only. A loss or
weight that is no longer finite stops the run (`TrainingDiverged`) before
that epoch's checkpoint is written; a step with a NaN loss or location
applies nothing (`ram_tf.steps.finite`).

Under a strategy (`machine.distribute`, `ram_tf.distribute`) the model,
its optimizer and its checkpoint are made in the strategy's scope; only
the chief writes the work dir, and every worker resumes from its
checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time

import keras
import tensorflow as tf

from ram_tf import config as config_lib
from ram_tf import datasets
from ram_tf import devices
from ram_tf import distribute
from ram_tf import evaluation
from ram_tf import rundir
from ram_tf import runlock
from ram_tf import runtime
from ram_tf import validation
from ram_tf.builders import build_model
from ram_tf.callbacks import Checkpointer
from ram_tf.callbacks import TrainingDiverged  # noqa: F401  (public here)
from ram_tf.callbacks import UpdateCounter
from ram_tf.callbacks import UpdateGuard
from ram_tf.callbacks import WorkerCheckpointer
from ram_tf.loading import load_run  # noqa: F401  (public here)
from ram_tf.loading import trained_updates  # noqa: F401  (public here)
from ram_tf.optimizer import StepDecay  # noqa: F401  (public here)
from ram_tf.optimizer import make_optimizer
from ram_tf.provenance import hardware
from ram_tf.provenance import versions  # noqa: F401  (public here)
from ram_tf.rundir import RunDirError

logger = logging.getLogger("ram_tf")


# Settings a resumed run may change: the total steps and the epoch length
# (the schedule, the data stream and the location draws follow the update
# count; validation draws nothing), and the whole machine group, which
# computes the same experiment (`ram_tf.config.MachineConfig`).
_MAY_CHANGE_ON_RESUME = {("train", "steps"), ("train", "steps_per_epoch")}


def _check_same_run(workdir: str, config: config_lib.ExperimentConfig):
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        rundir.check_run_files_have_a_config(workdir)
        return []
    # Through the dataclasses, so fields added since the run started take
    # their defaults instead of counting as changes.
    old = rundir.read_config(path).to_dict()
    saved = rundir.read_json(path)
    if (saved.get("core", {}).get("core_layers") == 2
            and "gradient_scope" not in saved.get("policy", {})):
        # Its REINFORCE trained every layer and its baseline only itself:
        # none of today's scopes. Loading it (evaluation, export) is fine.
        raise RunDirError(
            f"{workdir} holds a DRAM run started before "
            "policy.gradient_scope existed, with a gradient routing that is "
            "gone; it can still be evaluated and exported, but not resumed: "
            "choose another --workdir")
    new = config.to_dict()
    diffs = [
        f"{g}.{k}: {old.get(g, {}).get(k)!r} -> {v!r}"
        for g, fields in new.items() if isinstance(fields, dict)
        for k, v in fields.items() if old.get(g, {}).get(k) != v
        and (g, k) not in _MAY_CHANGE_ON_RESUME and g != "machine"
    ] + [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in ("model", "task")
         if old.get(k) != new[k]]
    if diffs:
        raise RunDirError(
            f"{workdir} holds a run with other settings ({'; '.join(diffs)});"
            " resume it with the same settings or choose another --workdir"
        )
    # What changes how the numbers are computed: the machine settings.
    return [f"machine.{k}: {v!r} -> {new['machine'][k]!r}"
            for k, v in old["machine"].items() if v != new["machine"][k]]


def train_and_evaluate(
    config: config_lib.ExperimentConfig,
    workdir: str,
    *,
    strategy: tf.distribute.Strategy | None = None,
    mnist_dir: str | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    verbose: int | str = 2,
    evaluate_test: bool = True,
) -> dict:
    """Train (or resume) the run in `workdir`, then score the test set.

    Notes (resuming, leftovers removed, checkpoint fallbacks) go to the
    `ram_tf` logger; `verbose` is Keras's progress output.

    Args:
      strategy: a `tf.distribute.Strategy` to train under, instead of the
        one `config.machine.distribute` names (`ram_tf.distribute`). Its
        devices must be set up before TensorFlow's first op.

    Returns:
      the results dict also written to `workdir/results.json` (by the
      chief only, under multi-worker).

    Raises:
      RunDirError: another run's settings, another trainer at work
        (`RunLockedError`), checkpoints none of which can be read
        (`CheckpointError`), or more updates done than `train.steps`.
      TrainingDiverged: the loss or weights stopped being finite.
      DeviceError, DistributeError: settings this machine cannot run.
    """
    validation.validate(config)
    m = config.machine
    runtime.prepare_tensorflow(m.precision)  # warns if bf16 would be emulated
    found = devices.find()
    plan = devices.choose(m, found)
    # Before TensorFlow's first op, which fixes its thread pools and
    # devices.
    chains, note = runtime.configure_threads(
        plan.chains, plan.intra_op_threads, automatic=m.chains == 0)
    if note:
        logger.info(note)
    plan = dataclasses.replace(plan, chains=chains)
    if strategy is None:
        strategy = distribute.make_strategy(
            m.distribute, plan.replicas, gpus=len(found.gpus))
    worker = distribute.worker(strategy)
    args = (config, workdir, plan, strategy, worker, verbose, evaluate_test,
            dict(mnist_dir=mnist_dir, data_dir=data_dir), cache_dir)
    if not worker.chief:
        # Writes nothing in workdir, so it takes no lock there.
        return _train(*args)
    rundir.make_dir(workdir)
    with runlock.RunLock(workdir):
        return _train(*args)


def _train(config, workdir, plan, strategy, worker, verbose, evaluate_test,
           data_kwargs, cache_dir):
    chief = worker.chief
    changed = _check_same_run(workdir, config)
    if changed and chief:
        logger.info("%s: resuming with %s (the same experiment, computed "
                    "another way)", workdir, "; ".join(changed))
    if chief:
        rundir.clean_leftovers(workdir)
    t = config.train
    keras.utils.set_random_seed(t.seed)
    scope = (strategy.scope() if strategy is not None
             else contextlib.nullcontext())
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if t.batch_size % replicas:
        raise distribute.DistributeError(
            f"train.batch_size={t.batch_size} cannot be split evenly over "
            f"{replicas} replicas; use a multiple of {replicas}")

    val_arrays = datasets.fixed_arrays(config.data, "validation",
                                       cache_dir=cache_dir, **data_kwargs)
    # The model is built with the plan's precision; config.json keeps what
    # was asked ("auto").
    built = dataclasses.replace(config, machine=dataclasses.replace(
        config.machine, precision=plan.precision))
    with scope:
        model = build_model(built)
        if hasattr(model, "chains"):
            model.chains = plan.chains
            precision, chains = plan.precision, plan.chains
        else:
            # The baselines: one Keras forward pass, in float32.
            precision, chains = "float32", 1
        optimizer = make_optimizer(t)
        optimizer.build(model.trainable_variables)
        model.compile(optimizer=optimizer, jit_compile=plan.jit_compile)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        extra = {}
        if hasattr(model, "seed_generator"):  # not the baselines
            extra["seed_state"] = model.seed_generator.state
        ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                   epoch=epoch_var, **extra)
        ckpt_dir = os.path.join(workdir, "checkpoints")
        restored = rundir.restore_checkpoint(ckpt, ckpt_dir, repair=chief)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        distribute.adapt_for_multi_worker(model)
    if chief:
        logger.info("%s on %s: %s parameters, %s%d rollout chain%s, %s%s",
                    config.model, config.task, f"{model.count_params():,}",
                    f"{replicas} replicas ({config.machine.distribute}), "
                    if strategy is not None else "",
                    chains, "s" if chains > 1 else "", precision,
                    " (auto)" if config.machine.precision == "auto" else "")
    # The resume point: updates, not epochs, whose length may change.
    done = int(optimizer.iterations.numpy())
    if done > t.steps:
        raise RunDirError(
            f"{workdir} already holds {done} updates, more than "
            f"train.steps={t.steps}; a run cannot be shortened below what "
            f"it has trained: ask for {done} steps or more, or choose "
            "another --workdir")
    recorded = rundir.recorded_updates(workdir)
    if done == 0 and recorded:
        # Starting again would trim its log and replace its weights and
        # results (a finished run whose checkpoints/ was deleted for space).
        raise RunDirError(
            f"{workdir} records {recorded:,} updates but has no checkpoint "
            "to resume from (checkpoints/ was deleted or moved); its files "
            "are kept: restore checkpoints/ to train on, or choose another "
            "--workdir to start afresh")
    if restored and chief:
        logger.info("%s: resuming at update %d of %d (%s)", workdir, done,
                    t.steps, os.path.basename(restored))
    finished = _finished_results(workdir, done, evaluate_test)
    if done == t.steps and (finished is not None or not chief):
        # Scoring again here would record this machine's hardware and
        # precision as if they had trained the run: keep what it recorded.
        if chief:
            logger.info("%s: finished at %d updates; its results.json is "
                        "kept (ram-tf evaluate re-scores a run)", workdir,
                        done)
        return finished if chief else _worker_results(worker, done)
    progress_path = os.path.join(workdir, "progress.json")
    csv_path = os.path.join(workdir, "log.csv")
    epochs_done = int(epoch_var.numpy())
    if chief:
        rundir.write_json(os.path.join(workdir, "config.json"),
                          config.to_dict())
        manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=2)
        before = (rundir.read_json(progress_path).get("train_seconds", 0.0)
                  if done and os.path.exists(progress_path) else 0.0)
        rundir.trim_log(csv_path, done, epochs_done)
    if done < t.steps:
        if chief:
            # A finished run carried on to more steps: its final weights
            # and results describe an earlier end; the checkpoints take
            # over.
            for name in ("model.weights.h5", "results.json"):
                if os.path.exists(os.path.join(workdir, name)):
                    os.remove(os.path.join(workdir, name))
            callbacks = [
                keras.callbacks.CSVLogger(csv_path, append=True),
                *_tensorboard(workdir),
                Checkpointer(manager, epoch_var, progress_path, time.time(),
                             before, precision)]
        else:
            callbacks = [WorkerCheckpointer(ckpt, epoch_var)]
        epochs_done = _fit(model, config, val_arrays, data_kwargs, done,
                           epochs_done, callbacks, verbose,
                           multi_worker=worker.count > 1)
    if not chief:
        return _worker_results(worker, int(optimizer.iterations.numpy()))
    weights = os.path.join(workdir, "model.weights.h5")
    # save_weights insists on the .weights.h5 suffix, hence this temp name.
    with rundir.atomic_output(weights, os.path.join(
            workdir, "model.tmp.weights.h5")) as temp:
        model.save_weights(temp)
    results = {
        "model": config.model, "task": config.task,
        "updates": int(optimizer.iterations.numpy()),
        "epochs": epochs_done, "steps_per_epoch": t.steps_per_epoch,
        "train_seconds": rundir.read_json(progress_path)["train_seconds"],
        "hardware": hardware(), "versions": versions(),
        "parameters": int(model.count_params()), "chains": chains,
        # What computed the last stretch of training (machine.precision may
        # be "auto", or changed on resume).
        "precision": precision,
        "machine_plan": {**plan.as_run(), "precision": precision,
                         "chains": chains,
                         "distribute": config.machine.distribute,
                         "replicas_in_sync": replicas,
                         "workers": worker.count},
    }
    if evaluate_test:
        results.update(score(model, config, cache_dir=cache_dir,
                             **data_kwargs))
    rundir.write_json(os.path.join(workdir, "results.json"), results)
    return results


def _worker_results(worker, updates) -> dict:
    """What a worker other than the chief returns (it writes nothing)."""
    return {"chief": False, "worker": worker.index, "updates": updates}


def _finished_results(workdir, done, evaluate_test):
    """The results.json of a run finished at `done` updates, else None."""
    path = os.path.join(workdir, "results.json")
    if not (os.path.exists(path) and os.path.exists(
            os.path.join(workdir, "model.weights.h5"))):
        return None
    results = rundir.read_json(path)
    if results.get("updates") != done or (
            evaluate_test and "test_error_mc" not in results):
        return None
    return results


def _tensorboard(workdir):
    try:
        import tensorboard  # noqa: F401  (optional dependency)
    except ImportError:
        return []
    return [keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard"),
                                        write_graph=False)]


def _fit(model, config, val_arrays, data_kwargs, done, epochs_done,
         callbacks, verbose, multi_worker=False) -> int:
    """Train from update `done` to `train.steps`; returns epochs done."""
    t = config.train
    remaining = t.steps - done
    epochs = epochs_done + math.ceil(remaining / t.steps_per_epoch)
    if remaining % t.steps_per_epoch:
        logger.info("%d updates to go in epochs of %d: the last epoch has "
                    "%d", remaining, t.steps_per_epoch,
                    remaining % t.steps_per_epoch)
    train_ds = datasets.train_dataset(
        config.data, t.batch_size, t.seed, start_step=done,
        label_fraction=config.policy.label_fraction,
        label_mask=config.policy.label_mask, **data_kwargs,
    ).prefetch(tf.data.AUTOTUNE)
    val_ds = datasets.fixed_dataset(val_arrays).batch(500)
    if multi_worker:
        # Every worker builds the same stream from the seed and keeps its
        # share of each global batch (the stream reads no files to share).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        train_ds, val_ds = (train_ds.with_options(options),
                            val_ds.with_options(options))
    # shuffle=False: the pipeline places fresh digits in every batch;
    # fit's default True only earns a warning on a tf.data.Dataset.
    guard = UpdateGuard(remaining, done, t)
    try:
        with guard.refusals():
            model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                      initial_epoch=epochs_done, shuffle=False,
                      steps_per_epoch=t.steps_per_epoch,
                      callbacks=[guard, UpdateCounter(), *callbacks],
                      verbose=verbose)
    finally:
        # fit skips on_train_end when it is interrupted (divergence, a
        # KeyboardInterrupt), which would leave log.csv open.
        for callback in callbacks:
            if isinstance(callback, keras.callbacks.CSVLogger) and \
                    callback.csv_file and not callback.csv_file.closed:
                callback.csv_file.close()
    return epochs


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
