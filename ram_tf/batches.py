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


def as_labels(labels):
    """Integer class labels [B] (a trailing axis of 1 is dropped)."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape.rank != 1:
        raise ValueError(
            "labels must be integer class indices of shape [B] (or [B, 1]); "
            f"one-hot labels need argmax first. Received shape {labels.shape}")
    return tf.cast(labels, tf.int32)


def as_images(images):
    """float32 [B, H, W, C] (a batch dict gives its "image")."""
    if isinstance(images, dict):
        images = images["image"]
    images = tf.convert_to_tensor(images)
    return images if images.dtype == tf.float32 else tf.cast(images,
                                                             tf.float32)
