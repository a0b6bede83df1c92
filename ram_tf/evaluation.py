"""Test error of a trained model in the two modes of the papers.

- deterministic: l_t = mu_t (the policy mean), one rollout per image;
- Monte Carlo: M stochastic rollouts per image, class probabilities averaged
  (as PrincipalComponent/ram reports, M = 10).

The Monte Carlo draws use a fixed seed (the model's generator is set to it
for the evaluation and put back afterwards), so re-scoring a run gives the
same number.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ram_tf import inference


def predict_proba(model, images, mc_samples: int = 0) -> tf.Tensor:
    """Class probabilities [B, K]; mc_samples=0 means deterministic."""
    if mc_samples <= 0:
        return tf.nn.softmax(model(images)["logits"])
    out = model(images, sample=True, repeats=mc_samples)
    probs = tf.nn.softmax(out["logits"])
    return tf.reduce_mean(
        tf.reshape(probs, [-1, mc_samples, probs.shape[-1]]), axis=1
    )


def evaluate(model, arrays: dict[str, np.ndarray], mc_samples: int = 10,
             batch_size: int = 500, seed: int = 0) -> dict[str, float]:
    """Error (%) of `model` on fixed canvases in both modes.

    Args:
      model: a `RecurrentAttentionModel`.
      arrays: `ram_tf.datasets.fixed_arrays(...)`: uint8 canvases, or
        float images in [0, 1] (`ram_tf.inference.canvas_divisor`).
      mc_samples: M of the Monte Carlo mode.
      batch_size: images per forward pass.
      seed: seed of the Monte Carlo draws.

    Returns:
      dict: error_deterministic, error_mc (percent), mc_samples, images.
    """
    divisor = inference.canvas_divisor(arrays)
    generator = getattr(model, "seed_generator", None)
    if generator is None:
        mc_samples = 0  # a deterministic baseline: both modes coincide
    deterministic = tf.function(lambda x: predict_proba(model, x, 0))
    monte_carlo = tf.function(lambda x: predict_proba(model, x, mc_samples))
    saved = None
    if generator is not None:
        saved = generator.state.numpy()
        generator.state.assign(np.array([seed, 0], dtype=saved.dtype))
    wrong_det = wrong_mc = 0
    labels = arrays["label"]
    try:
        for start in range(0, len(labels), batch_size):
            x = tf.constant(arrays["image"][start:start + batch_size])
            x = tf.cast(x, tf.float32) / divisor
            y = labels[start:start + batch_size]
            wrong_det += int(np.sum(
                np.argmax(deterministic(x).numpy(), -1) != y))
            wrong_mc += int(np.sum(np.argmax(monte_carlo(x).numpy(), -1) != y))
    finally:
        if saved is not None:
            generator.state.assign(saved)
    n = len(labels)
    return {
        "error_deterministic": 100.0 * wrong_det / n,
        "error_mc": 100.0 * wrong_mc / n,
        "mc_samples": mc_samples,
        "images": n,
    }
