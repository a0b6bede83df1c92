"""`train_step` and `test_step` of the attention models (RAM, DRAM, L-DRAM).

`HybridLossSteps` is a mixin of `RecurrentAttentionModel`: one update on
the hybrid loss (`ram_tf.reinforce`) over M Monte Carlo rollouts per image,
and the scores of the deterministic policy, on batches as Keras models
take them (`ram_tf.batches.unpack_batch`). It reads the model's
`rollouts`, `mc_samples`, `std`, `reinforce_weight`, `policy_picks_first`
and its metric `trackers` (named by `TRAIN_METRICS` and `TEST_METRICS`);
a subclass adds loss terms through `check_batch` and `extra_loss` (L-DRAM).
"""

from __future__ import annotations

import tensorflow as tf

from ram_tf import reinforce
from ram_tf.batches import as_labels
from ram_tf.batches import unpack_batch

TRAIN_METRICS = ("loss", "cross_entropy", "baseline_mse", "reinforce",
                 "reward", "accuracy", "location_abs")
TEST_METRICS = ("accuracy", "cross_entropy", "location_abs")


class HybridLossSteps:
    """Keras's `train_step` / `test_step` and metrics of the attention
    models (see the module docstring)."""

    @property
    def metrics(self):
        return list(self.trackers.values())

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
        data, weight = unpack_batch(data)
        images, labels = data["image"], as_labels(data["label"])
        data["label"] = labels  # [B] int32 for extra_loss
        self.check_batch(data)
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
            scaled = reinforce.scale_for_replicas(terms["loss"])
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        # Accuracy of the M-rollout average of class probabilities.
        probs = tf.nn.softmax(out["logits"])
        probs = tf.reduce_mean(tf.reshape(probs, [-1, m, probs.shape[-1]]), 1)
        terms["accuracy"] = reinforce.weighted_mean(reinforce.rewards(
            tf.math.log(probs + 1e-12), labels), weight)
        terms["location_abs"] = self._location_abs(out)
        return self._record(terms)

    def _location_abs(self, out):
        """Mean |l| over the policy's actions (a stuck policy shows 1)."""
        first = 0 if self.policy_picks_first else 1
        return tf.reduce_mean(tf.abs(out["locations"][:, first:]))

    def test_step(self, data):
        """Scores of the deterministic policy on a batch (`unpack_batch`);
        sample weights as in `train_step`."""
        data, weight = unpack_batch(data)
        out = self.rollouts(data["image"], training=False)
        labels = as_labels(data["label"])
        return self._record({
            "accuracy": reinforce.weighted_mean(
                reinforce.rewards(out["logits"], labels), weight),
            "cross_entropy": reinforce.loss_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels, out["logits"]), weight),
            "location_abs": self._location_abs(out),
        })
