"""The matmul sensor's selection tables (`ram_tf.glimpse`, backend "matmul").

For image X [H, W] and scale k the sensor computes rho_k = R_k X C_k^T with
0/1 block-mean selection matrices (`selection_matrices`): R_k[i, r] = 1/f
if c_y + i f <= r < c_y + (i+1) f, f = 2^k, c the window corner
trunc(c - S_k / 2) of `ram_tf.glimpse.window_corner`; C_k likewise for
columns. The rows of every scale are stacked into one [k g, H] matrix.

The stacked matrices are looked up, not built: every corner of every scale
is fixed by one index, floor(u) + ceil(u) with u = c (2c for an odd g), so
one table holds the stacked matrices of every index a location in [-1, 1]
can give (`scale_table`, 1.0 MB on 60x60, 2.9 MB on 100x100) and a glimpse
costs one gather for rows and columns together (`lookup`). Bit-identical
to building them, and cheaper than building them or than one table per
scale and axis (docs/performance.md, "Design decisions").
"""

from __future__ import annotations

import fractions
import functools

import tensorflow as tf


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
