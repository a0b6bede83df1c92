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
from ai_edge_litert.interpreter import OpResolverType
data = np.load(sys.argv[2])
# "reference": LiteRT's own kernels, without the XNNPACK delegate.
kwargs = ({"experimental_op_resolver_type":
           OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
          if sys.argv[4:] == ["reference"] else {})
run = Interpreter(model_path=sys.argv[1], **kwargs).get_signature_runner()
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


def _classes(script, model, npz, tmp_path, *extra):
    out = str(tmp_path / "classes.npy")
    result = subprocess.run([sys.executable, "-c", script, model, npz, out,
                             *extra],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out)


def _manifest(name):
    with open(os.path.join(ROOT, name, "MANIFEST.json")) as f:
        return json.load(f)


def _served(artefacts):
    """The SavedModel version TF Serving serves: the highest."""
    return max((k for k in artefacts if k.isdigit()), key=int)


# Every file a manifest lists: each is scored again, as shipped.
ARTEFACTS = [(name, key) for name in SHIPPED
             for key in sorted(_manifest(name)["artefacts"])]
# The runtime each format is served by.
SCRIPTS = {"saved_model": PLAIN_TF, "tflite": PLAIN_LITERT,
           "onnx": PLAIN_ORT}
# Integer kernels may round differently from one LiteRT release to the
# next: the quantised files may miss by 5 of the 10,000 images.
SLACK = {"dynamic": 0.05, "int8": 0.05}


def test_models_are_shipped_and_listed():
    assert {"ram_translated60", "ram_cluttered60"} <= set(SHIPPED)
    for name, key in ARTEFACTS:
        assert os.path.exists(os.path.join(ROOT, name, key)), (name, key)


@pytest.fixture(scope="module")
def test_canvases(tmp_path_factory):
    """name -> (the .npz of its test canvases, their labels)."""
    made = {}

    def get(name):
        if name not in made:
            manifest = _manifest(name)
            config = config_lib.ExperimentConfig.from_dict(manifest["config"])
            arrays = datasets.fixed_arrays(config.data, "test")
            for entry in manifest["artefacts"].values():
                assert entry["test_sha256"] == datasets.fingerprint(arrays)
            npz = str(tmp_path_factory.mktemp(name) / "test.npz")
            np.savez(npz, image=arrays["image"], label=arrays["label"])
            made[name] = npz, arrays["label"]
        return made[name]
    return get


@pytest.fixture(scope="module")
def classes_of(test_canvases, tmp_path_factory):
    """(name, key) -> the classes the shipped file answers on the test
    canvases, from its own runtime; each file runs once per session."""
    answered = {}

    def get(name, key):
        if (name, key) not in answered:
            entry = _manifest(name)["artefacts"][key]
            # XNNPACK refuses the full-int8 graph at prepare time:
            # docs/serving.md tells users to run it on the reference
            # kernels, as load_exported does.
            answered[name, key] = _classes(
                SCRIPTS[entry["format"]], os.path.join(ROOT, name, key),
                test_canvases(name)[0], tmp_path_factory.mktemp("classes"),
                *(["reference"] if entry["quantize"] == "int8" else []))
        return answered[name, key]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("name,key", ARTEFACTS, ids=lambda x: x)
def test_shipped_file_scores_its_manifest_without_ram_tf(
        name, key, real_mnist_dir, test_canvases, classes_of):
    entry = _manifest(name)["artefacts"][key]
    error = 100.0 * np.mean(classes_of(name, key) != test_canvases(name)[1])
    assert error == pytest.approx(
        entry["test_error"], abs=SLACK.get(entry["quantize"], 1e-9))


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_float_files_answer_as_the_served_version(name, real_mnist_dir,
                                                  classes_of):
    # Every test image gets the same class from TFLite and ONNX Runtime as
    # from the SavedModel TF Serving serves (the highest version).
    artefacts = _manifest(name)["artefacts"]
    latest = _served(artefacts)
    for key in ("model_fp32.tflite", "model.onnx"):
        assert key in artefacts, f"{name} ships no {key}"
        np.testing.assert_array_equal(classes_of(name, key),
                                      classes_of(name, latest), err_msg=key)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_served_version_refuses_nan_pixels_in_its_graph(name):
    artefacts = _manifest(name)["artefacts"]
    latest = _served(artefacts)
    # TF Serving serves the highest version: it must check its inputs.
    assert artefacts[latest].get("input_checks") is True
    result = subprocess.run(
        [sys.executable, "-c", LATEST_REFUSES_NAN,
         os.path.join(ROOT, name, latest)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
