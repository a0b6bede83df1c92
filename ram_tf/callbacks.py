"""The callbacks of a training run: where `fit` stops, what each epoch
logs, and the checkpoint that commits it.

Their order in `fit` matters and is set by `ram_tf.training`: `UpdateGuard`
first (a diverged epoch is neither logged nor saved), `UpdateCounter`
before CSVLogger (its columns reach log.csv), `Checkpointer` last.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from ram_tf import rundir
from ram_tf.steps import DIVERGED


class TrainingDiverged(RuntimeError):
    """The loss or a weight stopped being finite; nothing of the epoch it
    happened in was saved.

    Attributes:
      what: what happened and what was kept.
      advice: what a user who chose the settings can change.
    """

    def __init__(self, what: str, advice: str = ""):
        super().__init__(f"{what} {advice}".strip())
        self.what, self.advice = what, advice


class UpdateGuard(keras.callbacks.Callback):
    """Ends `fit` after exactly `remaining` updates, and raises
    `TrainingDiverged` at the first loss or weight that is not finite.

    Listed first: its epoch-end check runs before the epoch is logged and
    checkpointed, so a diverged state is never saved.
    """

    def __init__(self, remaining, start, train):
        super().__init__()
        self.remaining, self.start, self.train = remaining, start, train
        self.seen, self.last_good = 0, start or None

    def _diverged(self, what):
        kept = (f"its last good checkpoint, at update {self.last_good}, is "
                "kept" if self.last_good else "no checkpoint was written")
        t = self.train
        raise TrainingDiverged(
            f"training diverged at update {self.start + self.seen}: {what}. "
            f"Nothing of this epoch was saved; {kept}.",
            f"Lower train.learning_rate (now {t.learning_rate:g}) or "
            f"train.clipnorm (now {t.clipnorm:g}) and train in another "
            "--workdir")

    @contextlib.contextmanager
    def refusals(self):
        """Around `fit`: a step that refused to apply its update
        (`ram_tf.steps.DIVERGED` in its error) is the update after the
        last one counted, and raises `TrainingDiverged` for it."""
        try:
            yield
        except tf.errors.InvalidArgumentError as e:
            if DIVERGED not in str(e):
                raise
            line = next(x for x in str(e).splitlines() if DIVERGED in x)
            self.seen += 1
            self._diverged(line.split(DIVERGED)[0].strip())

    def on_epoch_begin(self, epoch, logs=None):
        if self.seen:
            self.last_good = self.start + self.seen

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._diverged(f"the loss is {float(loss)}")
        if self.seen >= self.remaining:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        bad = [v.path for v in self.model.trainable_variables
               if not np.isfinite(v.numpy()).all()]
        if bad:
            self._diverged(f"weights are not finite ({', '.join(bad[:3])})")


class UpdateCounter(keras.callbacks.Callback):
    """Adds the optimizer's update count and learning rate to the epoch logs.

    Listed before CSVLogger, so these columns reach log.csv too.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["updates"] = int(self.model.optimizer.iterations.numpy())
            logs["learning_rate"] = float(
                self.model.optimizer.learning_rate.numpy())


class Checkpointer(keras.callbacks.Callback):
    """Saves progress, then model, optimizer and RNG state, at each epoch end.

    Listed last: the checkpoint is the commit point of an epoch. A kill
    before it re-runs the epoch on resume (its log row is trimmed and
    written again); a kill after it has already logged everything.
    """

    def __init__(self, manager, epoch_var, progress_path, started, before,
                 precision):
        super().__init__()
        self.manager, self.epoch_var = manager, epoch_var
        self.progress_path = progress_path
        self.started, self.before = started, before
        self.precision = precision

    def on_epoch_end(self, epoch, logs=None):
        rundir.write_json(self.progress_path, {
            "epochs_done": epoch + 1,
            "updates": int(self.model.optimizer.iterations.numpy()),
            "train_seconds": self.before + time.time() - self.started,
            "precision": self.precision,
        })
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


class WorkerCheckpointer(keras.callbacks.Callback):
    """A multi-worker run's epoch-end save on a worker other than the chief.

    TensorFlow needs every worker to take part in a checkpoint save, but
    only the chief's is kept: this one goes to a temporary folder outside
    the run directory and is removed at once (`ram_tf.distribute`).
    """

    def __init__(self, checkpoint, epoch_var):
        super().__init__()
        self.checkpoint, self.epoch_var = checkpoint, epoch_var

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_var.assign(epoch + 1)
        folder = tempfile.mkdtemp(prefix="ram_tf-worker-")
        try:
            self.checkpoint.write(os.path.join(folder, "ckpt"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
