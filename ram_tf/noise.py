"""The policy noise: standard normal draws that XLA and TensorFlow agree on.

`standard_normal(shape, seed)` turns Philox's raw 32-bit words into
normals by the inverse CDF,

    u = (floor(bits / 2^8) + 1/2) / 2^24  in (0, 1),   z = Phi^-1(u),

because the raw words are the one output of `stateless_random_*` that a
whole-step XLA compilation (`machine.jit_compile`) computes exactly as
TensorFlow's kernels do: its float uniforms and normals come from other
transforms. With the same seed, a jit-compiled train step and a plain one
see the same locations, so a run may change `jit_compile` on resume (a
GPU run carried on on a CPU) and the two paths can be compared update for
update. 24 bits per draw resolve the normal to |z| < 5.4, far past the
policy's +-1 clip at std 0.17-0.22.
"""

from __future__ import annotations

import tensorflow as tf

_BITS = 24  # float32's significand: every u below is exact


def standard_normal(shape, seed) -> tf.Tensor:
    """float32 N(0, 1) draws of `shape` from a stateless `seed` (int [2])."""
    words = tf.random.stateless_uniform(
        shape, seed, minval=None, maxval=None, dtype=tf.uint32,
        alg="philox")
    top = tf.cast(tf.bitwise.right_shift(words, 32 - _BITS), tf.float32)
    u = (top + 0.5) * (2.0 ** -_BITS)
    return tf.math.ndtri(u)
