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


def draw(
    seed: tf.Tensor,
    index: tf.Tensor,
    pool_size,
    canvas_size: int,
    min_distractors: int = 0,
    max_distractors: int = 0,
    distractor_size: int = 8,
    color: bool = False,
) -> dict[str, tf.Tensor]:
    """All random choices of a batch of canvases (stateless in `seed`).

    Returns int32 tensors: offset [B, 2] (the digit's top-left corner) and,
    with clutter, source [B, D] (pool index of each distractor's digit),
    corner [B, D, 2] (where the piece is cut), where [B, D, 2] (where it
    is pasted), present [B, D] (1 for the first count ~ U{min..max}), and
    with colour, channel [B, 1 + D].
    """
    n, d, p = canvas_size, max_distractors, distractor_size
    batch = tf.shape(index)[0]
    seeds = tf.random.experimental.stateless_split(seed, 8)
    out = {"offset": _uniform_int(seeds[0], [batch, 2], 0, n - DIGIT)}
    if d > 0:
        # Another digit of the same split: skip 1..P-1 ahead of the target.
        skip = _uniform_int(seeds[1], [batch, d], 1, pool_size - 1)
        out["source"] = (index[:, None] + skip) % pool_size
        out["corner"] = _uniform_int(seeds[2], [batch, d, 2], 0, DIGIT - p)
        out["where"] = _uniform_int(seeds[3], [batch, d, 2], 0, n - p)
        count = _uniform_int(seeds[4], [batch, 1], min_distractors, d)
        out["present"] = tf.cast(tf.range(d)[None, :] < count, tf.int32)
    if color:
        out["channel"] = _uniform_int(seeds[5], [batch, 1 + d], 0, 2)
    return out


def render(
    digits: tf.Tensor,
    pool: tf.Tensor,
    choices: dict[str, tf.Tensor],
    canvas_size: int,
    distractor_size: int = 8,
    color: bool = False,
) -> tf.Tensor:
    """Canvases float32 [B, N, N, C] in [0, 1] from `draw`'s choices.

    The sum over objects happens inside the einsum contraction, so memory
    stays O(B * D * N * p) rather than O(B * D * N^2).
    """
    n = canvas_size
    digits = tf.cast(digits, tf.float32)
    objects = [(digits[:, None], choices["offset"][:, None])]
    if "source" in choices:
        source = tf.cast(tf.gather(pool, choices["source"]), tf.float32)
        pieces = _crop(source, choices["corner"], distractor_size)
        present = tf.cast(choices["present"], tf.float32)
        objects.append((pieces * present[..., None, None], choices["where"]))
    channels = [None]
    if color:
        onehot = tf.one_hot(choices["channel"], 3)  # [B, 1 + D, 3]
        channels = [onehot[..., k] for k in range(3)]
    planes = []
    for k, weight in enumerate(channels):
        plane = 0.0
        first = 0
        for patches, where in objects:
            count = patches.shape[1]
            if weight is not None:
                w = weight[:, first:first + count]
                patches = patches * w[..., None, None]
            first += count
            plane += _shift_sum(patches, where, n)
        planes.append(plane)
    image = tf.stack(planes, axis=-1)
    return tf.minimum(image, 255.0) / 255.0


def _shift_sum(patches, offsets, size):
    """sum_d of patches [B, D, h, w] pasted at offsets [B, D, 2]: [B, N, N]."""
    h, w = patches.shape[-2], patches.shape[-1]
    rows = tf.one_hot(offsets[..., 0:1] + tf.range(h), size)  # [B, D, h, N]
    cols = tf.one_hot(offsets[..., 1:2] + tf.range(w), size)  # [B, D, w, N]
    left = tf.einsum("bdri,bdrc->bdic", rows, patches)  # [B, D, N, w]
    return tf.einsum("bdic,bdcj->bij", left, cols)


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
    """Place a batch of digits on canvases with clutter (`draw` + `render`).

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
    choices = draw(seed, index, tf.shape(pool)[0], canvas_size,
                   min_distractors, max_distractors, distractor_size, color)
    image = render(digits, pool, choices, canvas_size, distractor_size, color)
    return {"image": image, **ground_truth(digits, labels, choices,
                                           canvas_size)}


def ground_truth(digits, labels, choices, canvas_size):
    """label, location (centre of the 28x28 field, (y, x) in [-1, 1]), bbox."""
    n = canvas_size
    offset = tf.cast(choices["offset"], tf.float32)
    return {
        "label": tf.cast(labels, tf.int32),
        "location": (offset + DIGIT / 2) / (n / 2) - 1.0,
        "bbox": _ink_box(tf.cast(digits, tf.float32), offset, n),
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
