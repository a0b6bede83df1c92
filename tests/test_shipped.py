"""The shipped models in exported_models/ score what their manifests claim.

Each check runs in a fresh interpreter that imports only TensorFlow (or only
ai_edge_litert, or only onnxruntime) and NumPy, never ram_tf, as a serving
user would. The fixed
test canvases are handed over as an .npz file made by ram_tf.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ram_tf import config as config_lib
from ram_tf import datasets

ROOT = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "exported_models")
SHIPPED = sorted(n for n in os.listdir(ROOT)
                 if os.path.exists(os.path.join(ROOT, n, "MANIFEST.json"))
                 ) if os.path.isdir(ROOT) else []

PLAIN_TF = """
import sys, numpy as np, tensorflow as tf
data = np.load(sys.argv[2])
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
classes = np.concatenate([
    fn(images=tf.constant(data["image"][i:i + 500].astype(np.float32) / 255))
    ["classes"].numpy() for i in range(0, len(data["label"]), 500)])
np.save(sys.argv[3], classes)
"""

PLAIN_LITERT = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
assert "tensorflow" not in sys.modules
data = np.load(sys.argv[2])
run = Interpreter(model_path=sys.argv[1]).get_signature_runner()
classes = np.concatenate([
    run(images=data["image"][i:i + 500].astype(np.float32) / 255)["classes"]
    for i in range(0, len(data["label"]), 500)])
assert "tensorflow" not in sys.modules
np.save(sys.argv[3], classes)
"""


PLAIN_ORT = """
import sys, numpy as np, onnxruntime
data = np.load(sys.argv[2])
session = onnxruntime.InferenceSession(sys.argv[1],
                                       providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
classes = np.concatenate([
    dict(zip(names, session.run(None, {"images": data["image"][i:i + 500]
                                       .astype(np.float32) / 255})))
    ["classes"] for i in range(0, len(data["label"]), 500)])
assert "tensorflow" not in sys.modules
np.save(sys.argv[3], classes)
"""

LATEST_REFUSES_NAN = """
import sys, numpy as np, tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
x = np.zeros([1, *fn.structured_input_signature[1]["images"].shape[1:]],
             np.float32)
x[0, 0, 0, 0] = np.nan
try:
    fn(images=tf.constant(x))
except tf.errors.InvalidArgumentError as e:
    assert "finite" in str(e), e
else:
    raise SystemExit("a NaN pixel was answered")
"""


def _classes(script, model, npz, tmp_path):
    out = str(tmp_path / "classes.npy")
    result = subprocess.run([sys.executable, "-c", script, model, npz, out],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_scores_its_manifest_without_ram_tf(name,
                                                          real_mnist_dir,
                                                          tmp_path):
    base = os.path.join(ROOT, name)
    with open(os.path.join(base, "MANIFEST.json")) as f:
        manifest = json.load(f)
    config = config_lib.ExperimentConfig.from_dict(manifest["config"])
    arrays = datasets.fixed_arrays(config.data, "test")
    npz = str(tmp_path / "test.npz")
    np.savez(npz, image=arrays["image"], label=arrays["label"])
    versions = sorted((k for k in manifest["artefacts"] if k.isdigit()),
                      key=int)
    assert versions, "no SavedModel version shipped"
    entry = manifest["artefacts"][versions[-1]]
    assert entry["test_sha256"] == datasets.fingerprint(arrays)
    saved = _classes(PLAIN_TF, os.path.join(base, versions[-1]), npz,
                     tmp_path)
    error = 100.0 * np.mean(saved != arrays["label"])
    assert error == pytest.approx(entry["test_error"], abs=1e-9)
    tflite = os.path.join(base, "model_fp32.tflite")
    assert os.path.exists(tflite), "no fp32 TFLite file shipped"
    lite = _classes(PLAIN_LITERT, tflite, npz, tmp_path)
    # Every test image gets the same class from TFLite as from TF Serving.
    np.testing.assert_array_equal(lite, saved)
    # And from ONNX Runtime, where an .onnx file is shipped.
    onnx = os.path.join(base, "model.onnx")
    if os.path.exists(onnx):
        ort = _classes(PLAIN_ORT, onnx, npz, tmp_path)
        np.testing.assert_array_equal(ort, saved)
        assert manifest["artefacts"]["model.onnx"]["test_error"] == \
            pytest.approx(error, abs=1e-9)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_served_version_refuses_nan_pixels_in_its_graph(name):
    base = os.path.join(ROOT, name)
    with open(os.path.join(base, "MANIFEST.json")) as f:
        manifest = json.load(f)
    latest = max((k for k in manifest["artefacts"] if k.isdigit()), key=int)
    # TF Serving serves the highest version: it must check its inputs.
    assert manifest["artefacts"][latest].get("input_checks") is True
    result = subprocess.run(
        [sys.executable, "-c", LATEST_REFUSES_NAN, os.path.join(base, latest)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
