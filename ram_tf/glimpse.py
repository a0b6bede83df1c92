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
  matrices (`selection_matrices`): for image X [H, W] and scale k,
      rho_k = R_k X C_k^T,   R_k[i, r] = 1/f if c_y + i f <= r < c_y + (i+1) f,
  f = 2^k, c the window corner, C_k likewise for columns. Window cut, zero
  fill outside the image and the f x f block mean are all in R_k and C_k,
  and the rows of every scale are stacked into one [k g, H] matrix, so one
  product serves all scales. The stacked matrices are looked up, not
  built: every corner trunc(c - S_k / 2) of every scale is fixed by one
  index, floor(u) + ceil(u) with u = c (2c for an odd g), so one table
  holds the stacked matrices of every index a location in [-1, 1] can
  give (`scale_table`, 1.0 MB on 60x60, 2.9 MB on 100x100) and a glimpse
  costs one gather for rows and columns together (`lookup`). Building
  the matrices took about 8 small ops per scale and axis and made the
  SavedModel 1.2-1.3x slower at batch 256; one table per scale and axis
  (session 6: three corners and six gathers per glimpse) served batch 1
  at 0.79-0.85 of the speed (README, "Speed"). Bit-identical to building
  them. Builtin TFLite ops, compiles under XLA. In TensorFlow as fast as
  gather on 60x60 canvases and faster on larger ones (1.5x cluttered100
  updates), with or without XLA: the default. In TFLite at batch 1
  gather is faster (README, "Speed").
- "gather": zero-pad once, then two `tf.gather`s (rows, then columns) per
  scale, then the area resize.
- "extract_glimpse": `tf.image.extract_glimpse(..., noise="zero")`, the
  reference, then the area resize. No XLA kernel, not convertible to TFLite.
"gather" and "extract_glimpse" give identical outputs; "matmul" sums in
another order and agrees with them to float rounding (|diff| < 1e-6 on
[0, 1] images, exact on integer-valued ones).
"""

from __future__ import annotations

import fractions
import functools

import keras
import tensorflow as tf

from ram_tf.config import BACKENDS


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


def selection_matrices(corners, length, size, factor):
    """0/1 block-mean selection of one scale along one image axis.

    Args:
      corners: int32 [B], first pixel of each side size * factor window.
      length: H (or W), the image side along this axis.
      size: g, patch side; factor: f, pixels averaged per patch pixel.

    Returns:
      float32 [B, size, length]: entry (b, i, r) is 1/f when pixel r lies in
      block i of window b, [corner + i f, corner + (i + 1) f), else 0.
      Pixels outside [0, length) have no column, which is the zero fill.
    """
    offset = (tf.range(length)[None, None, :]
              - tf.range(0, size * factor, factor)[None, :, None]
              - corners[:, None, None])  # [B, g, length]
    inside = tf.logical_and(offset >= 0, offset < factor)
    return tf.cast(inside, tf.float32) / factor


def table_resolution(sides) -> int:
    """Index steps per pixel of `location_index`: 1 when every side is even
    (a corner trunc(c - S / 2) then changes only at integer c), 2 when one
    is odd (it also changes at c + 1/2)."""
    return 1 if all(s % 2 == 0 for s in sides) else 2


def location_index(locations, length, resolution):
    """Index of each location's row in `scale_table`.

    With c = (l + 1) length / 2 (computed as `window_corner` does) and
    u = resolution * c, the index floor(u) + ceil(u) is 2u on the grid
    points u = 0, 1, ... and 2 floor(u) + 1 between them: every window
    corner trunc(c - S / 2) is constant on each such piece, so one index
    fixes the windows of all scales at once.

    Args:
      locations: float32 [...] in [-1, 1] (the sensor clips them), one
        axis (y or x).
    Returns:
      int32 [...] in [0, 2 resolution length].
    """
    half = float(length) / 2.0
    u = (locations * float(length) / 2.0 + half) * float(resolution)
    return tf.cast(tf.floor(u) + tf.math.ceil(u), tf.int32)


@functools.lru_cache(maxsize=None)
def scale_table(length: int, size: int, num_scales: int,
                dtype: str = "float32") -> tf.Tensor:
    """The stacked selection matrices of every scale, for every index.

    Row j of the table is, for the locations with `location_index` j, the
    concatenation over scales k of `selection_matrices(corner_k, length,
    size, 2^k)`, corner_k = trunc(c - S_k / 2) computed exactly (in
    fractions) at a c of that piece.

    Returns:
      `dtype` [2 r length + 1, k size, length] (r = `table_resolution`):
      1.0 MB on 60x60 and 2.9 MB on 100x100 with g = 12, k = 3 in float32
      (bfloat16 holds 0, 1 and 1/2^k exactly, in half the bytes). One eager
      tensor per (length, size, num_scales): a traced function captures it
      once, however many glimpses read it (a constant per read would store
      it in the SavedModel once per glimpse and chain).
    """
    if dtype != "float32":  # the same 0, 1 and 1/2^k values, cast
        with tf.init_scope():
            return tf.cast(scale_table(length, size, num_scales), dtype)
    sides = [size * 2**k for k in range(num_scales)]
    r = table_resolution(sides)
    rows = 2 * r * length + 1
    mats = []
    for k, side in enumerate(sides):
        # Index j <-> u = j / 2 (a grid point, or the middle of a piece),
        # c = u / r; int() of a Fraction truncates toward zero.
        corners = [int(fractions.Fraction(j, 2 * r)
                       - fractions.Fraction(side, 2)) for j in range(rows)]
        with tf.init_scope():  # eager even while a tf.function is traced
            mats.append(selection_matrices(tf.constant(corners, tf.int32),
                                           length, size, 2**k))
    with tf.init_scope():
        return tf.concat(mats, axis=1)


def lookup(locations, shape, size, num_scales, dtype="float32"):
    """Row and column selection matrices of all scales for [B, 2] locations.

    Returns:
      (rows `dtype` [B, k g, H], cols `dtype` [B, k g, W]); one gather for
      both when H == W.
    """
    h, w = shape
    r = table_resolution([size * 2**k for k in range(num_scales)])
    if h == w:
        both = tf.gather(scale_table(h, size, num_scales, dtype),
                         location_index(locations, h, r))  # [B, 2, k g, H]
        return both[:, 0], both[:, 1]
    return (tf.gather(scale_table(h, size, num_scales, dtype),
                      location_index(locations[:, 0], h, r)),
            tf.gather(scale_table(w, size, num_scales, dtype),
                      location_index(locations[:, 1], w, r)))


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
        3 * 2^-8, tested); the tables are exact and the output float32.
        1.19-1.22x the images/s of a bfloat16 translated60 export whose
        sensor is float32, on a CPU with AVX512-BF16 (README, "Speed").

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
        # means): XLA fuses them into a few loops (README, "Speed").
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
