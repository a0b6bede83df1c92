"""The sub-networks of RAM, named as in Mnih et al. 2014 (Sec. 3.1).

- `GlimpseNetwork` f_g: h_g = ReLU(W_g rho), h_l = ReLU(W_l l),
  g_t = ReLU(W_hg h_g + W_hl h_l).
- The core network f_h, h_t = f_h(h_{t-1}, g_t): `ram_tf.cores` (an LSTM,
  or Mnih et al.'s rectifier core).
- `LocationNetwork` f_l: mean mu_t = a tanh(W h_t); policy Normal(mu_t, sigma).
- `ActionNetwork` f_a: class logits from the last core output.
- `BaselineNetwork` f_b: b_t, the expected reward, from h_t.
- `ContextNetwork` (DRAM, Ba et al. 2015): a coarse view of the whole
  image that starts DRAM's top core layer and picks the first glimpse.

Every layer follows the Keras contract: `__init__` checks and stores plain
values, `build` creates the weights from the input shape, and
`compute_output_shape` and `get_config` describe the layer.

Precision: `GlimpseNetwork` (like the cores) takes `matmul_dtype`. With
"bfloat16" their matmuls take bfloat16 operands and everything else stays
float32 (`ram_tf.precision`).

In RAM the location and baseline networks read `stop_gradient(h_t)`:
REINFORCE trains only the location network and the squared error only the
baseline, while the cross-entropy alone shapes the glimpse network and
core. This is the routing of kevinzakka/recurrent-visual-attention
(h_t.detach()) and is pinned by `tests/test_reinforce.py`. DRAM's gradient
scopes let the baseline error (and under "where" REINFORCE) into its top
core layer and context network (`ram_tf.dram`).
"""

from __future__ import annotations

import math
import numbers

import keras
import tensorflow as tf

from ram_tf import precision
from ram_tf.config import CONTEXT_RESIZES

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "ram_tf runs on Keras's TensorFlow backend; Keras is set to "
        f"{keras.backend.backend()!r} (KERAS_BACKEND or ~/.keras/keras.json)")

_REG = "ram_tf"


