"""Placing digits and distractors on canvases, batched, in TensorFlow.

One function, `compose`, turns a batch of 28x28 digits into the canvases of
the translated and cluttered tasks (Mnih et al. 2014, Sec. 4.1):

  canvas = clip(digit shifted to (oy, ox)
                + sum_d piece_d of another digit shifted to (py_d, px_d), 255)

Shifts are products with one-hot matrices, canvas_b = R_b^T @ digit_b @ C_b
with R_b[r, i] = [i == r + oy_b], so the whole batch is three einsums and no
Python loop. Pixel values stay integers (0..255) in float32 until the final
division by 255, so every sum is exact: the same seed gives byte-identical
canvases on every machine, whatever the order of additions.

Randomness is stateless (`tf.random.stateless_*` with an explicit seed), so a
batch is a pure function of (digits, seed): training draws a fresh seed per
step, validation and test use fixed ones.

Ground truth per canvas: the label, the centre of the 28x28 digit field as
(y, x) in [-1, 1] (the glimpse sensor's convention: pixel coordinate
c = (loc + 1) * N / 2), and the tight box of the digit's ink as normalised
(ymin, xmin, ymax, xmax) in [0, 1].
"""

from __future__ import annotations

import tensorflow as tf

DIGIT = 28


def _shift(patches: tf.Tensor, offsets: tf.Tensor, size: int) -> tf.Tensor:
    """Paste patches [..., h, w] at integer offsets [..., 2] on size x size."""
    h, w = patches.shape[-2], patches.shape[-1]
    rows = tf.one_hot(offsets[..., 0:1] + tf.range(h), size)  # [..., h, N]
    cols = tf.one_hot(offsets[..., 1:2] + tf.range(w), size)  # [..., w, N]
    return tf.einsum("...ri,...rc,...cj->...ij", rows, patches, cols)


def _crop(images: tf.Tensor, corners: tf.Tensor, side: int) -> tf.Tensor:
    """Cut side x side pieces at corners [..., 2] from images [..., 28, 28]."""
    rows = tf.one_hot(corners[..., 0:1] + tf.range(side), DIGIT)
    cols = tf.one_hot(corners[..., 1:2] + tf.range(side), DIGIT)
    return tf.einsum("...pr,...rc,...qc->...pq", rows, images, cols)


def _uniform_int(seed, shape, low, high):
    """Integers uniform in [low, high] (inclusive), stateless."""
    return tf.random.stateless_uniform(
        shape, seed, minval=low, maxval=high + 1, dtype=tf.int32
    )


def compose(
    digits: tf.Tensor,
    labels: tf.Tensor,
    index: tf.Tensor,
    pool: tf.Tensor,
    seed: tf.Tensor,
    canvas_size: int,
    min_distractors: int = 0,
    max_distractors: int = 0,
    distractor_size: int = 8,
    color: bool = False,
) -> dict[str, tf.Tensor]:
    """Place a batch of digits on canvases with clutter.

    Args:
      digits: uint8 [B, 28, 28], the target digits.
      labels: int [B].
      index: int32 [B], each target's index in `pool` (so that distractors
        come from *other* digits).
      pool: uint8 [P, 28, 28], the split's digits, source of distractors.
      seed: int32 [2], the stateless seed of this batch.
      canvas_size: N.
      min_distractors, max_distractors: D ~ U{min..max} per canvas.
      distractor_size: side of each distractor piece.
      color: write each object into one random channel of an RGB canvas.

    Returns:
      dict with image float32 [B, N, N, C] in [0, 1], label int32 [B],
      location float32 [B, 2] and bbox float32 [B, 4].
    """
    n = canvas_size
    batch = tf.shape(digits)[0]
    seeds = tf.random.experimental.stateless_split(seed, 8)
    digits = tf.cast(digits, tf.float32)

    offset = _uniform_int(seeds[0], [batch, 2], 0, n - DIGIT)
    layers = _shift(digits, offset, n)[:, None]  # [B, 1, N, N]

    if max_distractors > 0:
        d, p = max_distractors, distractor_size
        pool_size = tf.shape(pool)[0]
        # Another digit of the same split: skip 1..P-1 ahead of the target.
        skip = _uniform_int(seeds[1], [batch, d], 1, pool_size - 1)
        source = tf.gather(pool, (index[:, None] + skip) % pool_size)
        corner = _uniform_int(seeds[2], [batch, d, 2], 0, DIGIT - p)
        pieces = _crop(tf.cast(source, tf.float32), corner, p)
        where = _uniform_int(seeds[3], [batch, d, 2], 0, n - p)
        count = _uniform_int(seeds[4], [batch, 1], min_distractors,
                             max_distractors)
        present = tf.cast(tf.range(d)[None, :] < count, tf.float32)
        clutter = _shift(pieces, where, n) * present[:, :, None, None]
        layers = tf.concat([layers, clutter], axis=1)  # [B, 1 + D, N, N]

    if color:
        channel = _uniform_int(seeds[5], tf.shape(layers)[:2], 0, 2)
        image = tf.einsum(
            "bkij,bkc->bijc", layers, tf.one_hot(channel, 3)
        )
    else:
        image = tf.reduce_sum(layers, axis=1)[..., None]
    image = tf.minimum(image, 255.0) / 255.0

    offset_f = tf.cast(offset, tf.float32)
    location = (offset_f + DIGIT / 2) / (n / 2) - 1.0
    return {
        "image": image,
        "label": tf.cast(labels, tf.int32),
        "location": location,
        "bbox": _ink_box(digits, offset_f, n),
    }


def _ink_box(digits: tf.Tensor, offset: tf.Tensor, n: int) -> tf.Tensor:
    """Tight box of nonzero pixels, normalised (ymin, xmin, ymax, xmax)."""
    ink = digits > 0
    coord = tf.range(DIGIT, dtype=tf.float32)

    def extent(any_ink):  # [B, 28] bool -> first and one-past-last index
        big = tf.where(any_ink, coord, 1e9)
        small = tf.where(any_ink, coord, -1e9)
        return tf.reduce_min(big, 1), tf.reduce_max(small, 1) + 1

    y0, y1 = extent(tf.reduce_any(ink, axis=2))
    x0, x1 = extent(tf.reduce_any(ink, axis=1))
    box = tf.stack(
        [y0 + offset[:, 0], x0 + offset[:, 1],
         y1 + offset[:, 0], x1 + offset[:, 1]], axis=1
    )
    return box / n
