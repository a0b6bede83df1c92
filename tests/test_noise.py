"""`ram_tf.noise.standard_normal`: the policy noise, checked against the
inverse normal CDF of Python's statistics module, at the extreme words,
and under XLA."""

import statistics

import numpy as np
import tensorflow as tf

from ram_tf.noise import BITS
from ram_tf.noise import normal_from_words
from ram_tf.noise import standard_normal

SEED = tf.constant([3, 17], tf.int64)


def test_draws_are_the_inverse_cdf_of_philox_words():
    words = tf.random.stateless_uniform(
        [500], SEED, minval=None, maxval=None, dtype=tf.uint32,
        alg="philox").numpy().astype(np.int64)
    normal = statistics.NormalDist()
    expected = [normal.inv_cdf(((w >> (32 - BITS)) + 0.5) / 2**BITS)
                for w in words]
    np.testing.assert_allclose(standard_normal([500], SEED).numpy(),
                               expected, rtol=1e-5, atol=1e-5)


def test_every_word_gives_a_finite_normal():
    # The largest words once rounded to u = 1 in float32 (z = +inf), one
    # draw in 2^24: a policy sample of inf every few thousand updates.
    extremes = np.array([0, 1, 2**8, 2**9 - 1, 2**31, 2**32 - 2**9,
                         2**32 - 2**8, 2**32 - 2, 2**32 - 1], np.uint32)
    z = normal_from_words(tf.constant(extremes)).numpy()
    assert np.isfinite(z).all(), z
    normal = statistics.NormalDist()
    lowest = normal.inv_cdf(0.5 / 2**BITS)
    np.testing.assert_allclose(z[[0, -1]], [lowest, -lowest], rtol=1e-5)
    # The map is odd about the middle: word w and its complement.
    np.testing.assert_allclose(z, -z[::-1], atol=1e-6)
    # Every top-bits value in one sweep: finite, and the inverse CDF.
    top = np.arange(2**BITS, dtype=np.uint64)
    z = normal_from_words(tf.constant(
        (top << (32 - BITS)).astype(np.uint32))).numpy()
    assert np.isfinite(z).all()
    probe = top[::4099]
    expected = [normal.inv_cdf((k + 0.5) / 2**BITS) for k in probe]
    np.testing.assert_allclose(z[probe], expected, rtol=1e-5, atol=1e-5)


def test_whole_step_xla_draws_the_same_numbers():
    def draw():
        return standard_normal([320, 5, 2], SEED)

    plain = draw().numpy()
    compiled = tf.function(draw, jit_compile=True)().numpy()
    np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=1e-5)
    # TensorFlow's own normals do not survive XLA: the reason for this one.
    def tf_normal():
        return tf.random.stateless_normal([320, 5, 2], SEED, alg="philox")

    assert not np.allclose(tf.function(tf_normal, jit_compile=True)(),
                           tf_normal())


def test_draws_are_standard_normal():
    z = np.sort(standard_normal([100_000], SEED).numpy())
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    cdf = np.array([statistics.NormalDist().cdf(v) for v in z[::50]])
    empirical = (np.arange(len(z))[::50] + 0.5) / len(z)
    # Kolmogorov-Smirnov at n = 100,000: 0.0052 is the 0.1 % level.
    assert np.abs(cdf - empirical).max() < 0.0052


def test_another_seed_gives_independent_draws():
    a = standard_normal([1000], SEED).numpy()
    b = standard_normal([1000], SEED + 1).numpy()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1
