"""A run directory read back: its model with the final or latest weights
(`load_run`) and the number of updates behind them (`trained_updates`),
for evaluation, export and figures. Training itself is `ram_tf.training`.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import tensorflow as tf

from ram_tf import rundir
from ram_tf.builders import build_model
from ram_tf.optimizer import make_optimizer
from ram_tf.rundir import RunDirError

logger = logging.getLogger("ram_tf")


def trained_updates(workdir: str, config) -> int:
    """Updates behind the weights `load_run` returns: the finished run's
    count, else the optimizer step stored in the newest readable
    checkpoint."""
    weights = os.path.join(workdir, "model.weights.h5")
    if os.path.exists(weights) and rundir.h5_readable(weights):
        path = os.path.join(workdir, "results.json")
        return (int(rundir.read_json(path)["updates"])
                if os.path.exists(path) else config.train.steps)
    for prefix in rundir.checkpoint_prefixes(os.path.join(workdir,
                                                          "checkpoints")):
        try:
            return int(tf.train.load_variable(prefix, _ITERATIONS_KEY))
        except Exception:  # damaged: load_run falls back the same way
            continue
    return 0


# Where tf.train.Checkpoint(model=..., optimizer=...) keeps the step count.
_ITERATIONS_KEY = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"


def load_run(workdir: str, precision: str | None = None):
    """(config, model with final or latest weights) of a run directory.

    Args:
      precision: build the model in this machine.precision instead of the
        config's (`rundir.trained_precision` gives the one it trained in).

    An unreadable model.weights.h5 (a write cut short by older versions)
    falls back to the newest readable checkpoint, with a warning.
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise RunDirError(f"{workdir} is not a run directory (no config.json)")
    config = rundir.read_config(path)
    if precision is not None:
        config = dataclasses.replace(config, machine=dataclasses.replace(
            config.machine, precision=precision))
    model = build_model(config)
    weights = os.path.join(workdir, "model.weights.h5")
    problem = "has no weights or checkpoints yet"
    if os.path.exists(weights):
        try:
            model.load_weights(weights)
            return config, model
        except Exception as e:  # h5py raises OSError, Keras ValueError
            problem = (f"has an unreadable model.weights.h5 "
                       f"({rundir._first_line(e)}) and no checkpoint")
            logger.warning("%s cannot be read (%s); using the newest "
                           "checkpoint instead", weights,
                           rundir._first_line(e))
    # The structure training saved, optimizer included: DRAM's context
    # convolutions sit in a list that the checkpoint reaches only through
    # the optimizer's variable references, so `Checkpoint(model=model)`
    # alone would leave them at their initial values.
    optimizer = make_optimizer(config.train)
    optimizer.build(model.trainable_variables)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
    if rundir.restore_checkpoint(ckpt, os.path.join(workdir, "checkpoints"),
                                 partial=True) is None:
        raise RunDirError(f"{workdir} {problem}")
    return config, model
