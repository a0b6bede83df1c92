"""`ram-tf export --xla`: XLA-compiled SavedModel signatures that answer as
the plain export does, keep its input checks, and are refused where they
do not apply."""

import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import train_tiny

from ram_tf import datasets
from ram_tf import export


@pytest.fixture(scope="module")
def exports(mnist_dir, cache_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("xla")
    workdir = str(root / "run")
    cfg = train_tiny(workdir)
    out = str(root / "models")
    plain = export.export_run(workdir, out=out, version=1)
    xla = export.export_run(workdir, out=out, version=2, xla=True)
    test = datasets.fixed_arrays(cfg.data, "test")
    return {"workdir": workdir, "out": out, "plain": plain, "xla": xla,
            "images": test["image"][:64].astype(np.float32) / 255.0}


def _compiled_functions(path):
    """Names of the SavedModel's functions marked _XlaMustCompile."""
    loaded = tf.saved_model.load(path)
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    return [f.signature.name for f in graph.library.function
            if f.attr.get("_XlaMustCompile") is not None
            and f.attr["_XlaMustCompile"].b]


def test_manifest_records_the_xla_export(exports):
    entry = exports["xla"]
    assert entry["xla"] is True and exports["plain"]["xla"] is False
    assert entry["chains"] == 1 and entry["glimpse_backend"] == "gather"
    assert entry["input_checks"] is True
    # The same answers on the 10,000 test canvases as the plain export.
    assert entry["test_error"] == exports["plain"]["test_error"]
    assert _compiled_functions(entry["path"])
    assert not _compiled_functions(exports["plain"]["path"])


def test_both_signatures_answer_as_the_plain_export(exports):
    x = tf.constant(exports["images"])
    plain = tf.saved_model.load(exports["plain"]["path"]).signatures
    xla = tf.saved_model.load(exports["xla"]["path"]).signatures
    a, b = plain["serving_default"](images=x), xla["serving_default"](images=x)
    np.testing.assert_array_equal(a["classes"], b["classes"])
    np.testing.assert_allclose(a["probabilities"], b["probabilities"],
                               atol=1e-5)
    np.testing.assert_allclose(a["locations"], b["locations"], atol=1e-5)
    # The noise is drawn outside the XLA cluster: one seed, one answer.
    seed = tf.constant([4, 2], tf.int32)
    a = plain["monte_carlo"](images=x, seed=seed)
    b = xla["monte_carlo"](images=x, seed=seed)
    np.testing.assert_allclose(a["probabilities"], b["probabilities"],
                               atol=1e-5)
    np.testing.assert_allclose(a["locations"], b["locations"], atol=1e-5)


def test_the_xla_signatures_keep_the_input_checks(exports):
    serve = tf.saved_model.load(exports["xla"]["path"]).signatures[
        "serving_default"]
    bad = exports["images"][:2].copy()
    bad[1, 3, 3, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        serve(images=tf.constant(bad))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        serve(images=tf.zeros([1, 56, 14, 1]))


def test_a_keras_model_rebuilds_from_the_xla_export(exports):
    _, model = export.keras_from_export(exports["xla"]["path"])
    x = tf.constant(exports["images"][:8])
    probabilities = tf.nn.softmax(model.rollouts(x)["logits"]).numpy()
    served = tf.saved_model.load(exports["xla"]["path"]).signatures[
        "serving_default"](images=x)
    np.testing.assert_allclose(probabilities, served["probabilities"],
                               atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "tflite"}, "xla applies to SavedModels only"),
    ({"fmt": "onnx"}, "xla applies to SavedModels only"),
    ({"precision": "mixed_bfloat16"}, "xla exports are float32"),
    ({"chains": 2}, "chains=2 with xla"),
])
def test_refused_xla_exports_write_nothing(exports, tmp_path, kwargs,
                                           message):
    out = str(tmp_path / "models")
    with pytest.raises(export.ExportError, match=message):
        export.export_run(exports["workdir"], out=out, xla=True,
                          score=False, **kwargs)
    assert not os.path.exists(os.path.join(out, "ram_mnist28", "1"))
