"""The hybrid loss against hand-computed values, and where gradients flow."""

import math

import numpy as np
import pytest
import tensorflow as tf
from helpers import nonzero

from ram_tf import reinforce
from ram_tf.model import RecurrentAttentionModel


def _log_normal(x, mu, s):
    return -0.5 * ((x - mu) / s) ** 2 - math.log(s) - 0.5 * math.log(
        2 * math.pi)


def test_terms_match_hand_computed_values():
    logits = tf.constant([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = tf.constant([0, 0])  # rollout 0 right (R=1), rollout 1 wrong
    means = tf.Variable([[[0.1, -0.2]], [[0.0, 0.3]]])
    samples = tf.constant([[[0.2, -0.2]], [[-0.1, 0.5]]])
    baselines = tf.constant([[0.25], [0.5]])
    std = 0.5
    with tf.GradientTape() as tape:
        terms = reinforce.hybrid_loss(logits, labels, means, samples,
                                      baselines, std, reinforce_weight=0.5)
    ce = ((math.log(math.e**2 + 2) - 2) + math.log(2 + math.e)) / 2
    adv = [1 - 0.25, 0 - 0.5]
    logpi = [_log_normal(0.2, 0.1, std) + _log_normal(-0.2, -0.2, std),
             _log_normal(-0.1, 0.0, std) + _log_normal(0.5, 0.3, std)]
    rf = -(logpi[0] * adv[0] + logpi[1] * adv[1]) / 2
    mse = (0.75**2 + 0.5**2) / 2
    assert terms["cross_entropy"].numpy() == pytest.approx(ce, rel=1e-6)
    assert terms["reinforce"].numpy() == pytest.approx(rf, rel=1e-6)
    assert terms["baseline_mse"].numpy() == pytest.approx(mse, rel=1e-6)
    assert terms["reward"].numpy() == pytest.approx(0.5)
    assert terms["loss"].numpy() == pytest.approx(ce + mse + 0.5 * rf,
                                                  rel=1e-6)
    # d loss / d mu = -0.5 * adv * (l - mu) / std^2 / N: the sample is a
    # constant, only the mean carries gradient.
    grad = tape.gradient(terms["loss"], means).numpy()
    s = samples.numpy()
    m = means.numpy()
    want = -0.5 * np.array(adv)[:, None, None] * (s - m) / std**2 / 2
    np.testing.assert_allclose(grad, want, rtol=1e-5)


def test_single_glimpse_has_no_policy_terms():
    logits = tf.constant([[1.0, 0.0]])
    terms = reinforce.hybrid_loss(logits, tf.constant([1]),
                                  tf.zeros([1, 0, 2]), tf.zeros([1, 0, 2]),
                                  tf.zeros([1, 0]), 0.1)
    assert terms["reinforce"].numpy() == 0.0
    assert terms["loss"].numpy() == pytest.approx(math.log(1 + math.e))


def _groups(model):
    return {
        "glimpse": model.glimpse_net.trainable_variables,
        "core": model.core.trainable_variables,
        "location": model.location_net.trainable_variables,
        "baseline": model.baseline_net.trainable_variables,
        "action": model.action_net.trainable_variables,
    }


@pytest.mark.parametrize("scope,term,reached", [
    ("location", "reinforce", {"location"}),
    ("location", "cross_entropy", {"glimpse", "core", "action"}),
    ("location", "baseline_mse", {"baseline"}),
    # "all": both policy terms also train the core and glimpse network.
    ("all", "reinforce", {"location", "core", "glimpse"}),
    ("all", "cross_entropy", {"glimpse", "core", "action"}),
    ("all", "baseline_mse", {"baseline", "core", "glimpse"}),
])
# bfloat16 matmuls (train.precision) must not change the routing.
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_each_term_reaches_only_its_networks(scope, term, reached,
                                             precision):
    tf.random.set_seed(0)
    model = RecurrentAttentionModel(glimpse_size=4, num_scales=2,
                                    num_glimpses=3, glimpse_hidden=8,
                                    location_hidden=8, glimpse_units=16,
                                    core_units=16, std=0.2, seed=3,
                                    gradient_scope=scope, precision=precision)
    images = tf.random.uniform([4, 16, 16, 1])
    labels = tf.constant([0, 1, 2, 3])
    model(images)
    groups = _groups(model)
    with tf.GradientTape(persistent=True) as tape:
        out = model(images, sample=True, repeats=3)
        terms = reinforce.hybrid_loss(
            out["logits"], tf.repeat(labels, 3), out["means"],
            out["samples"], out["baselines"], model.std)
    for name, variables in groups.items():
        grads = tape.gradient(terms[term], variables)
        assert nonzero(grads) == (name in reached), (scope, term, name)


def test_rewards_are_argmax_hits():
    r = reinforce.rewards(tf.constant([[0.1, 0.9], [0.8, 0.2]]),
                          tf.constant([1, 1]))
    np.testing.assert_array_equal(r.numpy(), [1.0, 0.0])
