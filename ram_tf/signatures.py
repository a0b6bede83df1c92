"""The SavedModel signatures of an exported attention model, plain or
XLA-compiled.

  serving_default(images float32 [batch, H, W, C] in [0, 1]) ->
    probabilities float32 [batch, 10], classes int64 [batch],
    locations float32 [batch, T, 2]  (glimpse centres used, (y, x))
  deterministic: the policy mean, so a request always gets the same answer.
  monte_carlo(images, seed int32 [2]) -> the same keys, probabilities
    averaged over M stochastic rollouts (locations of the first rollout).

Both refuse, as errors, images of another shape and NaN or Inf pixels
(`checked_images`).

With `xla`, the rollouts of each signature are one XLA cluster
(`tf.function(jit_compile=True)`): a RAM forward pass is a few MFLOPs
spread over hundreds of small ops, and XLA fuses them into a few kernels,
which at batch 1 is most of the time a call takes (docs/performance.md,
"Serving"). The input checks and the Monte Carlo noise stay outside the
cluster: XLA compiles `Assert` away, and its normals differ from
TensorFlow's, so both kinds of export answer a seed alike. TF Serving runs
such a SavedModel when started with `--xla_cpu_compilation_enabled=true`;
`tf.saved_model.load` runs it as it is.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _outputs(locations, probabilities):
    return {
        "probabilities": probabilities,
        "classes": tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        "locations": locations,
    }


def checked_images(images, hwc):
    """`images` with two checked ops in front of the model: the declared
    shape [batch, H, W, C] (`EnsureShape`; a SavedModel signature alone
    lets a request of another shape with as many pixels through, reshaped)
    and finite values (an `Assert`; a NaN pixel would answer class 0). TF
    Serving returns either failure as an error naming it (`is_finite` +
    `reduce_all` is cheaper than `CheckNumerics`, which also scans). TFLite
    files are converted without them: `load_exported` checks in Python
    there."""
    images = tf.ensure_shape(images, [None, *hwc])
    finite = tf.debugging.Assert(
        tf.reduce_all(tf.math.is_finite(images)),
        ["images must be finite float32 pixels in [0, 1] (white digit on "
         "black); got NaN or Inf"])
    with tf.control_dependencies([finite]):
        return tf.identity(images)


def endpoints(model, mc_samples: int, checked: bool = True,
              xla: bool = False):
    """(serve, monte_carlo): the two signature functions of `model` (a
    serving copy, `ram_tf.export.serving_model`)."""

    def deterministic(images):
        out = model.rollouts(images)
        return out["locations"], tf.nn.softmax(out["logits"])

    def stochastic(images, noise):
        out = model.rollouts(images, sample=True, repeats=mc_samples,
                             noise=noise)
        probs = tf.nn.softmax(out["logits"])
        probs = tf.reduce_mean(
            tf.reshape(probs, [-1, mc_samples, probs.shape[-1]]), axis=1)
        return out["locations"][::mc_samples], probs

    if xla:
        deterministic = tf.function(deterministic, jit_compile=True)
        stochastic = tf.function(stochastic, jit_compile=True)

    def guard(images):
        return checked_images(images, model.input_hwc) if checked else images

    def serve(images):
        return _outputs(*deterministic(guard(images)))

    def monte_carlo(images, seed):
        images = guard(images)
        # The whole request's policy noise from the seed, then cut with the
        # batch: the answer depends on the seed, not on `model.chains`.
        noise = tf.random.stateless_normal(
            [tf.shape(images)[0] * mc_samples, model.num_actions, 2], seed)
        return _outputs(*stochastic(images, noise))

    return serve, monte_carlo


def image_spec(hwc, batch=None):
    return tf.TensorSpec([batch, *hwc], tf.float32, name="images")


def write_saved_model(model, path: str, mc_samples: int = 10,
                      checked: bool = True, xla: bool = False) -> None:
    """Write the SavedModel of `model` (a serving copy) to `path`; with
    `checked`, its signatures refuse inputs of another shape and non-finite
    pixels (`checked_images`); with `xla`, their rollouts are XLA-compiled
    (module docstring)."""
    serve, monte_carlo = endpoints(model, mc_samples, checked, xla)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve,
                         input_signature=[image_spec(model.input_hwc)])
    archive.add_endpoint(
        "monte_carlo", monte_carlo,
        input_signature=[image_spec(model.input_hwc),
                         tf.TensorSpec([2], tf.int32, name="seed")])
    archive.write_out(path, verbose=False)
