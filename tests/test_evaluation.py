"""evaluation.evaluate: the error it reports against errors counted by
hand, the Monte Carlo mode's averaging, and its fixed draws."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY

from ram_tf import config as config_lib
from ram_tf import evaluation
from ram_tf.builders import build_model

# Two rollouts whose logits disagree: averaging the class probabilities
# answers class 0 (about [0.50, 0.37, 0.13]), averaging the logits would
# answer class 1 ([0, 0.5, 0]).
ROLLOUTS = np.array([[10.0, 0.0, 0.0], [-10.0, 1.0, 0.0]], np.float32)


class Stub:
    """A model whose answers are known: deterministic, the class written in
    pixel (0, 0); sampled, the two rollouts of ROLLOUTS for every image."""

    def __init__(self):
        self.seed_generator = keras.random.SeedGenerator(7)

    def __call__(self, images, sample=False, repeats=1):
        batch = tf.shape(images)[0]
        if not sample:
            classes = tf.cast(tf.round(images[:, 0, 0, 0] * 255.0), tf.int32)
            return {"logits": 5.0 * tf.one_hot(classes, 3)}
        assert repeats == 2
        # Copy j of image i at row i * M + j, as the model lays them out.
        return {"logits": tf.tile(tf.constant(ROLLOUTS), [batch, 1])}


def _arrays(written, labels):
    image = np.zeros((len(labels), 4, 4, 1), np.uint8)
    image[:, 0, 0, 0] = written
    return {"image": image, "label": np.array(labels, np.int64)}


def test_errors_are_the_share_of_wrong_answers_in_percent():
    # Seven images in batches of 3 (the last one short): the deterministic
    # answers are wrong on images 1, 3, 4 and 6, the Monte Carlo answer
    # (class 0) on the six labelled 1 or 2.
    arrays = _arrays(written=[0, 1, 2, 0, 2, 1, 0],
                     labels=[0, 2, 2, 1, 1, 1, 2])
    stub = Stub()
    got = evaluation.evaluate(stub, arrays, mc_samples=2, batch_size=3)
    assert got["error_deterministic"] == pytest.approx(100 * 4 / 7)
    assert got["error_mc"] == pytest.approx(100 * 6 / 7)
    assert got["images"] == 7 and got["mc_samples"] == 2


def test_monte_carlo_averages_probabilities_not_logits():
    probs = evaluation.predict_proba(Stub(), tf.zeros([2, 4, 4, 1]), 2)
    softmax = np.exp(ROLLOUTS) / np.exp(ROLLOUTS).sum(-1, keepdims=True)
    np.testing.assert_allclose(probs.numpy(),
                               [softmax.mean(0), softmax.mean(0)], rtol=1e-5)
    assert np.argmax(probs[0]) == 0 != np.argmax(ROLLOUTS.mean(0))


def test_a_model_without_a_seed_generator_is_scored_once():
    stub = Stub()
    del stub.seed_generator
    arrays = _arrays(written=[0, 1], labels=[0, 0])
    got = evaluation.evaluate(stub, arrays, mc_samples=10)
    assert got["mc_samples"] == 0
    assert got["error_mc"] == got["error_deterministic"] == 50.0


def test_the_draws_are_fixed_and_the_generator_is_put_back():
    model = build_model(config_lib.resolve("ram", "mnist28", TINY))
    rng = np.random.default_rng(0)
    arrays = {"image": rng.integers(0, 256, (64, 28, 28, 1), np.uint8),
              "label": rng.integers(0, 10, 64)}
    model(tf.zeros([1, 28, 28, 1]))
    model.seed_generator.next()
    before = model.seed_generator.state.numpy().copy()
    first = evaluation.evaluate(model, arrays, mc_samples=4, batch_size=16)
    np.testing.assert_array_equal(model.seed_generator.state.numpy(), before)
    model.seed_generator.next()  # elsewhere in the state: the same score
    assert evaluation.evaluate(model, arrays, mc_samples=4,
                               batch_size=16) == first
    # The Monte Carlo mode does sample: its rollouts differ from the mean's.
    mean = evaluation.predict_proba(model, tf.constant(
        arrays["image"][:16], tf.float32) / 255.0, 0)
    sampled = evaluation.predict_proba(model, tf.constant(
        arrays["image"][:16], tf.float32) / 255.0, 4)
    assert not np.allclose(mean.numpy(), sampled.numpy())
