"""bfloat16 operand matmuls, and the kernel casts of inference copies.

With `matmul_dtype` "bfloat16", the matmuls of the glimpse network and the
core (LSTM or rectifier, `ram_tf.networks`; forward and backward, most of
a RAM update's FLOPs) take bfloat16 operands, which oneDNN runs on
AVX512-BF16 / AMX; the weights, biases, activations, LSTM cell state and
everything downstream stay float32 (`dense` and `lstm_step`). Only the
matmuls: bfloat16 element-wise ops ran slower than float32 ones
(docs/performance.md, "Design decisions").

Inference copies (`ram_tf.export`) may hold their kernels already cast
(`frozen_kernels`), so that a traced forward casts only its activations.
"""

from __future__ import annotations

import tensorflow as tf

# The dtypes of the glimpse network's and core's matmul operands.
MATMUL_DTYPES = ("float32", "bfloat16")


def check_matmul_dtype(value):
    """`value` if it is one of `MATMUL_DTYPES`, else a ValueError."""
    if value not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}. "
                         f"Received: matmul_dtype={value!r}")
    return value


def matmul(x, w, dtype, w_cast=None):
    """x @ w with both operands cast to `dtype`, the product in float32.

    x [B, n], w [n, m] -> [B, m]. With float32 this is `tf.matmul`; with
    bfloat16 the product is rounded to bfloat16 (8 significant bits)
    before it is cast back, as oneDNN returns it. `w_cast`: w already in
    `dtype` (`freeze_operands`), so that only x is cast.
    """
    if dtype == "float32":
        return tf.matmul(x, w)
    w = tf.cast(w, dtype) if w_cast is None else w_cast
    return tf.cast(tf.matmul(tf.cast(x, dtype), w), tf.float32)


def dense(layer, x, dtype, kernel=None):
    """`layer(x)` for a built `keras.layers.Dense`, its matmul in `dtype`:
    activation(x @ kernel + bias), bias and activation in float32.
    `kernel`: the kernel already in `dtype` (`freeze_operands`)."""
    if dtype == "float32":
        return layer(x)
    y = matmul(x, layer.kernel, dtype, kernel)
    if layer.use_bias:
        y = tf.nn.bias_add(y, layer.bias)
    return layer.activation(y)


def lstm_step(cell, x, h, c, dtype, kernels=(None, None)):
    """One step of a built `keras.layers.LSTMCell`, its matmuls in `dtype`.

      z = x W + h U + b;  i, f, g, o = split(z, 4)
      c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c')

    x [B, D], h and c [B, units] -> (h', c'). Gates and state in float32.
    `kernels`: (W, U) already in `dtype` (`freeze_operands`), or Nones.
    """
    z = (matmul(x, cell.kernel, dtype, kernels[0])
         + matmul(h, cell.recurrent_kernel, dtype, kernels[1]) + cell.bias)
    i, f, g, o = tf.split(z, 4, axis=1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


def frozen_kernels(kernels, dtype):
    """`kernels` (name -> variable) cast to `dtype` once, as eager tensors.

    For inference copies (`ram_tf.export`): a traced function captures each
    as a constant, so a bfloat16 forward casts only its activations, not
    every weight in every call (docs/performance.md, "Design decisions",
    the bf16 export). The tensors do not follow later changes of the
    variables. In float32 there is nothing to cast: {} (the layers then
    read their variables).
    """
    if dtype == "float32":
        return {}
    with tf.init_scope():  # eager even while a tf.function is traced
        return {name: tf.constant(tf.cast(v, dtype))
                for name, v in kernels.items()}


def frozen_dense(layers, dtype):
    """`frozen_kernels` of Dense `layers`, keyed by layer name: what
    `dense(layer, x, dtype, frozen.get(layer.name))` reads."""
    return frozen_kernels({fc.name: fc.kernel for fc in layers}, dtype)
