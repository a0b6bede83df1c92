"""What exported models take: their declared shape, finite pixels, white
digits on black in [0, 1], and artefacts whose sha256 is the recorded one,
in the SavedModel graph, in `load_exported` and in `ram-tf predict`."""

import os
import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from helpers import TINIEST
from helpers import train_tiny

from ram_tf import export
from ram_tf import inference
from ram_tf import manifest
from ram_tf import training
from ram_tf_cli.main import cli

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "exported_models", "ram_translated60")


def digits(n=4, size=28):
    """White squares on black in [0, 1]: what the models expect."""
    x = np.zeros((n, size, size, 1), np.float32)
    for i in range(n):
        x[i, 8 + i:16 + i, 10:18] = 1.0
    return x


@pytest.fixture(scope="module")
def exported(mnist_dir, cache_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    workdir = str(root / "run")
    train_tiny(workdir, TINIEST)
    out = str(root / "models")
    sm = export.export_run(workdir, out=out, score=False)
    tfl = export.export_run(workdir, out=out, fmt="tflite", score=False)
    return {"workdir": workdir, "out": out, "sm": sm["path"],
            "tflite": tfl["path"], "base": os.path.dirname(sm["path"])}


def _signatures(path):
    loaded = tf.saved_model.load(path)
    return loaded, [
        lambda x: loaded.signatures["serving_default"](images=x),
        lambda x: loaded.signatures["monte_carlo"](
            images=x, seed=tf.constant([1, 2]))]


@pytest.mark.parametrize("shape", [[1, 56, 14, 1], [1, 14, 14, 4]])
def test_signatures_enforce_their_declared_shape(exported, shape):
    # As many pixels as [1, 28, 28, 1]: without the check, reshaped and
    # answered.
    _, calls = _signatures(exported["sm"])
    for call in calls:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"not compatible with expected shape "
                           r"\[\?,28,28,1\]"):
            call(tf.zeros(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_signatures_refuse_non_finite_pixels(exported, bad):
    x = digits(2)
    x[1, 3, 3, 0] = bad
    _, calls = _signatures(exported["sm"])
    for call in calls:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="must be finite"):
            call(tf.constant(x))
        assert call(tf.constant(digits(2)))["classes"].shape == (2,)


@pytest.mark.parametrize("key", ["sm", "tflite"])
def test_load_exported_refuses_non_finite_pixels(exported, key):
    fn = inference.load_exported(exported[key])
    x = digits(3)
    x[0, 0, 0, 0] = np.nan
    x[2, 5, 5, 0] = np.inf
    with pytest.raises(inference.InputError, match="got 2 NaN or Inf"):
        fn(x)


def test_load_exported_takes_a_path_object_and_names_misuse(exported,
                                                            tmp_path):
    import pathlib

    fn = inference.load_exported(pathlib.Path(exported["tflite"]))
    x = digits(3)
    assert inference.predict_batches(fn, x, 2)["classes"].shape == (3,)
    with pytest.raises(inference.InputError, match="the array itself; got "
                       r"a dict with \['images'\]"):
        fn({"images": x})
    with pytest.raises(inference.InputError, match="the batch is empty"):
        inference.predict_batches(fn, x[:0])
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        inference.predict_batches(fn, x, 0)
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"not a flatbuffer")
    with pytest.raises(ValueError, match=f"{fake} is not a TFLite model"):
        inference.load_exported(str(fake))
    keras_file = tmp_path / "m.keras"
    keras_file.write_bytes(b"zip")
    with pytest.raises(FileNotFoundError, match="a .keras file loads with "
                       "keras.models.load_model"):
        inference.load_exported(str(keras_file))


def test_savedmodels_exported_without_checks_are_checked_in_python(
        exported, tmp_path):
    # As the shipped SavedModels were exported: no checked ops inside.
    _, trained = training.load_run(exported["workdir"])
    trained.input_hwc = (28, 28, 1)
    path = str(tmp_path / "1")
    export.write_saved_model(export.serving_model(trained), path,
                             checked=False)
    fn = inference.load_exported(path)
    x = digits(1)
    x[0, 1, 1, 0] = np.nan
    with pytest.raises(inference.InputError, match="NaN or Inf"):
        fn(x)


@pytest.mark.parametrize("key", ["sm", "tflite"])
def test_load_exported_warns_on_range_and_inverted_images(exported, key):
    fn = inference.load_exported(exported[key])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(digits())  # white on black in [0, 1]: no warning
        fn(np.random.default_rng(0).random((4, 28, 28, 1), np.float32))
    with pytest.warns(inference.InputWarning, match="0-255"):
        fn(digits() * 255)
    with pytest.warns(inference.InputWarning,
                      match=r"\[-1, 1\]; the models expect \[0, 1\]"):
        fn(digits() * 2 - 1)
    with pytest.warns(inference.InputWarning,
                      match="4 of 4 image.*inverted.*white digits on black"):
        fn(1 - digits())


