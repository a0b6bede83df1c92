"""The glimpse sensor rho(x_t, l_{t-1}) of Mnih et al. 2014.

Location convention, defined here once for the whole library: a location is
(y, x) in [-1, 1]^2, (-1, -1) the top-left corner of the image, (0, 0) its
centre and (1, 1) the bottom-right corner. On an H x W image, location l is
the continuous pixel coordinate c = (l + 1) * [H, W] / 2.

The sensor takes `num_scales` square patches centred on l with sides
g, 2g, 4g, ... (g = `size`), and resizes each to g x g by averaging
2^k x 2^k blocks (area resize, exact and cheap). Pixels outside the image
read as zeros.

Window placement follows `tf.image.extract_glimpse(centered=True,
normalized=True)` exactly: the top-left corner of a side-S window is
trunc(c - S / 2), truncated toward zero like the C++ kernel.

Backends:
- "matmul": all scales at once as two batched matmuls with 0/1 selection
  matrices: for image X [H, W] and scale k,
      rho_k = R_k X C_k^T,   R_k[i, r] = 1/f if c_y + i f <= r < c_y + (i+1) f,
  f = 2^k, c the window corner, C_k likewise for columns. Window cut, zero
  fill outside the image and the f x f block mean are all in R_k and C_k,
  and the rows of every scale are stacked into one [k g, H] matrix, so one
  product serves all scales. The stacked matrices are looked up in one
  table per image side (`ram_tf.glimpse_tables`), bit-identical to
  building them. Builtin TFLite ops, compiles under XLA; the default in
  TensorFlow, while TFLite exports keep gather (docs/performance.md,
  "Design decisions").
- "gather": zero-pad once, then two `tf.gather`s (rows, then columns) per
  scale, then the area resize.
- "extract_glimpse": `tf.image.extract_glimpse(..., noise="zero")`, the
  reference, then the area resize. No XLA kernel, not convertible to TFLite.
"gather" and "extract_glimpse" give identical outputs; "matmul" sums in
another order and agrees with them to float rounding (|diff| < 1e-6 on
[0, 1] images, exact on integer-valued ones).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ram_tf.config import BACKENDS
from ram_tf.glimpse_tables import lookup


def window_corner(locations, image_size, side):
    """Top-left pixel of a side x side window centred on `locations`.

    Args:
      locations: float32 [B, 2], (y, x) in [-1, 1].
      image_size: (H, W), Python ints.
      side: window side S in pixels.

    Returns:
      int32 [B, 2]: trunc((l + 1) * [H, W] / 2 - S / 2), toward zero.
    """
    hw = tf.constant(image_size, tf.float32)
    corner = locations * hw / 2.0 + hw / 2.0 - side / 2.0
    return tf.cast(corner, tf.int32)  # cast truncates toward zero


def area_resize(patches: tf.Tensor, factor: int) -> tf.Tensor:
    """[B, S, S, C] -> [B, S / factor, S / factor, C] by block means."""
    if factor == 1:
        return patches
    s, c = patches.shape[1], patches.shape[3]
    g = s // factor
    blocks = tf.reshape(patches, [-1, g, factor, g, factor, c])
    return tf.reduce_mean(blocks, axis=[2, 4])


@keras.saving.register_keras_serializable(package="ram_tf")
class GlimpseSensor(keras.layers.Layer):
    """Multi-resolution retina: k patches of sides g * 2^i, each to g x g.

    Args:
      size: g, side of every returned patch, in pixels.
      num_scales: k >= 1.
      backend: "matmul" (default), "gather" or "extract_glimpse".
      xla: compile the sensor with XLA on its own (useful when the
        surrounding step is not XLA-compiled); not for extract_glimpse.
      product_dtype: "float32", or "bfloat16" (matmul backend, inference:
        `ram_tf.export` sets it on bfloat16 SavedModels): the selection
        products take bfloat16 operands, so the pixels and the row
        products are rounded to 8 significant bits (relative error below
        3 * 2^-8, tested); the tables are exact and the output float32
        (docs/performance.md, "Design decisions", the bf16 export).

    Call arguments:
      inputs: tuple (images float32 [B, H, W, C], locations float32 [B, 2]);
        locations are (y, x) in [-1, 1] and are clipped to that range.

    Output shape:
      [B, num_scales, size, size, C].
    """

    PRODUCT_DTYPES = ("float32", "bfloat16")

    def __init__(self, size: int = 12, num_scales: int = 3,
                 backend: str = "matmul", xla: bool = False,
                 product_dtype: str = "float32", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size <= 0:
            raise ValueError(
                f"size must be a positive integer. Received: size={size!r}"
            )
        if not isinstance(num_scales, int) or num_scales <= 0:
            raise ValueError(
                "num_scales must be a positive integer. "
                f"Received: num_scales={num_scales!r}"
            )
        if backend not in BACKENDS:
            raise ValueError(
                f"backend must be one of {BACKENDS}. "
                f"Received: backend={backend!r}"
            )
        self.size = size
        self.num_scales = num_scales
        self.backend = backend
        if xla and backend == "extract_glimpse":
            raise ValueError("xla=True needs backend 'matmul' or 'gather': "
                             "ExtractGlimpseV2 has no XLA kernel.")
        self.xla = bool(xla)
        if product_dtype not in self.PRODUCT_DTYPES:
            raise ValueError(f"product_dtype must be one of "
                             f"{self.PRODUCT_DTYPES}. Received: "
                             f"product_dtype={product_dtype!r}")
        if product_dtype != "float32" and backend != "matmul":
            raise ValueError(f"product_dtype={product_dtype!r} needs backend "
                             f"'matmul' (it has the products); got {backend!r}")
        self.product_dtype = product_dtype
        # The sensor is many small ops (selection matrices, gathers, block
        # means): XLA fuses them into a few loops (docs/performance.md,
        # "Design decisions").
        self._xla_glimpses = tf.function(self._glimpses, jit_compile=True)
        # ExtractGlimpseV2 has no XLA kernel.
        self.supports_jit = backend != "extract_glimpse"

    @property
    def sides(self) -> list[int]:
        return [self.size * 2**k for k in range(self.num_scales)]

    def call(self, inputs):
        images, locations = inputs
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4:
            raise ValueError(
                "GlimpseSensor expects images of shape [B, H, W, C]. "
                f"Received shape {images.shape}"
            )
        h, w = images.shape[1], images.shape[2]
        if h is None or w is None:
            raise ValueError("GlimpseSensor needs static image height/width.")
        # The sensor is not differentiable in l: only REINFORCE trains l.
        locations = tf.stop_gradient(
            tf.clip_by_value(tf.cast(locations, tf.float32), -1.0, 1.0)
        )
        if self.xla:
            return self._xla_glimpses(images, locations)
        return self._glimpses(images, locations)

    def _glimpses(self, images, locations):
        if self.backend == "matmul":
            return self._matmul(images, locations)
        if self.backend == "gather":
            hw = (images.shape[1], images.shape[2])
            patches = self._gather(images, locations, hw)
        else:
            patches = self._extract(images, locations)
        return tf.stack(
            [area_resize(p, 2**k) for k, p in enumerate(patches)], axis=1
        )

    def _matmul(self, images, locations):
        h, w, c = images.shape[1], images.shape[2], images.shape[3]
        g, k = self.size, self.num_scales
        dtype = self.product_dtype
        # [B, k g, H] and [B, k g, W]: every scale's rows at once.
        r, col = lookup(locations, (h, w), g, k, dtype)
        col = tf.reshape(col, [-1, k, g, w])
        # Channels ride along the columns: [B, H, W C] -> [B, k g, W C].
        images = tf.cast(tf.reshape(images, [-1, h, w * c]), dtype)
        strips = tf.reshape(tf.matmul(r, images), [-1, k, g, w, c])
        if c == 1:
            out = tf.matmul(strips[..., 0], col, transpose_b=True)[..., None]
        else:
            strips = tf.transpose(strips, [0, 1, 4, 2, 3])  # [B, k, C, g, W]
            out = tf.matmul(strips, col[:, :, None], transpose_b=True)
            out = tf.transpose(out, [0, 1, 3, 4, 2])  # [B, k, g, g, C]
        return tf.cast(out, tf.float32)

    def _extract(self, images, locations):
        return [
            tf.image.extract_glimpse(
                images, size=[s, s], offsets=locations, centered=True,
                normalized=True, noise="zero",
            )
            for s in self.sides
        ]

    def _gather(self, images, locations, hw):
        # With |l| <= 1 a window starts at >= -S/2 and ends <= H + S/2, so
        # padding by half the largest side keeps every index inside.
        pad = (self.sides[-1] + 1) // 2
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        out = []
        for s in self.sides:
            corner = window_corner(locations, hw, s) + pad
            offs = tf.range(s, dtype=tf.int32)
            rows = corner[:, 0:1] + offs  # [B, S]
            cols = corner[:, 1:2] + offs
            strip = tf.gather(padded, rows, axis=1, batch_dims=1)
            out.append(tf.gather(strip, cols, axis=2, batch_dims=1))
        return out

    def compute_output_shape(self, input_shape):
        images_shape = input_shape[0]
        return (images_shape[0], self.num_scales, self.size, self.size,
                images_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "num_scales": self.num_scales,
            "backend": self.backend,
            "xla": self.xla,
            "product_dtype": self.product_dtype,
        }
