"""The MNIST-derived tasks as `tf.data` pipelines.

`load(task, split)` returns a `tf.data.Dataset` of dicts with keys `image`
(float32 [H, W, C] in [0, 1]), `label` (int32), `location` (float32 [2], the
target's centre as (y, x) in [-1, 1]) and `bbox` (float32 [4], normalised
(ymin, xmin, ymax, xmax)).

- train: the 55,000 training digits, reshuffled every pass and placed afresh
  for every batch inside the pipeline (`canvas.compose`, stateless seeds
  derived from (seed, step)), so the stream is a pure function of the seed
  and a run resumed at step s sees exactly the batches it would have seen.
- validation / test: the other 5,000 training digits / the 10,000 test
  digits, placed once with the task's fixed seed in chunks of 1,000 and
  materialised (cached as uint8 .npz under the cache dir, keyed by the
  placement settings and, for a folder other than the original digits, by
  its files). Every run on every machine scores the same canvases;
  `fingerprint` gives their sha256.
"""

from __future__ import annotations

import hashlib
import numbers
import os
from typing import Any

import numpy as np
import tensorflow as tf

from ram_tf import canvas
from ram_tf import config as config_lib
from ram_tf import mnist

ENV_CACHE_DIR = "RAM_TF_CACHE_DIR"
_CHUNK = 1000
_SPLIT_TAG = {"train": 0, "validation": 1, "test": 2}


def default_cache_dir() -> str:
    return os.environ.get(ENV_CACHE_DIR) or os.path.join(
        os.path.expanduser("~"), ".cache", "ram_tf"
    )


def task_data_config(task: str, **overrides: Any) -> config_lib.DataConfig:
    """The `DataConfig` of a named task, with field overrides."""
    cfg = config_lib.resolve(
        "ram", task, {f"data.{k}": v for k, v in overrides.items()}
    )
    return cfg.data


def _compose_kwargs(data: config_lib.DataConfig) -> dict[str, Any]:
    return dict(
        canvas_size=data.canvas_size,
        min_distractors=data.min_distractors,
        max_distractors=data.max_distractors,
        distractor_size=data.distractor_size,
        color=data.color,
    )


def _seed(*parts: int) -> tf.Tensor:
    """A stateless seed [2] from integers, mixed by fold_in."""
    seed = tf.constant([parts[0], 0], tf.int64)
    for p in parts[1:]:
        seed = tf.random.experimental.stateless_fold_in(seed, p)
    return seed