def positive_int(name, value):
    """`value` as an int, or a ValueError naming the argument `name`."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or value < 1):
        raise ValueError(f"{name} must be a positive integer. "
                         f"Received: {name}={value!r}")
    return int(value)


def positive_number(name, value, allow_zero=False):
    """`value` as a float, or a ValueError naming the argument `name`."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= 0 if allow_zero
                                        else value > 0))
    if not ok:
        raise ValueError(f"{name} must be a finite number "
                         f"{'>= 0' if allow_zero else '> 0'}. "
                         f"Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package=_REG)
class GlimpseNetwork(keras.layers.Layer):
    """g_t = ReLU(FC(ReLU(FC(rho))) + FC(ReLU(FC(l)))).

    Args:
      glimpse_hidden: width of h_g = ReLU(FC(flatten(rho))).
      location_hidden: width of h_l = ReLU(FC(l)).
      units: width of g_t.
      matmul_dtype: "float32" or "bfloat16" (see the module docstring).

    Call arguments:
      inputs: (patches [B, k, g, g, C], locations [B, 2]).

    Output shape: [B, units].
    Weights: (k g^2 C + 1) glimpse_hidden + 3 location_hidden
      + (glimpse_hidden + location_hidden + 2) units.
    """

    def __init__(self, glimpse_hidden=128, location_hidden=128, units=256,
                 matmul_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        self.glimpse_hidden = positive_int("glimpse_hidden", glimpse_hidden)
        self.location_hidden = positive_int("location_hidden",
                                            location_hidden)
        self.units = positive_int("units", units)
        self.matmul_dtype = precision.check_matmul_dtype(matmul_dtype)
        self.fc_glimpse = keras.layers.Dense(glimpse_hidden, "relu",
                                             name="fc_glimpse")
        self.fc_location = keras.layers.Dense(location_hidden, "relu",
                                              name="fc_location")
        self.fc_what = keras.layers.Dense(units, name="fc_what")
        self.fc_where = keras.layers.Dense(units, name="fc_where")
        self.frozen = {}  # layer name -> kernel in matmul_dtype

    def freeze_operands(self):
        """Inference copies only: hold the kernels in `matmul_dtype`
        (`frozen_kernels`); a no-op in float32."""
        self.frozen = precision.frozen_dense(
            (self.fc_glimpse, self.fc_location, self.fc_what, self.fc_where),
            self.matmul_dtype)

    def build(self, input_shape):
        patches_shape, loc_shape = input_shape
        flat = 1
        for d in patches_shape[1:]:
            flat *= d
        self.fc_glimpse.build((patches_shape[0], flat))
        self.fc_location.build(loc_shape)
        self.fc_what.build((patches_shape[0], self.glimpse_hidden))
        self.fc_where.build((loc_shape[0], self.location_hidden))

    def call(self, inputs):
        patches, locations = inputs
        flat = tf.reshape(patches, [tf.shape(patches)[0], -1])
        fc = lambda layer, x: precision.dense(  # noqa: E731
            layer, x, self.matmul_dtype, self.frozen.get(layer.name))
        h_g = fc(self.fc_glimpse, flat)
        h_l = fc(self.fc_location, tf.stop_gradient(locations))
        # ReLU as max(z, 0): with oneDNN kernels, Grappler's remapper fuses
        # MatMul + BiasAdd + Add + Relu here into a node with no op, and the
        # training graph's function optimizer fails with error-level logs.
        # Same values; the gradient differs only at z = 0.
        return tf.maximum(fc(self.fc_what, h_g) + fc(self.fc_where, h_l),
                          0.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "glimpse_hidden": self.glimpse_hidden,
                "location_hidden": self.location_hidden, "units": self.units,
                "matmul_dtype": self.matmul_dtype}


@keras.saving.register_keras_serializable(package=_REG)
class LocationNetwork(keras.layers.Layer):
    """mu_t = a tanh(FC_2(stop_gradient(h_t))), the mean of the policy.

    Args:
      mean_bound: a in (0, 1]. Mnih et al. have a = 1; PrincipalComponent/
        ram's DRAM has a = 0.8, so that no mean reaches the canvas border,
        where REINFORCE would have to push tanh out of its flat tail.

    Call arguments:
      h: h_t [B, D]; stop_gradient: read h_t under `tf.stop_gradient`.

    Output shape: [B, 2], (y, x) in (-a, a). Weights: 2 (D + 1).
    """

    def __init__(self, mean_bound=1.0, **kwargs):
        super().__init__(**kwargs)
        self.mean_bound = float(mean_bound)
        self.fc = keras.layers.Dense(2, "tanh", name="fc_mean")

    def build(self, input_shape):
        self.fc.build(input_shape)

    def call(self, h, stop_gradient=True):
        # stop_gradient=False: REINFORCE (gradient scopes "where", "all")
        # or L-DRAM's location loss also train the layers below.
        mean = self.fc(tf.stop_gradient(h) if stop_gradient else h)
        # a = 1 multiplies by nothing, so old runs compute what they did.
        return mean if self.mean_bound == 1.0 else self.mean_bound * mean

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2)

    def get_config(self):
        return {**super().get_config(), "mean_bound": self.mean_bound}


@keras.saving.register_keras_serializable(package=_REG)
class BaselineNetwork(keras.layers.Layer):
    """b_t = FC_1(stop_gradient(h_t)), the expected reward.

    Call arguments:
      h: h_t [B, D]; stop_gradient: read h_t under `tf.stop_gradient`.

    Output shape: [B]. Weights: D + 1.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fc = keras.layers.Dense(1, name="fc_baseline")

    def build(self, input_shape):
        self.fc.build(input_shape)

    def call(self, h, stop_gradient=True):
        # stop_gradient=False: the squared error also trains the layers
        # below (gradient scopes "critic", "where" and "all").
        return self.fc(tf.stop_gradient(h) if stop_gradient else h)[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)


@keras.saving.register_keras_serializable(package=_REG)
class ActionNetwork(keras.layers.Layer):
    """Class logits = FC_K(h_T).

    Args:
      num_classes: K.

    Output shape: [B, num_classes]. Weights: K (D + 1).
    """

    def __init__(self, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = positive_int("num_classes", num_classes)
        self.fc = keras.layers.Dense(num_classes, name="fc_logits")

    def build(self, input_shape):
        self.fc.build(input_shape)

    def call(self, h):
        return self.fc(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package=_REG)
class ContextNetwork(keras.layers.Layer):
    """c = ReLU(FC(flatten(CNN(resize(x))))), DRAM's coarse view (Ba et al.
    2015): the whole image, resized to size x size, through conv layers
    (ReLU, "same" padding), each followed by 2x2 max pooling, then one fully
    connected ReLU layer.

    The resize of an H x W image to s x s ("area", the default): the means
    of k_h x k_w blocks, k_h = floor(H / s) (average pooling, stride k,
    "valid"), then bilinear to s x s. Every pixel reaches the context, each
    with weight ~1 / k^2, where bilinear alone reads 2x2 neighbourhoods H / s
    apart: on 200x200, one digit in 20 keeps under 1 % of its ink. Both
    steps are TFLite builtins (AVERAGE_POOL_2D, RESIZE_BILINEAR).

    Args:
      size: side s of the resized image; each pooling halves it (floor),
        so s >= 2^len(filters).
      filters, kernels: output channels and kernel side of each conv layer.
      units: width of c (DRAM: the core width).
      resize: "area" or "bilinear" (above).

    Call arguments:
      images: [B, H, W, C].

    Output shape: [B, units].
    Weights: sum_i (k_i^2 c_{i-1} + 1) f_i + (f_n (s / 2^n)^2 + 1) units,
      c_0 = C, with s / 2^n halved n times (floor).
    """

    def __init__(self, size=24, filters=(32, 32), kernels=(5, 3), units=256,
                 resize="area", **kwargs):
        super().__init__(**kwargs)
        self.size, self.units = (positive_int("size", size),
                                 positive_int("units", units))
        if resize not in CONTEXT_RESIZES:
            raise ValueError(
                f"resize must be one of {list(CONTEXT_RESIZES)}. "
                f"Received: resize={resize!r}")
        self.resize = resize
        self.filters = tuple(positive_int("filters", f) for f in filters)
        self.kernels = tuple(positive_int("kernels", k) for k in kernels)
        if len(self.filters) != len(self.kernels):
            raise ValueError(
                "filters and kernels must have one entry per conv layer. "
                f"Received: filters={list(filters)}, kernels={list(kernels)}")
        if self.size < 2 ** len(self.filters):
            raise ValueError(
                f"size must be at least 2^{len(self.filters)} = "
                f"{2 ** len(self.filters)}: each of the {len(self.filters)} "
                f"conv layers halves it. Received: size={size!r}")
        self.convs = [keras.layers.Conv2D(f, k, padding="same",
                                          activation="relu", name=f"conv{i}")
                      for i, (f, k) in enumerate(zip(self.filters,
                                                     self.kernels))]
        self.pool = keras.layers.MaxPooling2D(2)
        self.fc = keras.layers.Dense(units, "relu", name="fc_context")

    def build(self, input_shape):
        batch, channels = input_shape[0], input_shape[-1]
        side = self.size
        for conv in self.convs:
            conv.build((batch, side, side, channels))
            side, channels = side // 2, conv.filters
        self.fc.build((batch, channels * side * side))

    def shrink(self, images):
        """[B, H, W, C] -> [B, s, s, C], by `resize` (H and W static)."""
        if self.resize == "area":
            if None in images.shape[1:3]:
                raise ValueError(
                    "resize='area' needs the image's height and width when "
                    f"the graph is built. Received: shape={images.shape}")
            block = [max(1, n // self.size) for n in images.shape[1:3]]
            if block != [1, 1]:
                images = tf.nn.avg_pool2d(images, block, block, "VALID")
        return tf.image.resize(images, [self.size, self.size], "bilinear")

    def call(self, images):
        x = self.shrink(images)
        for conv in self.convs:
            x = self.pool(conv(x))
        # A static width, so that the fully connected layer can be built
        # inside a traced function.
        return self.fc(tf.reshape(x, [-1, math.prod(x.shape[1:])]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "size": self.size,
                "filters": list(self.filters), "kernels": list(self.kernels),
                "units": self.units, "resize": self.resize}
