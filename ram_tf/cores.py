"""RAM's core networks f_h: h_t = f_h(h_{t-1}, g_t) (Mnih et al. 2014,
Sec. 3.1).

- `CoreNetwork`: an LSTM cell, the core of the seed project and of DRAM's
  two recurrent layers (Ba et al. 2015).
- `RectifierCoreNetwork`: Mnih et al.'s classification core, "a network of
  rectifier units", h_t = ReLU(W g_t + U h_{t-1} + b).

`CORE_NETWORKS` maps `core.core_cell` (`config.CORE_CELLS`) to the layer.
Both take `matmul_dtype`: with "bfloat16" their matmuls take bfloat16
operands and the state stays float32 (`ram_tf.precision`).

Call contract, shared with `keras.layers.LSTMCell`: `initial_state(B)` gives
the zero states, and `call(g_t, states)` returns (h_t, new states).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ram_tf import precision
from ram_tf.networks import positive_int

# The same package as ram_tf.networks: a saved model names its layers
# "ram_tf>CoreNetwork" whichever module defines them.
_REG = "ram_tf"


@keras.saving.register_keras_serializable(package=_REG)
class CoreNetwork(keras.layers.Layer):
    """h_t = LSTM(g_t, (h_{t-1}, c_{t-1})), Sonnet-style step.

    Args:
      units: LSTM width.
      matmul_dtype: "float32" (the step is Keras's own `LSTMCell`) or
        "bfloat16" (see the module docstring).

    Call arguments:
      inputs: g_t [B, D]; states: [h [B, units], c [B, units]].

    Returns: (h_t [B, units], [h_t, c_t]).
    Weights: 4 units (D + units + 1).
    """

    def __init__(self, units=256, matmul_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int("units", units)
        self.matmul_dtype = precision.check_matmul_dtype(matmul_dtype)
        self.cell = keras.layers.LSTMCell(units, name="lstm")
        self.frozen = {}  # "kernel", "recurrent_kernel" in matmul_dtype

    def freeze_operands(self):
        """Inference copies only: hold W and U in `matmul_dtype`
        (`frozen_kernels`); a no-op in float32."""
        self.frozen = precision.frozen_kernels(
            {"kernel": self.cell.kernel,
             "recurrent_kernel": self.cell.recurrent_kernel},
            self.matmul_dtype)

    def build(self, input_shape):
        self.cell.build(input_shape)

    def initial_state(self, batch_size):
        zeros = tf.zeros([batch_size, self.units])
        return [zeros, zeros]

    def call(self, inputs, states):
        if self.matmul_dtype == "float32":
            h, new_states = self.cell(inputs, states)
            return h, list(new_states)
        h, c = precision.lstm_step(self.cell, inputs, states[0], states[1],
                         self.matmul_dtype,
                         (self.frozen.get("kernel"),
                          self.frozen.get("recurrent_kernel")))
        return h, [h, c]

    def compute_output_shape(self, input_shape):
        state = (input_shape[0], self.units)
        return state, [state, state]

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "matmul_dtype": self.matmul_dtype}


@keras.saving.register_keras_serializable(package=_REG)
class RectifierCoreNetwork(keras.layers.Layer):
    """h_t = ReLU(W g_t + U h_{t-1} + b), the core of Mnih et al. 2014's
    classification experiments ("a network of rectifier units").

    Args:
      units: width of h_t.
      matmul_dtype: "float32" or "bfloat16" (see the module docstring).

    Call arguments:
      inputs: g_t [B, D]; states: [h [B, units]].

    Returns: (h_t [B, units], [h_t]).
    Weights: units (D + units + 1).
    """

    def __init__(self, units=256, matmul_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int("units", units)
        self.matmul_dtype = precision.check_matmul_dtype(matmul_dtype)
        self.fc_input = keras.layers.Dense(units, name="fc_input")
        # One bias for the sum: U h_{t-1} has none of its own.
        self.fc_recurrent = keras.layers.Dense(units, use_bias=False,
                                               name="fc_recurrent")
        self.frozen = {}  # layer name -> kernel in matmul_dtype

    def freeze_operands(self):
        """Inference copies only: hold W and U in `matmul_dtype`
        (`frozen_kernels`); a no-op in float32."""
        self.frozen = precision.frozen_dense(
            (self.fc_input, self.fc_recurrent), self.matmul_dtype)

    def build(self, input_shape):
        self.fc_input.build(input_shape)
        self.fc_recurrent.build((input_shape[0], self.units))

    def initial_state(self, batch_size):
        return [tf.zeros([batch_size, self.units])]

    def call(self, inputs, states):
        fc = lambda layer, x: precision.dense(  # noqa: E731
            layer, x, self.matmul_dtype, self.frozen.get(layer.name))
        h = tf.nn.relu(fc(self.fc_input, inputs)
                       + fc(self.fc_recurrent, states[0]))
        return h, [h]

    def compute_output_shape(self, input_shape):
        state = (input_shape[0], self.units)
        return state, [state]

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "matmul_dtype": self.matmul_dtype}


# config.CORE_CELLS -> the layer of RAM's core.
CORE_NETWORKS = {"lstm": CoreNetwork, "rectifier": RectifierCoreNetwork}