def _tampered_copy(exported, tmp_path):
    base = str(tmp_path / "ram_mnist28")
    shutil.copytree(exported["base"], base)
    with open(os.path.join(base, "model_fp32.tflite"), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    # A SavedModel that gained a file after export (e.g. an asset).
    with open(os.path.join(base, "1", "assets.extra"), "w") as f:
        f.write("x")
    return base


def test_a_changed_artefact_is_refused(exported, tmp_path):
    base = _tampered_copy(exported, tmp_path)
    for path in (os.path.join(base, "model_fp32.tflite"), base,
                 os.path.join(base, "1")):
        with pytest.raises(manifest.IntegrityError,
                           match="sha256 .* records .*changed after export"):
            inference.load_exported(path)
    with pytest.raises(export.ExportError, match="sha256"):
        export.keras_from_export(base)
    # Asked for explicitly, a changed file still loads.
    inference.load_exported(os.path.join(base, "1"), verify=False)
    # The untouched originals pass.
    inference.load_exported(exported["tflite"])
    export.keras_from_export(exported["base"])


def test_cli_predict_and_visualize_refuse_a_changed_artefact(exported,
                                                              tmp_path):
    base = _tampered_copy(exported, tmp_path)
    np.save(tmp_path / "x.npy", digits(1)[0])
    for model in (base, os.path.join(base, "model_fp32.tflite")):
        result = CliRunner().invoke(cli, ["predict", model,
                                          str(tmp_path / "x.npy")])
        assert result.exit_code == 2, result.output
        assert "sha256" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["visualize", base, "--out",
                                      str(tmp_path / "vis")])
    assert result.exit_code == 2, result.output
    assert "sha256" in result.output


def test_cli_predict_refuses_non_finite_and_warns_on_suspect_images(
        exported, tmp_path):
    from PIL import Image

    x = digits(1)[0]
    nan = x.copy()
    nan[4, 4, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "bytes.npy", (x * 255).astype(np.uint8))
    drawn = tmp_path / "drawn.png"  # as a person draws: black on white
    Image.fromarray(((1 - x[..., 0]) * 255).astype(np.uint8)).save(drawn)
    good = tmp_path / "good.png"
    Image.fromarray((x[..., 0] * 255).astype(np.uint8)).save(good)
    for model in (exported["sm"], exported["tflite"]):
        result = CliRunner().invoke(cli, ["predict", model,
                                          str(tmp_path / "nan.npy")])
        assert result.exit_code == 2
        assert "NaN or Inf" in result.output
        assert "class" not in result.output
        result = CliRunner().invoke(cli, ["predict", model, str(drawn),
                                          str(tmp_path / "bytes.npy"),
                                          str(good)])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert any("warning: " + str(drawn) in line and "inverted" in line
                   for line in lines), result.output
        assert any("bytes.npy" in line and "0-255" in line
                   for line in lines), result.output
        assert not any("good.png" in line and "warning" in line
                       for line in lines)
        assert sum(": class " in line for line in lines) == 3


def test_cli_predict_names_damaged_models_and_images(exported, tmp_path):
    # Each ended in a traceback or a bare "Aborted!".
    np.save(tmp_path / "x.npy", digits(1)[0])
    x = str(tmp_path / "x.npy")
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "random.onnx").write_bytes(b"not a protobuf" * 10)
    broken = str(tmp_path / "broken")
    shutil.copytree(exported["base"], broken)
    with open(os.path.join(broken, "MANIFEST.json"), "r+") as f:
        f.truncate(20)
    unrecorded = str(tmp_path / "unrecorded")
    shutil.copytree(exported["base"], unrecorded)
    os.remove(os.path.join(unrecorded, "MANIFEST.json"))
    for args, message in (
            ([exported["sm"], str(tmp_path / "empty.npy")],
             "empty.npy is not a readable .npy array"),
            ([str(tmp_path / "random.onnx"), x],
             "random.onnx is not an ONNX model ONNX Runtime can load"),
            ([broken, x], "MANIFEST.json is not valid JSON"),
            ([exported["workdir"], x],
             "it is a run directory: export it first (ram-tf export "),
            ([exported["sm"], x, "--plot", str(tmp_path / "p.txt")],
             "does not end in one of .png")):
        result = CliRunner().invoke(cli, ["predict", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output and "class" not in \
            result.output
    result = CliRunner().invoke(cli, ["predict", unrecorded, x])
    assert result.exit_code == 0, result.output
    assert "has no MANIFEST.json record of its sha256, so it was loaded " \
        "unchecked" in result.output
    result = CliRunner().invoke(cli, ["predict", exported["sm"], x])
    assert "unchecked" not in result.output


def test_readme_and_serving_docs_say_what_the_models_expect():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "README.md"), encoding="utf-8") as f:
        readme = " ".join(f.read().split())
    for phrase in ("white digits (1.0) on black (0.0)", "in [0, 1]",
                   "Load only SavedModels you trust"):
        assert phrase in readme, phrase
    with open(os.path.join(repo, "docs", "serving.md"),
              encoding="utf-8") as f:
        serving = " ".join(f.read().split())
    assert "## Trust" in serving
    assert "Load only SavedModels you trust" in serving
    assert "TFLite" in serving.split("## Trust", 1)[1][:2000]


def test_predict_help_says_what_the_models_expect():
    text = CliRunner().invoke(cli, ["predict", "--help"]).output
    for phrase in ("white digit", "black background", "[0, 1]", "NaN",
                   "sha256", "SavedModels you trust"):
        assert phrase in " ".join(text.split()), phrase


def test_shipped_models_load_verified_and_refuse_nan():
    # Exported before the checked ops: the library checks them in Python.
    for path in (SHIPPED, os.path.join(SHIPPED, "model_fp32.tflite")):
        fn = inference.load_exported(path)
        x = digits(1, 60)
        assert fn(x)["probabilities"].shape == (1, 10)
        x[0, 30, 30, 0] = np.nan
        with pytest.raises(inference.InputError, match="NaN or Inf"):
            fn(x)
        with pytest.raises(inference.InputError, match=r"\[batch, 60, 60"):
            fn(np.zeros((1, 120, 30, 1), np.float32))
