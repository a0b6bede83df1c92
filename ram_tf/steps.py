"""`train_step` and `test_step` of the attention models (RAM, DRAM, L-DRAM).

`HybridLossSteps` is a mixin of `RecurrentAttentionModel`: one update on
the hybrid loss (`ram_tf.reinforce`) over M Monte Carlo rollouts per image,
and the scores of the deterministic policy, on batches as Keras models
take them (`ram_tf.batches.unpack_batch`). It reads the model's
`rollouts`, `mc_samples`, `std`, `reinforce_weight`, `policy_picks_first`
and its metric `trackers` (named by `TRAIN_METRICS` and `TEST_METRICS`);
a subclass adds loss terms through `check_batch` and `extra_loss` (L-DRAM).

Every step checks that its images, sample weights and L-DRAM locations are
finite before computing anything, and a training step that its loss or
the policy's locations are, before its update (`finite`): a NaN batch or
a diverged step is an error that names it, and leaves the weights, the
optimizer and its update count as they were.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ram_tf import reinforce
from ram_tf.batches import as_images
from ram_tf.batches import as_labels
from ram_tf.batches import unpack_batch

TRAIN_METRICS = ("loss", "cross_entropy", "baseline_mse", "reinforce",
                 "reward", "accuracy", "location_abs")
TEST_METRICS = ("accuracy", "cross_entropy", "location_abs")

# What the checks of `finite` say. A NaN pixel or weight otherwise surfaces
# as a glimpse index far outside the image, or as an update that turns
# every weight NaN. `ram_tf.callbacks.UpdateGuard` reads DIVERGED to
# report the run as diverged.
DIVERGED = (", so this update was not applied: the model diverged (lower "
            "the learning rate or clipnorm)")
_NOT_FINITE = {
    "image": "the batch's images hold NaN or Inf values; the models take "
             "finite pixels in [0, 1]",
    "location": "the batch's 'location' (L-DRAM's true centres) holds NaN "
                "or Inf values; expected (y, x) in [-1, 1]",
    "sample_weight": "the batch's sample_weight holds NaN or Inf values",
    "loss": "the loss is not finite" + DIVERGED,
    "policy": "the policy's locations are not finite" + DIVERGED,
}


def finite(x, what: str):
    """`x` (float), with an error naming `what` if any value is NaN or Inf.

    Everything computed from the result depends on the check, so a batch
    that fails it changes nothing; the gradient is checked too. Under XLA
    the check is a no-op.
    """
    return tf.debugging.check_numerics(x, _NOT_FINITE[what])


class HybridLossSteps:
    """Keras's `train_step` / `test_step` and metrics of the attention
    models (see the module docstring)."""

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, optimizer="rmsprop", loss=None, metrics=None,
                **kwargs):
        """Keras's `compile`, without `loss` or `metrics`: the steps train
        the hybrid loss and log their own terms (`TRAIN_METRICS`)."""
        ignored = {"loss": loss, "metrics": metrics,
                   "loss_weights": kwargs.get("loss_weights"),
                   "weighted_metrics": kwargs.get("weighted_metrics")}
        given = [name for name, value in ignored.items() if value is not None]
        if given:
            raise ValueError(
                f"{type(self).__name__} trains on its hybrid loss "
                "(cross-entropy, REINFORCE, baseline) and logs accuracy, "
                f"cross_entropy and its loss terms itself; compile takes "
                f"an optimizer only. Received {', '.join(given)}")
        super().compile(optimizer=optimizer, **kwargs)

    def _record(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in values}

    def check_batch(self, data):
        """Refuse a training batch that lacks what `extra_loss` reads,
        before any computation (L-DRAM's locations)."""
        del data  # RAM reads images and labels only (`unpack_batch`)

    def extra_loss(self, data, out, repeats, sample_weight=None):
        """Terms added to the hybrid loss (L-DRAM's location loss).

        Returns {name: (coefficient, value)}; `sample_weight` [B * M] is
        the per-rollout weight, None when the batch has none.
        """
        return {}

    def train_step(self, data):
        """One update on a batch (`unpack_batch`), the hybrid loss.

        With a sample_weight w_i per image, every per-rollout term of the
        loss is multiplied by w_i before the mean over the B * M rollouts,
        as Keras's default loss reduction ("sum_over_batch_size") does:
        weights of 1 give the unweighted loss, 0 removes an image from
        every gradient. The logged reward and accuracy are weighted means
        (sum w R / sum w), as Keras's weighted metrics are
        (`ram_tf.reinforce`).
        """
        data, weight = self._checked(data, training=True)
        images, labels = data["image"], data["label"]
        m = self.mc_samples
        # M copies of each image with independent location samples.
        labels_m = tf.repeat(labels, m, axis=0)
        weight_m = None if weight is None else tf.repeat(weight, m, axis=0)
        with tf.GradientTape() as tape:
            out = self.rollouts(images, training=True, sample=True,
                                repeats=m)
            terms = reinforce.hybrid_loss(
                out["logits"], labels_m, out["means"], out["samples"],
                out["baselines"], self.std, self.reinforce_weight,
                sample_weight=weight_m)
            for name, (coef, value) in self.extra_loss(
                    data, out, m, sample_weight=weight_m).items():
                terms[name] = value
                terms["loss"] = terms["loss"] + coef * value
            scaled = reinforce.scale_for_replicas(
                finite(terms["loss"], "loss"))
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        # The update, its count included, waits for every check: one from
        # a NaN loss would make every weight NaN.
        with tf.control_dependencies([scaled]):
            self.optimizer.apply(grads, variables)
        # Accuracy of the M-rollout average of class probabilities.
        probs = tf.nn.softmax(out["logits"])
        probs = tf.reduce_mean(tf.reshape(probs, [-1, m, probs.shape[-1]]), 1)
        terms["accuracy"] = reinforce.weighted_mean(reinforce.rewards(
            tf.math.log(probs + 1e-12), labels), weight)
        terms["location_abs"] = self._location_abs(out)
        return self._record(terms)

    def predict_step(self, data):
        """`call` on a batch's images (finite: `finite`)."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(finite(as_images(x), "image"), training=False)

    def _checked(self, data, training=False):
        """`unpack_batch` with int32 labels [B] and finite inputs; in
        training `check_batch` first, and L-DRAM's "location" [B, 2]."""
        data, weight = unpack_batch(data)
        data["label"] = as_labels(data["label"], self.num_classes)
        if training:
            self.check_batch(data)
        data["image"] = finite(as_images(data["image"]), "image")
        if training and self.location_supervised:  # what extra_loss reads
            data["location"] = finite(tf.ensure_shape(
                tf.cast(data["location"], tf.float32), (None, 2)), "location")
        if weight is not None:
            weight = finite(weight, "sample_weight")
            with tf.control_dependencies([tf.debugging.assert_non_negative(
                    weight, "sample_weight must not be negative")]):
                weight = tf.identity(weight)
        return data, weight

    def _location_abs(self, out):
        """Mean |l| over the policy's actions (a stuck policy shows 1)."""
        first = 0 if self.policy_picks_first else 1
        return tf.reduce_mean(tf.abs(out["locations"][:, first:]))

    def test_step(self, data):
        """Scores of the deterministic policy on a batch (`unpack_batch`);
        sample weights as in `train_step`."""
        data, weight = self._checked(data)
        out = self.rollouts(data["image"], training=False)
        labels = data["label"]
        return self._record({
            "accuracy": reinforce.weighted_mean(
                reinforce.rewards(out["logits"], labels), weight),
            "cross_entropy": reinforce.loss_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels, out["logits"]), weight),
            "location_abs": self._location_abs(out),
        })
