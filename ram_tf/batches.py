"""The batches of `fit` / `evaluate`: Keras-style tuples or the dicts of
`ram_tf.datasets`, unpacked into one form for `train_step` / `test_step`.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def unpack_batch(data):
    """A batch of `fit` / `evaluate` as (features dict, sample_weight).

    Accepted forms:
      - Keras's `(x, y)` and `(x, y, sample_weight)` (`fit(x, y)` on NumPy
        arrays, a `tf.data.Dataset` of tuples): x images [B, H, W, C] or a
        dict with "image"; y integer labels [B] (or [B, 1]) or a dict with
        "label"; entries of dicts (L-DRAM's "location" [B, 2], "labelled"
        [B]) are merged;
      - the dicts of `ram_tf.datasets`: {"image", "label", ...}, with an
        optional "sample_weight" [B].

    Returns:
      ({"image", "label", ...}, float32 sample_weight [B] or None).
    """
    if isinstance(data, dict):
        batch, weight = dict(data), data.get("sample_weight")
    else:
        x, y, weight = keras.utils.unpack_x_y_sample_weight(data)
        batch = dict(x) if isinstance(x, dict) else {"image": x}
        if isinstance(y, dict):
            batch.update(y)
        elif y is not None:
            batch["label"] = y
    missing = [key for key in ("image", "label") if key not in batch]
    if missing:
        raise ValueError(
            f"A training or test batch needs images and integer labels, "
            f"e.g. fit(x, y) or dicts with 'image' and 'label'. Missing "
            f"{missing}; received a batch with {sorted(batch)}")
    if weight is not None:
        weight = tf.cast(weight, tf.float32)
        if weight.shape.rank == 2 and weight.shape[1] == 1:
            weight = weight[:, 0]
        if weight.shape.rank != 1:
            raise ValueError("sample_weight must hold one weight per image, "
                             f"shape [B]. Received shape {weight.shape}")
    return batch, weight


def as_labels(labels, num_classes=None):
    """Integer class labels [B] (a trailing axis of 1 is dropped); with
    `num_classes` K, checked to be whole numbers in 0..K-1 when run."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape.rank != 1:
        raise ValueError(
            "labels must be integer class indices of shape [B] (or [B, 1]); "
            + ("one-hot labels need argmax first. " if labels.shape.rank
               else "a tf.data.Dataset must be batched (dataset.batch(n)). ")
            + f"Received shape {labels.shape}")
    if not (labels.dtype.is_integer or labels.dtype.is_floating):
        raise ValueError("labels must be integer class indices; received "
                         f"dtype {labels.dtype.name}")
    if num_classes is None:
        return tf.cast(labels, tf.int32)
    # Out of range, a label is an error on CPU and a NaN loss elsewhere;
    # a float label with a fraction would be truncated.
    ints = tf.cast(labels, tf.int32)
    in_range = (f"labels must be class indices in 0..{num_classes - 1} "
                f"(num_classes={num_classes})")
    checks = [tf.debugging.assert_less(ints, num_classes, message=in_range),
              tf.debugging.assert_non_negative(ints, message=in_range)]
    if labels.dtype.is_floating:
        checks.append(tf.debugging.assert_equal(
            tf.cast(ints, labels.dtype), labels,
            message="labels must be whole class indices"))
    with tf.control_dependencies(checks):
        return tf.identity(ints)


def as_images(images):
    """float32 [B, H, W, C] (a batch dict gives its "image")."""
    if isinstance(images, dict):
        images = images["image"]
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        # A cast alone would read 0-255 pixels as 255x too bright.
        raise ValueError(
            "images must be floats in [0, 1] (white digits on black); "
            f"received dtype {images.dtype.name}: divide 0-255 images by "
            "255")
    return images if images.dtype == tf.float32 else tf.cast(images,
                                                             tf.float32)
