"""Running exported models: `load_exported(path)` for SavedModel, TFLite
and ONNX.

`load_exported` returns a callable taking a NumPy batch float32
[batch, H, W, C] in [0, 1], white digits on a black background as in
MNIST, and returning a dict of NumPy arrays (probabilities [batch, 10],
classes [batch], locations [batch, T, 2]). Inputs are checked first
(`check_images`):
- a wrong rank, size, channel count or dtype, or a NaN or Inf pixel, is an
  `InputError` naming what the model expects;
- values outside [0, 1] (0-255 images) and images that look inverted
  (black digit on white: a mostly bright border) get an `InputWarning`,
  since the model would answer them with confidence, and wrongly.
A `.tflite` path runs in the `ai_edge_litert` interpreter and a `.onnx`
path in onnxruntime, neither importing TensorFlow; anything else is
loaded as a SavedModel (a version folder, or a model folder whose highest
version is taken). Before loading, the
artefact is checked against the sha256 its MANIFEST.json records
(`ram_tf.manifest.verify`). Load only SavedModels you trust: a SavedModel's
graph can hold ops that read and write files; TFLite builtins cannot.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from ram_tf import manifest

# A border brighter than this share of the value range on average: the
# image looks inverted. MNIST-derived canvases have dark borders (clutter
# and digits touch them only in part); black-on-white drawings and photos
# of paper have bright ones; uniform noise averages 0.5.
INVERTED_BORDER = 0.6


class InputError(ValueError):
    """An input batch the exported model cannot take."""


class InputWarning(UserWarning):
    """An input batch the model takes but probably misreads."""


def check_images(images, shape, warn: bool = True) -> np.ndarray:
    """Validate a batch against the model's [H, W, C]; return float32.

    Raises:
      InputError: wrong dtype, rank or shape, or non-finite values.
    Warns:
      InputWarning: values outside [0, 1], or inverted-looking images.
    """
    h, w, c = shape
    want = f"float32 images of shape [batch, {h}, {w}, {c}] in [0, 1]"
    if isinstance(images, dict):
        raise InputError(f"expected {want}, the array itself; got a dict "
                         f"with {sorted(images)}")
    images = np.asarray(images)
    if images.dtype.kind != "f":
        raise InputError(f"expected {want}; got dtype {images.dtype} "
                         "(divide uint8 images by 255)")
    if images.ndim != 4:
        raise InputError(f"expected {want}; got rank {images.ndim} with "
                         f"shape {list(images.shape)}")
    if tuple(images.shape[1:]) != (h, w, c):
        raise InputError(f"expected {want}; got shape {list(images.shape)}")
    x = images.astype(np.float32, copy=False)
    if not x.size:
        return x
    # min and max propagate NaN, and Inf is an extreme: two passes check
    # finiteness and the range together.
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        raise InputError(f"expected {want}; got {bad} NaN or Inf value(s)")
    if warn:
        for message in suspicions(x, lo, hi):
            warnings.warn(message, InputWarning, stacklevel=3)
    return x


def suspicions(x: np.ndarray, lo: float, hi: float) -> list[str]:
    """What looks wrong about a finite batch `x` [B, H, W, C] whose values
    span [lo, hi]: the messages of `check_images`'s warnings."""
    found = []
    if lo < 0 or hi > 1:
        found.append(
            f"pixel values span [{lo:g}, {hi:g}]; the models expect [0, 1]"
            + (" (divide 0-255 images by 255)" if hi > 1.5 else ""))
    border = np.concatenate(
        [x[:, 0].reshape(len(x), -1), x[:, -1].reshape(len(x), -1),
         x[:, :, 0].reshape(len(x), -1), x[:, :, -1].reshape(len(x), -1)],
        axis=1).mean(axis=1)
    inverted = int(np.count_nonzero(border > INVERTED_BORDER * max(hi, 1.0)))
    if inverted:
        found.append(
            f"{inverted} of {len(x)} image(s) look inverted (a bright "
            "border: a dark digit on a light background?); the models "
            "expect white digits on black, in [0, 1] (try 1 - image)")
    return found


class _SavedModelRunner:
    def __init__(self, path: str):
        import tensorflow as tf

        self.path = manifest.latest_version(path)
        self._tf = tf
        self._loaded = tf.saved_model.load(self.path)
        self._fn = self._loaded.signatures["serving_default"]
        spec = self._fn.structured_input_signature[1]["images"]
        self.input_shape = tuple(spec.shape[1:])

    def __call__(self, images):
        x = check_images(images, self.input_shape)
        out = self._fn(images=self._tf.constant(x))
        return {k: v.numpy() for k, v in out.items()}


