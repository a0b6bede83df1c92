"""ONNX export of the deterministic float32 policy, checked in ONNX Runtime.

`onnx_bytes(saved_model_dir, reference, images)` converts a serving
SavedModel's `serving_default` (`ram_tf.export.write_saved_model`, float32,
the matmul sensor, unchecked inputs) with tf2onnx, then proves the file
before anyone gets it:

1. every node is a standard ONNX op (tf2onnx logs an op it cannot convert
   and carries on, leaving a node onnxruntime refuses);
2. `onnx.checker` accepts the model;
3. onnxruntime loads it and, on real test images, answers the classes of
   `reference` (the Keras serving model) exactly and its probabilities
   within `PROBABILITY_TOLERANCE`.

Any failure is an `ExportError`; no file is written by this module. What
does not convert is refused earlier by `ram_tf.export`: bfloat16 layers,
the `extract_glimpse` sensor and the Monte Carlo signature (stateless
random ops). Needs the `onnx` extra: `pip install "ram-tf[onnx]"`.
"""

from __future__ import annotations

import logging

import numpy as np

from ram_tf.manifest import ExportError

# The opset: ONNX Runtime 1.17 and later run it.
OPSET = 17
# |p_onnx - p_keras| on any class of any test image. The two compute the
# same float32 graph; reordered sums differ by a few units of 1e-7.
PROBABILITY_TOLERANCE = 1e-5
# ONNX's own domains: anything else is a node tf2onnx left unconverted.
_STANDARD_DOMAINS = ("", "ai.onnx")


class OnnxExportError(ExportError):
    """A conversion that failed or gave a model that answers otherwise."""


def _converter():
    try:
        import onnx
        import onnxruntime
        import tf2onnx
        from tf2onnx import tf_loader
    except ImportError as e:
        raise OnnxExportError(
            f"ONNX export needs the onnx extra ({e.name} is missing): "
            'pip install "ram-tf[onnx]"') from None
    return onnx, onnxruntime, tf2onnx, tf_loader


def onnx_bytes(saved_model_dir: str, reference, images: np.ndarray) -> bytes:
    """The checked ONNX model of `saved_model_dir`'s serving_default.

    Args:
      saved_model_dir: a float32 serving SavedModel.
      reference: callable images -> {"probabilities", "classes"} (NumPy),
        the model the file must agree with.
      images: float32 [N, H, W, C] in [0, 1], real test images.

    Raises:
      OnnxExportError: see the module docstring.
    """
    onnx, ort, tf2onnx, tf_loader = _converter()
    # tf2onnx reports through logging, a line per converted op.
    for name in ("tf2onnx", "tf2onnx.tfonnx", "tf2onnx.tf_loader"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # tf2onnx calls TensorFlow 1 graph utilities, whose deprecation notices
    # (8 lines per export) speak to tf2onnx's authors, not to our users.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            saved_model_dir, None, None, tag="serve",
            signatures=["serving_default"], return_tensors_to_rename=True)
        model, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs,
            opset=OPSET, tensors_to_rename=renames)
    except Exception as e:  # tf2onnx raises many types
        raise OnnxExportError(f"tf2onnx could not convert the model: "
                              f"{_first_line(e)}") from e
    finally:
        tf_logger.setLevel(level)
    foreign = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node
                      if n.domain not in _STANDARD_DOMAINS})
    if foreign:
        raise OnnxExportError(
            "tf2onnx left ops ONNX does not define: " + ", ".join(foreign))
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # onnx.checker.ValidationError and others
        raise OnnxExportError(f"onnx.checker refused the model: "
                              f"{_first_line(e)}") from e
    data = model.SerializeToString()
    check_against(data, reference, images, ort)
    return data


def check_against(data: bytes, reference, images, ort=None) -> None:
    """Run the ONNX model `data` in onnxruntime on `images` and compare it
    with `reference`; raise `OnnxExportError` when they disagree."""
    if ort is None:
        ort = _converter()[1]
    try:
        session = ort.InferenceSession(
            data, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(None, {"images": images})))
    except Exception as e:  # onnxruntime's own exception types
        raise OnnxExportError(f"onnxruntime cannot run the converted "
                              f"model: {_first_line(e)}") from e
    want = reference(images)
    if not np.array_equal(got["classes"], want["classes"]):
        differ = int(np.count_nonzero(got["classes"] != want["classes"]))
        raise OnnxExportError(
            f"the ONNX model answers another class than TensorFlow on "
            f"{differ} of {len(images)} test images")
    gap = float(np.abs(got["probabilities"] - want["probabilities"]).max())
    if not gap <= PROBABILITY_TOLERANCE:
        raise OnnxExportError(
            f"the ONNX model's probabilities differ from TensorFlow's by "
            f"{gap:.2g} (tolerance {PROBABILITY_TOLERANCE:g})")


def _first_line(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]
