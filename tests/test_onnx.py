"""ONNX export: checked in onnxruntime before it is written, run without
TensorFlow, and refused by name where it cannot be right."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import TINY

from ram_tf import config as config_lib
from ram_tf import datasets
from ram_tf import export
from ram_tf import inference
from ram_tf import onnx_export
from ram_tf import training


@pytest.fixture(scope="module")
def exported(mnist_dir, cache_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    workdir = str(root / "run")
    config = config_lib.resolve("ram", "translated60", TINY)
    training.train_and_evaluate(config, workdir, verbose=0,
                                evaluate_test=False)
    out = str(root / "models")
    saved = export.export_run(workdir, out=out, score=True)
    onnx = export.export_run(workdir, out=out, fmt="onnx", score=True)
    return {"workdir": workdir, "out": out, "saved": saved, "onnx": onnx,
            "config": config}


def test_the_onnx_file_and_its_manifest_entry(exported):
    entry = exported["onnx"]
    assert entry["path"].endswith(os.path.join("ram_translated60",
                                               "model.onnx"))
    with open(os.path.join(exported["out"], "ram_translated60",
                           "MANIFEST.json")) as f:
        recorded = json.load(f)["artefacts"]["model.onnx"]
    assert recorded["format"] == "onnx"
    assert recorded["precision"] == "float32"
    assert recorded["glimpse_backend"] == "matmul"
    # Measured like the other artefacts, on the same 10,000 test canvases:
    # the same graph as the SavedModel, so the same error.
    assert recorded["test_images"] == 10000
    assert recorded["test_error"] == exported["saved"]["test_error"]


def test_onnx_runs_without_tensorflow_and_answers_as_the_saved_model(
        exported, tmp_path):
    """The file in onnxruntime, in a process that never imports TensorFlow,
    against the SavedModel on the fixed test canvases."""
    test = datasets.fixed_arrays(exported["config"].data, "test")
    images = test["image"][:500].astype(np.float32) / 255.0
    np.save(tmp_path / "images.npy", images)
    code = (
        "import sys, json, numpy as np\n"
        "from ram_tf import inference\n"
        "fn = inference.load_exported(sys.argv[1])\n"
        "out = fn(np.load(sys.argv[2]))\n"
        "np.save(sys.argv[3], out['probabilities'])\n"
        "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules,\n"
        "                  'classes': out['classes'].tolist()}))\n")
    done = subprocess.run(
        [sys.executable, "-c", code, exported["onnx"]["path"],
         str(tmp_path / "images.npy"), str(tmp_path / "p.npy")],
        capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["tensorflow"] is False
    saved = inference.load_exported(exported["saved"]["path"])(images)
    assert answer["classes"] == saved["classes"].tolist()
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"),
                               saved["probabilities"],
                               atol=onnx_export.PROBABILITY_TOLERANCE)


def test_onnx_inputs_are_checked_like_the_others(exported):
    fn = inference.load_exported(exported["onnx"]["path"])
    assert fn.input_shape == (60, 60, 1)
    with pytest.raises(inference.InputError, match=r"shape \[batch, 60, 60"):
        fn(np.zeros([1, 28, 28, 1], np.float32))
    with pytest.raises(inference.InputError, match="NaN or Inf"):
        fn(np.full([1, 60, 60, 1], np.nan, np.float32))


def test_a_model_that_answers_otherwise_is_refused(exported):
    with open(exported["onnx"]["path"], "rb") as f:
        data = f.read()
    images = np.random.default_rng(0).random([4, 60, 60, 1], np.float32)

    def other_classes(x):
        return {"classes": np.full(len(x), 11), "probabilities": None}

    with pytest.raises(onnx_export.OnnxExportError,
                       match="another class than TensorFlow on 4 of 4"):
        onnx_export.check_against(data, other_classes, images)
    answers = inference.load_exported(exported["onnx"]["path"])(images)

    def off_by_a_little(x):
        return {"classes": answers["classes"],
                "probabilities": answers["probabilities"] + 1e-3}

    with pytest.raises(onnx_export.OnnxExportError,
                       match="probabilities differ .* by 0.001"):
        onnx_export.check_against(data, off_by_a_little, images)
    with pytest.raises(onnx_export.OnnxExportError,
                       match="onnxruntime cannot run"):
        onnx_export.check_against(b"not a model", off_by_a_little, images)


def test_a_failed_conversion_writes_nothing(exported, monkeypatch):
    def fail(*args):
        raise onnx_export.OnnxExportError("tf2onnx left ops ONNX does not "
                                          "define: custom.Thing")

    monkeypatch.setattr(onnx_export, "onnx_bytes", fail)
    out = os.path.join(exported["out"], "failed")
    with pytest.raises(export.ExportError, match="custom.Thing"):
        export.export_run(exported["workdir"], out=out, fmt="onnx",
                          score=False)
    # No file, no staging folder left behind, no manifest entry.
    folder = os.path.join(out, "ram_translated60")
    assert not os.path.isdir(folder) or os.listdir(folder) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "mixed_bfloat16"}, "onnx exports are float32"),
    ({"quantize": "int8"}, "applies to TFLite files only"),
])
def test_what_onnx_cannot_hold_is_refused(exported, tmp_path, kwargs,
                                          message):
    with pytest.raises(export.ExportError, match=message):
        export.export_run(exported["workdir"], out=str(tmp_path),
                          fmt="onnx", score=False, **kwargs)
    assert not os.path.exists(tmp_path / "ram_translated60" / "model.onnx")
