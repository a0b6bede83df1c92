"""The hybrid loss of RAM: cross-entropy + baseline MSE + lambda * REINFORCE.

For N rollouts (images x Monte Carlo copies) with T glimpses, the policy
takes T - 1 actions l_1 .. l_{T-1} (l_0 is fixed or uniform), each drawn
from pi(l_t | h_t) = Normal(mu_t, sigma^2 I). With reward R = [argmax = y]
and the learned baseline b_t:

  cross_entropy = (1/N) sum_n -log p(y_n | h_T)
  baseline_mse  = (1/(N (T-1))) sum_{n,t} (R_n - b_{n,t})^2
  reinforce     = -(1/N) sum_n sum_t log pi(l_{n,t} | h_{n,t})
                                      * stop_gradient(R_n - b_{n,t})
  loss = cross_entropy + baseline_mse + reinforce_weight * reinforce

`reinforce` is the score-function (likelihood-ratio) estimator of
-grad E[R] (Williams 1992; `tfp.monte_carlo.expectation` derives the same):
grad E[R] = E[(R - b) grad log pi(l)], unbiased for any b that does not
depend on l. Choices (they set the effective step size):
- log-probabilities are summed over the T - 1 actions and averaged over the
  N rollouts: every action is credited with the episode's reward;
- the baseline error is averaged over rollouts and steps;
- reinforce_weight defaults to 1.

Where gradients stop (tested in tests/test_reinforce.py):
- l_t enters log pi under stop_gradient: the gradient reaches mu_t only,
  i.e. the location network, never the sample or the glimpse pixels;
- R - b is under stop_gradient in `reinforce`;
- the location and baseline networks read stop_gradient(h_t)
  (`ram_tf.networks`), so REINFORCE trains the location network alone and
  the MSE the baseline network alone.

Sample weights (optional, w_n >= 0 per rollout): each per-rollout term is
multiplied by w_n before the mean over the N rollouts, Keras's default
"sum_over_batch_size" reduction (`loss_mean`):
  cross_entropy = (1/N) sum_n w_n (-log p(y_n | h_T)), and likewise
  baseline_mse and reinforce; all w_n = 1 is the unweighted loss.
The reward is a weighted mean, sum_n w_n R_n / sum_n w_n (`weighted_mean`),
as Keras's weighted metrics are.

All terms here are per-replica means; under a `tf.distribute` strategy the
optimizer sums gradients over replicas, so `scale_for_replicas` divides.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def rewards(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """R = 1 if argmax(logits) == label else 0. [N, K], [N] -> float32 [N]."""
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.cast(tf.equal(predicted, tf.cast(labels, tf.int32)), tf.float32)


def loss_mean(values: tf.Tensor, weights: tf.Tensor | None = None
              ) -> tf.Tensor:
    """mean(w * values) over every element (Keras "sum_over_batch_size").

    values [N, ...]; weights [N] or None (all 1).
    """
    if weights is None:
        return tf.reduce_mean(values)
    weights = tf.reshape(weights, [-1] + [1] * (values.shape.rank - 1))
    return tf.reduce_mean(values * weights)


def weighted_mean(values: tf.Tensor, weights: tf.Tensor | None = None
                  ) -> tf.Tensor:
    """sum(w * values) / sum(w) over [N] (0 when every weight is 0)."""
    if weights is None:
        return tf.reduce_mean(values)
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights),
                                 tf.reduce_sum(weights))


def log_policy(means: tf.Tensor, samples: tf.Tensor, std: float) -> tf.Tensor:
    """log pi(l_t | h_t) summed over (y, x): [N, T-1, 2] -> [N, T-1]."""
    policy = tfd.Normal(loc=means, scale=std)
    return tf.reduce_sum(policy.log_prob(tf.stop_gradient(samples)), axis=-1)


def hybrid_loss(
    logits: tf.Tensor,
    labels: tf.Tensor,
    means: tf.Tensor,
    samples: tf.Tensor,
    baselines: tf.Tensor,
    std: float,
    reinforce_weight: float = 1.0,
    sample_weight: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """The named terms of the hybrid loss.

    Args:
      logits: [N, K] class scores after the last glimpse.
      labels: int [N].
      means: [N, T-1, 2] policy means mu_t (carry the gradient).
      samples: [N, T-1, 2] the locations drawn (unclipped).
      baselines: [N, T-1] b_t.
      std: policy sigma.
      reinforce_weight: lambda.
      sample_weight: optional float [N], w_n of each rollout (module
        docstring); None weighs every rollout 1.

    Returns:
      dict with scalars loss, cross_entropy, baseline_mse, reinforce, reward.
    """
    labels = tf.cast(labels, tf.int32)
    w = sample_weight
    cross_entropy = loss_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits), w)
    reward = rewards(logits, labels)  # no gradient: argmax
    if means.shape[1] == 0:  # a single glimpse takes no action
        zero = tf.zeros([], tf.float32)
        return {"loss": cross_entropy, "cross_entropy": cross_entropy,
                "baseline_mse": zero, "reinforce": zero,
                "reward": weighted_mean(reward, w)}
    advantage = tf.stop_gradient(reward[:, None] - baselines)
    log_pi = log_policy(means, samples, std)
    reinforce = -loss_mean(tf.reduce_sum(log_pi * advantage, axis=1), w)
    baseline_mse = loss_mean(tf.square(reward[:, None] - baselines), w)
    loss = cross_entropy + baseline_mse + reinforce_weight * reinforce
    return {
        "loss": loss,
        "cross_entropy": cross_entropy,
        "baseline_mse": baseline_mse,
        "reinforce": reinforce,
        "reward": weighted_mean(reward, w),
    }


def location_loss(means: tf.Tensor, target: tf.Tensor,
                  labelled: tf.Tensor,
                  sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """L-DRAM's supervised term over labelled rollouts only.

    L = (1 / n_lab) sum_n labelled_n w_n sum_t ||means_{n,t} - target_n||^2

    Args:
      means: [N, A, 2] policy means (with gradient).
      target: [N, 2] true centres, (y, x) in [-1, 1].
      labelled: [N] 1.0 where the centre may be used, else 0.0.
      sample_weight: optional [N] w_n (None: all 1); n_lab still counts
        the labelled rollouts, as `loss_mean` counts all of them.

    Returns:
      scalar; 0 when nothing is labelled.
    """
    squared = tf.reduce_sum(tf.square(means - target[:, None, :]), [1, 2])
    count = tf.reduce_sum(labelled)
    if sample_weight is not None:
        squared = squared * sample_weight
    return tf.reduce_sum(squared * labelled) / tf.maximum(count, 1.0)


def scale_for_replicas(loss: tf.Tensor) -> tf.Tensor:
    """Divide a per-replica mean by the replica count (gradients are summed)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / tf.cast(replicas, loss.dtype)