def train_dataset(
    data: config_lib.DataConfig,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    mnist_dir: str | None = None,
    data_dir: str | None = None,
    label_fraction: float = 1.0,
    label_mask: str = "fixed",
) -> tf.data.Dataset:
    """Endless batches of fresh training canvases, from update `start_step`.

    Batch s holds the digits s*B .. s*B + B - 1 of the stream made by
    concatenating seeded permutations of the 55,000 digits (pass e shuffled
    with seed (seed, e)); its placements are drawn with seed (seed, s).

    Each example also carries `labelled` (float32 1/0): whether L-DRAM may
    use its location. "fixed": a seeded subset of `label_fraction` of the
    55,000 digits, the same in every pass and after a resume; "per-batch":
    redrawn for every batch.
    """
    images, labels = mnist.load_digits("train", mnist_dir, data_dir)
    pool = tf.constant(images)
    label_t = tf.constant(labels)
    n = len(labels)
    first = start_step * batch_size
    shuffle_seed = _seed(seed, _SPLIT_TAG["train"], 0)

    def one_pass(epoch):
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int32),
            tf.random.experimental.stateless_fold_in(shuffle_seed, epoch),
        )
        return tf.data.Dataset.from_tensor_slices(perm)

    place_seed = _seed(seed, _SPLIT_TAG["train"], 1)
    kwargs = _compose_kwargs(data)
    subset = tf.random.stateless_uniform(
        [n], _seed(seed, _SPLIT_TAG["train"], 2)) < label_fraction
    mask_seed = _seed(seed, _SPLIT_TAG["train"], 3)

    def place(step, index):
        step_seed = tf.random.experimental.stateless_fold_in(place_seed, step)
        out = canvas.compose(
            tf.gather(pool, index), tf.gather(label_t, index), index, pool,
            step_seed, **kwargs
        )
        if label_mask == "per-batch":
            labelled = tf.random.stateless_uniform(
                tf.shape(index),
                tf.random.experimental.stateless_fold_in(mask_seed, step),
            ) < label_fraction
        else:
            labelled = tf.gather(subset, index)
        out["labelled"] = tf.cast(labelled, tf.float32)
        return out

    ds = (
        tf.data.Dataset.range(first // n, 2**62)
        .flat_map(one_pass)
        .skip(first % n)
        .batch(batch_size, drop_remainder=True)
        .enumerate(start=start_step)
        .map(place, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    )
    return ds


def _fixed_arrays(data, split, mnist_dir, data_dir) -> dict[str, np.ndarray]:
    """Place a held-out split once, in chunks of 1,000 with fixed seeds.

    The random choices of a chunk are drawn at once (they define the
    canvases); rendering goes in slices to bound memory on big canvases.
    """
    images, labels = mnist.load_digits(split, mnist_dir, data_dir)
    pool = tf.constant(images)
    kw = _compose_kwargs(data)
    render_kw = {k: kw[k] for k in ("canvas_size", "distractor_size",
                                    "color")}
    per_slice = max(1, 4_000_000 // (data.canvas_size**2 * data.channels))
    parts = []
    for i, start in enumerate(range(0, len(labels), _CHUNK)):
        index = tf.range(start, min(start + _CHUNK, len(labels)))
        choices = canvas.draw(_seed(data.seed, _SPLIT_TAG[split], i), index,
                              len(labels), **kw)
        digits = tf.gather(pool, index)
        image = np.concatenate([
            _to_uint8(canvas.render(
                digits[j:j + per_slice], pool,
                {k: v[j:j + per_slice] for k, v in choices.items()},
                **render_kw))
            for j in range(0, len(index), per_slice)
        ])
        truth = canvas.ground_truth(digits, tf.gather(labels, index),
                                    choices, data.canvas_size)
        parts.append({"image": image,
                      **{k: v.numpy() for k, v in truth.items()}})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _to_uint8(image: tf.Tensor) -> np.ndarray:
    # Canvases are integers / 255 by construction: * 255 is exact.
    return np.round(image.numpy() * 255).astype(np.uint8)


def fixed_arrays(
    data: config_lib.DataConfig,
    split: str,
    mnist_dir: str | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
) -> dict[str, np.ndarray]:
    """Validation or test canvases as arrays (image uint8), cached on disk."""
    if split not in ("validation", "test"):
        raise ValueError(f"fixed canvases exist for validation and test, "
                         f"not {split!r}")
    parts = sorted(_compose_kwargs(data).items()) + [data.seed]
    tag = mnist.source_tag(mnist_dir)  # "" for the original digits
    key = hashlib.sha256(
        repr(parts + [tag] if tag else parts).encode()
    ).hexdigest()[:16]
    cache = os.path.join(cache_dir or default_cache_dir(),
                         f"{split}-{key}.npz")
    if os.path.exists(cache):
        try:
            with np.load(cache) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache is rebuilt below
    arrays = _fixed_arrays(data, split, mnist_dir, data_dir)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    tmp = f"{cache}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)  # atomic: readers never see half a file
    return arrays


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the canvases and labels of a fixed split."""
    h = hashlib.sha256()
    for k in ("image", "label", "location", "bbox"):
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def _to_float(example):
    example = dict(example)
    example["image"] = tf.cast(example["image"], tf.float32) / 255.0
    return example


def fixed_dataset(arrays: dict[str, np.ndarray]) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(arrays).map(_to_float)


def load(
    task: str,
    split: str,
    *,
    batch_size: int | None = None,
    seed: int | None = None,
    mnist_dir: str | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    **data_overrides: Any,
) -> tf.data.Dataset:
    """A task's split as a `tf.data.Dataset` of example dicts.

    Args:
      task: a name from `ram_tf.config.TASKS` (e.g. "translated60").
      split: "train" (endless, fresh placements), "validation" or "test".
      batch_size: batch the examples; None gives single examples.
      seed: the seed of the split's placements: the training stream's
        (default 0), or the validation/test canvases' (default the task's
        fixed `DataConfig.seed`, the set every run is scored on).
      mnist_dir, data_dir: see `ram_tf.mnist.load_digits`.
      cache_dir: where fixed canvases are cached.
      **data_overrides: DataConfig fields, e.g. canvas_size=80.
    """
    for name, value, least in (("batch_size", batch_size, 1),
                               ("seed", seed, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, numbers.Integral) or value < least):
            raise ValueError(f"{name} must be an integer of at least "
                             f"{least}, or None; got {value!r}")
    if seed is not None and split != "train":
        data_overrides["seed"] = seed  # the held-out canvases' DataConfig.seed
    data = task_data_config(task, **data_overrides)
    if split == "train":
        ds = train_dataset(data, batch_size or _CHUNK, seed or 0,
                           mnist_dir=mnist_dir, data_dir=data_dir)
        return ds if batch_size else ds.unbatch()
    if split not in ("validation", "test"):
        raise ValueError(
            f"unknown split {split!r}; allowed: train, validation, test"
        )
    ds = fixed_dataset(fixed_arrays(data, split, mnist_dir, data_dir,
                                    cache_dir))
    return ds.batch(batch_size) if batch_size else ds
