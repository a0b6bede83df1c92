"""TFLite files from a serving SavedModel: builtin ops only, optionally
quantized (`ram-tf export --format tflite --quantize`)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ram_tf.manifest import QUANTIZE
from ram_tf.manifest import ExportError


def tflite_bytes(saved_model_dir: str, quantize: str = "none",
                 representative: np.ndarray | None = None) -> bytes:
    """Convert the SavedModel's serving_default to TFLite (builtins only).

    quantize: "none" (float32), "dynamic" (int8 weights), "float16"
    (float16 weights) or "int8" (weights and activations, calibrated on
    `representative` images [N, H, W, C]).

    Raises:
      ExportError: if conversion needs anything but builtin ops.
    """
    if quantize not in QUANTIZE:
        raise ExportError(f"quantize={quantize!r}; allowed: "
                          f"{', '.join(QUANTIZE)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=["serving_default"])
    # Builtins only: a stray Flex or custom op fails here, not on a phone.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if representative is None:
            raise ExportError("int8 quantization needs representative images")

        def dataset():
            for image in representative:
                yield {"images": image[None].astype(np.float32)}

        converter.representative_dataset = dataset
    try:
        return converter.convert()
    except Exception as e:  # the converter raises several types
        raise ExportError(f"TFLite conversion failed: {e}") from e
