"""The policy noise: standard normal draws that XLA and TensorFlow agree on.

`standard_normal(shape, seed)` turns Philox's raw 32-bit words into
normals by the inverse CDF (`normal_from_words`),

    u = (floor(bits / 2^9) + 1/2) / 2^23  in (0, 1),   z = Phi^-1(u),

because the raw words are the one output of `stateless_random_*` that a
whole-step XLA compilation (`machine.jit_compile`) computes exactly as
TensorFlow's kernels do: its float uniforms and normals come from other
transforms. With the same seed, a jit-compiled train step and a plain one
see the same locations, so a run may change `jit_compile` on resume (a
GPU run carried on on a CPU) and the two paths can be compared update for
update.

Why 23 bits: k + 1/2 needs one bit more than k, and float32 holds 24, so
every u above is exact and u never rounds to 0 or 1, where Phi^-1 is
infinite (with 24 bits the largest word's k + 1/2 = 2^24 - 1/2 rounds to
2^24, u = 1 and z = +inf: one draw in 2^24, a policy sample of inf every
few thousand updates). 23 bits resolve the normal to |z| < 5.3, far past
the policy's +-1 clip at std 0.17-0.22.
"""

from __future__ import annotations

import tensorflow as tf

BITS = 23  # one less than float32's significand: k + 1/2 stays exact


def normal_from_words(words: tf.Tensor) -> tf.Tensor:
    """float32 N(0, 1) values of uint32 `words` (any shape), by the
    inverse CDF of their top `BITS` bits; finite for every word."""
    top = tf.cast(tf.bitwise.right_shift(words, 32 - BITS), tf.float32)
    u = (top + 0.5) * (2.0 ** -BITS)
    return tf.math.ndtri(u)


def standard_normal(shape, seed) -> tf.Tensor:
    """float32 N(0, 1) draws of `shape` from a stateless `seed` (int [2])."""
    words = tf.random.stateless_uniform(
        shape, seed, minval=None, maxval=None, dtype=tf.uint32,
        alg="philox")
    return normal_from_words(words)