class _TFLiteRunner:
    def __init__(self, path: str, delegates: bool = True):
        from ai_edge_litert import interpreter as litert

        self.path = path
        # All cores: faster than one (docs/performance.md, "Design
        # decisions", TFLite).
        kwargs = {"num_threads": os.cpu_count() or 1}
        if not delegates:
            kwargs["experimental_op_resolver_type"] = (
                litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self._delegates = delegates
        try:
            self._interpreter = litert.Interpreter(model_path=path, **kwargs)
        except ValueError as e:
            raise ValueError(f"{path} is not a TFLite model the interpreter "
                             f"can load ({str(e).strip()})") from e
        self._runner = self._interpreter.get_signature_runner(
            "serving_default")
        detail = self._runner.get_input_details()["images"]
        self.input_shape = tuple(int(d) for d in detail["shape"][1:])

    def __call__(self, images):
        x = check_images(images, self.input_shape)
        try:
            return self._runner(images=x)
        except RuntimeError:
            if not self._delegates:
                raise
            # XNNPACK refuses some int8 graphs at prepare time; the
            # reference kernels run them.
            self.__init__(self.path, delegates=False)
            return self._runner(images=x)


class _OnnxRunner:
    def __init__(self, path: str):
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(
                f"{path} is an ONNX model: running it needs onnxruntime "
                '(pip install "ram-tf[onnx]")') from None
        self.path = path
        options = onnxruntime.SessionOptions()
        # All cores, as for TFLite.
        options.intra_op_num_threads = os.cpu_count() or 1
        try:
            self._session = onnxruntime.InferenceSession(
                path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's errors derive from Exception
            text = str(e).strip().splitlines()
            raise ValueError(f"{path} is not an ONNX model ONNX Runtime can "
                             f"load ({text[0] if text else type(e).__name__})"
                             ) from e
        self._outputs = [o.name for o in self._session.get_outputs()]
        shape = self._session.get_inputs()[0].shape
        self.input_shape = tuple(int(d) for d in shape[1:])

    def __call__(self, images):
        x = check_images(images, self.input_shape)
        return dict(zip(self._outputs,
                        self._session.run(None, {"images": x})))


def load_exported(path: str, verify: bool = True):
    """A callable for an exported model (SavedModel folder, .tflite or
    .onnx).

    With `verify`, an artefact whose bytes differ from the sha256 its
    MANIFEST.json records is refused (`manifest.IntegrityError`, a
    ValueError); one without a manifest or record is loaded as it is.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no exported model at {path}")
    if verify:
        manifest.verify(path)
    if path.endswith(".tflite"):
        return _TFLiteRunner(path)
    if path.endswith(".onnx"):
        return _OnnxRunner(path)
    return _SavedModelRunner(path)


def predict_batches(fn, images: np.ndarray, batch_size: int = 500):
    """Concatenate `fn` outputs over slices of `images`."""
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise ValueError(f"batch_size must be a positive integer; got "
                         f"{batch_size!r}")
    if not len(images):
        raise InputError("no images to predict: the batch is empty")
    parts = [fn(images[i:i + batch_size])
             for i in range(0, len(images), batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def canvas_divisor(arrays) -> float:
    """What to divide `arrays["image"]` by for pixels in [0, 1], after
    checking that `arrays` holds what the scorers read.

    Args:
      arrays: {"image": [N, H, W, C] uint8 canvases (those of
        `ram_tf.datasets.fixed_arrays`) or floats in [0, 1],
        "label": [N] integer classes}.

    Returns:
      255.0 for uint8 images, 1.0 for float ones.

    Raises:
      InputError: a missing entry, or images or labels of another kind.
    """
    if not isinstance(arrays, dict) or not {"image", "label"} <= set(arrays):
        raise InputError(
            "expected a dict with 'image' [N, H, W, C] and 'label' [N], as "
            "ram_tf.datasets.fixed_arrays returns; got "
            + (f"keys {sorted(arrays)}" if isinstance(arrays, dict)
               else type(arrays).__name__))
    images, labels = np.asarray(arrays["image"]), np.asarray(arrays["label"])
    if images.ndim != 4:
        raise InputError("expected 'image' [N, H, W, C]; got shape "
                         f"{list(images.shape)}")
    if labels.dtype.kind not in "iu" or labels.shape != images.shape[:1]:
        raise InputError(
            f"expected 'label' [{len(images)}] integer classes, one per "
            f"image; got {labels.dtype} of shape {list(labels.shape)}"
            + (" (one-hot labels need argmax)" if labels.ndim == 2 else ""))
    if images.dtype == np.uint8:
        return 255.0
    if images.dtype.kind != "f":
        raise InputError(f"expected uint8 canvases (0-255) or floats in "
                         f"[0, 1]; got dtype {images.dtype}")
    lo, hi = (float(images.min()), float(images.max())) if images.size \
        else (0.0, 0.0)
    if not 0.0 <= lo <= hi <= 1.0:  # NaN fails too
        raise InputError(
            f"float images must be in [0, 1]; these span [{lo:g}, {hi:g}]"
            + (" (0-255 values: pass them as uint8)" if hi > 1.5 else ""))
    return 1.0


def test_error(fn, arrays, batch_size: int = 500) -> float:
    """Error (%) of an exported callable on fixed canvases (`arrays` as
    `canvas_divisor` takes them)."""
    images = arrays["image"].astype(np.float32) / canvas_divisor(arrays)
    out = predict_batches(fn, images, batch_size)
    return float(100.0 * np.mean(out["classes"] != arrays["label"]))
