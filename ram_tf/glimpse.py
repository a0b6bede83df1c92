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
- "gather": zero-pad once, then two `tf.gather`s (rows, then columns) per
  scale. Builtin TFLite ops only, compiles under XLA. The default.
- "extract_glimpse": `tf.image.extract_glimpse(..., noise="zero")`, the
  reference. No XLA kernel and not convertible to TFLite.
Both feed the same area resize, so they give identical outputs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

BACKENDS = ("gather", "extract_glimpse")


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
      backend: "gather" (default) or "extract_glimpse".
      xla: compile the gather sensor with XLA on its own (useful when the
        surrounding step is not XLA-compiled).

    Call arguments:
      inputs: tuple (images float32 [B, H, W, C], locations float32 [B, 2]);
        locations are (y, x) in [-1, 1] and are clipped to that range.

    Output shape:
      [B, num_scales, size, size, C].
    """

    def __init__(self, size: int = 12, num_scales: int = 3,
                 backend: str = "gather", xla: bool = False, **kwargs):
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
        if xla and backend != "gather":
            raise ValueError("xla=True needs backend='gather': "
                             "ExtractGlimpseV2 has no XLA kernel.")
        self.xla = bool(xla)
        # Gathers and block means are many small ops: XLA fuses them into a
        # few loops (about 6x faster on CPU than op by op; README).
        self._xla_glimpses = tf.function(self._glimpses, jit_compile=True)
        # ExtractGlimpseV2 has no XLA kernel.
        self.supports_jit = backend == "gather"

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
        if self.backend == "gather":
            if self.xla:
                return self._xla_glimpses(images, locations)
            return self._glimpses(images, locations)
        patches = self._extract(images, locations)
        return tf.stack(
            [area_resize(p, 2**k) for k, p in enumerate(patches)], axis=1
        )

    def _glimpses(self, images, locations):
        hw = (images.shape[1], images.shape[2])
        patches = self._gather(images, locations, hw)
        return tf.stack(
            [area_resize(p, 2**k) for k, p in enumerate(patches)], axis=1
        )

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
        }
