"""SavedModels exported in bfloat16 (`--precision mixed_bfloat16`): what
they compute, how they cast, and the precisions an export refuses."""

import os

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from helpers import exported_error
from helpers import read_json

from ram_tf import export
from ram_tf import inference
from ram_tf import training
from ram_tf_cli.main import cli


def test_cli_export_refuses_bfloat16_tflite(tiny_export, tmp_path):
    result = CliRunner().invoke(cli, [
        "export", tiny_export["workdir"], "--format", "tflite", "--precision",
        "mixed_bfloat16", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "saved_model only" in result.output
    assert not os.listdir(tmp_path)


def test_bfloat16_export_is_the_bfloat16_model_with_kernels_cast_once(
        tiny_export, tmp_path):
    """--precision mixed_bfloat16: the SavedModel computes what the Keras
    model trained in mixed_bfloat16 computes (its matmuls cast the float32
    kernels in every call), from kernels cast once into constants; the
    manifest says so and its test error is the artefact's own."""
    config, trained = training.load_run(tiny_export["workdir"])
    entry = export.export_run(tiny_export["workdir"], out=str(tmp_path),
                              precision="mixed_bfloat16", score=True)
    manifest = read_json(os.path.join(tmp_path, "ram_mnist28", "MANIFEST.json"))
    assert manifest["artefacts"]["1"]["precision"] == "mixed_bfloat16"
    assert tiny_export["sm"]["precision"] == "float32"  # the default
    # The bfloat16 version's own score, not the float32 one's.
    assert entry["test_error"] == pytest.approx(exported_error(
        entry["path"], tiny_export["test"]), abs=1e-9)
    reference = type(trained).from_config(
        {**trained.get_config(), "precision": "mixed_bfloat16"})
    x = tiny_export["images"]
    reference(x[:1])
    reference.set_weights(trained.get_weights())
    reference.sensor.product_dtype = "bfloat16"  # the export's sensor too
    want = tf.nn.softmax(reference(x)["logits"]).numpy()
    got = inference.load_exported(entry["path"])(x)
    np.testing.assert_allclose(got["probabilities"], want, atol=1e-6)
    # Rebuilt from the export (for `ram-tf visualize`): bfloat16 too.
    _, rebuilt = export.keras_from_export(entry["path"] + os.sep)
    assert rebuilt.matmul_dtype == "bfloat16"
    np.testing.assert_allclose(
        tf.nn.softmax(rebuilt(x)["logits"]).numpy(), want, atol=1e-6)
    assert rebuilt.sensor.product_dtype == "bfloat16"
    # bfloat16 products, not float32 ones: the answers differ a little.
    fp32 = inference.load_exported(tiny_export["sm"]["path"])(x)
    assert not np.allclose(got["probabilities"], fp32["probabilities"],
                           atol=1e-7)
    np.testing.assert_allclose(got["probabilities"], fp32["probabilities"],
                               atol=0.05)


def test_bfloat16_serving_copy_casts_activations_not_kernels(tiny_export):
    # One Cast to bfloat16 per bfloat16 MatMul (its activation operand):
    # the kernels arrive as bfloat16 constants. The training model casts
    # both operands, two per MatMul. (The sensor's casts, of the image in
    # the export, are not counted: its tables are bfloat16 constants.)
    _, trained = training.load_run(tiny_export["workdir"])
    trained.input_hwc = (28, 28, 1)

    def counts(model):
        fn = tf.function(lambda x: model.rollouts(x)["logits"])
        graph = fn.get_concrete_function(
            tf.TensorSpec([4, 28, 28, 1])).graph
        ops = graph.get_operations()
        casts = sum(op.type == "Cast" and op.get_attr("DstT") == tf.bfloat16
                    and "glimpse_sensor" not in op.name for op in ops)
        matmuls = sum(op.type == "MatMul" and op.get_attr("T") == tf.bfloat16
                      for op in ops)
        return casts, matmuls

    served = export.serving_model(trained, precision="mixed_bfloat16")
    casts, matmuls = counts(served)
    assert matmuls > 0 and casts == matmuls
    training_copy = type(trained).from_config(
        {**trained.get_config(), "precision": "mixed_bfloat16"})
    training_copy(tf.zeros([1, 28, 28, 1]))
    assert counts(training_copy) == (2 * matmuls, matmuls)


@pytest.mark.parametrize("kwargs,match", [
    ({"precision": "bfloat16"}, "precision='bfloat16'; allowed"),
    ({"precision": "mixed_bfloat16", "fmt": "tflite"}, "SavedModels"),
])
def test_export_refuses_a_bad_precision(tiny_export, kwargs, match, tmp_path):
    with pytest.raises(export.ExportError, match=match):
        export.export_run(tiny_export["workdir"], out=str(tmp_path),
                          score=False, **kwargs)
    assert not os.listdir(tmp_path)
