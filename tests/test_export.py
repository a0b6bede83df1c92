"""SavedModel and TFLite exports: signatures, parity, REST body, atomicity,
rollout chains. (bfloat16 exports: test_export_bfloat16.py.)"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY
from helpers import exported_error
from helpers import read_json
from helpers import train_tiny

from ram_tf import export
from ram_tf import inference
from ram_tf import training


def _text(path):
    with open(path) as f:
        return f.read()




def test_layout_and_manifest(tiny_export):
    assert tiny_export["sm"]["path"].endswith(os.path.join("ram_mnist28", "1"))
    assert os.path.exists(os.path.join(tiny_export["sm"]["path"],
                                       "saved_model.pb"))
    manifest = read_json(os.path.join(tiny_export["base"], "MANIFEST.json"))
    assert manifest["task"] == "mnist28"
    assert manifest["config"]["glimpse"]["num_glimpses"] == 3
    for key in ("1", "model_fp32.tflite"):
        entry = manifest["artefacts"][key]
        assert entry["sha256"] == export.sha256(
            os.path.join(tiny_export["base"], key))
        path = os.path.join(tiny_export["base"], key)
        assert entry["test_error"] == pytest.approx(
            exported_error(path, tiny_export["test"]), abs=1e-9)
        assert entry["test_images"] == 10000
        assert entry["updates"] == entry["planned_updates"] == 3
    assert manifest["artefacts"]["1"]["glimpse_backend"] == "matmul"
    assert manifest["artefacts"]["model_fp32.tflite"][
        "glimpse_backend"] == "gather"
    # SavedModel and TFLite score the same on the full test set.
    assert manifest["artefacts"]["1"]["test_error"] == manifest[
        "artefacts"]["model_fp32.tflite"]["test_error"]
    assert not [n for n in os.listdir(tiny_export["base"])
                if n.startswith(".")]


def test_signatures_are_the_public_api(tiny_export):
    loaded = tf.saved_model.load(tiny_export["sm"]["path"])
    assert set(loaded.signatures) == {"serving_default", "monte_carlo"}
    sig = loaded.signatures["serving_default"]
    spec = sig.structured_input_signature[1]
    assert list(spec) == ["images"]
    assert spec["images"].shape.as_list() == [None, 28, 28, 1]
    assert spec["images"].dtype == tf.float32
    out = sig(images=tf.constant(tiny_export["images"][:3]))
    assert out["probabilities"].shape == (3, 10)
    assert out["classes"].dtype == tf.int64
    assert out["locations"].shape == (3, 3, 2)
    np.testing.assert_array_equal(out["locations"][:, 0], 0.0)


def test_keras_savedmodel_and_tflite_agree(tiny_export):
    _, model = training.load_run(tiny_export["workdir"])
    x = tiny_export["images"]
    keras_probs = tf.nn.softmax(model(x)["logits"]).numpy()
    sm = inference.load_exported(tiny_export["sm"]["path"])(x)
    tfl = inference.load_exported(tiny_export["tflite"]["path"])(x)
    np.testing.assert_array_equal(sm["classes"], keras_probs.argmax(-1))
    np.testing.assert_array_equal(tfl["classes"], sm["classes"])
    np.testing.assert_allclose(sm["probabilities"], keras_probs, atol=1e-6)
    np.testing.assert_allclose(tfl["probabilities"], sm["probabilities"],
                               atol=1e-5)
    np.testing.assert_allclose(tfl["locations"], sm["locations"], atol=1e-5)


def test_monte_carlo_signature_is_seeded(tiny_export):
    sig = tf.saved_model.load(tiny_export["sm"]["path"]).signatures[
        "monte_carlo"]
    x = tf.constant(tiny_export["images"][:8])
    a = sig(images=x, seed=tf.constant([1, 2]))["probabilities"].numpy()
    b = sig(images=x, seed=tf.constant([1, 2]))["probabilities"].numpy()
    c = sig(images=x, seed=tf.constant([3, 4]))["probabilities"].numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)


def test_tflite_has_builtin_ops_only(tiny_export):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=tiny_export["tflite"]["path"])
    names = {op["op_name"] for op in interpreter._get_ops_details()}
    assert names and not any(n.startswith("Flex") or n == "CUSTOM"
                             for n in names), names
    assert "GATHER" in names  # the gather glimpse sensor, faster in TFLite


def _rest_predict(loaded, body):
    """TF Serving's `:predict` of a loaded SavedModel on a JSON body, as
    its REST API defines the two formats: "instances" (rows: one batch
    element each, the only input unnamed) answers
    {"predictions": [{output: value}, ...]}; "inputs" (columns:
    {input: batch}) answers {"outputs": {output: batch}}. Inputs
    take the signature's dtypes; the answer goes back through JSON."""
    request = json.loads(body)
    sig = loaded.signatures[
        request.get("signature_name", "serving_default")]
    specs = sig.structured_input_signature[1]
    if "instances" in request:
        (name, spec), = specs.items()
        out = sig(**{name: tf.constant(request["instances"], spec.dtype)})
        out = {k: v.numpy().tolist() for k, v in out.items()}
        answer = {"predictions": [dict(zip(out, row))
                                  for row in zip(*out.values())]}
    else:
        out = sig(**{k: tf.constant(v, specs[k].dtype)
                     for k, v in request["inputs"].items()})
        answer = {"outputs": {k: v.numpy().tolist() for k, v in out.items()}}
    return json.loads(json.dumps(answer))


def test_rest_row_format_answers_as_the_keras_model(tiny_export):
    # The body of: curl -d @body.json host:8501/v1/models/ram_mnist28:predict
    x = tiny_export["images"][:5]
    body = json.dumps({"signature_name": "serving_default",
                       "instances": x.tolist()})
    loaded = tf.saved_model.load(tiny_export["sm"]["path"])
    answer = _rest_predict(loaded, body)["predictions"]
    _, model = training.load_run(tiny_export["workdir"])
    out = model(x)
    probs = tf.nn.softmax(out["logits"]).numpy()
    assert len(answer) == 5
    assert [row["classes"] for row in answer] == probs.argmax(-1).tolist()
    np.testing.assert_allclose([row["probabilities"] for row in answer],
                               probs, atol=1e-6)
    np.testing.assert_allclose([row["locations"] for row in answer],
                               out["locations"].numpy(), atol=1e-6)


def test_rest_columnar_monte_carlo_body_is_seeded(tiny_export):
    # docs/serving.md's monte_carlo body: the seed is not per image.
    x = tiny_export["images"][:4].tolist()
    loaded = tf.saved_model.load(tiny_export["sm"]["path"])

    def outputs(seed):
        body = json.dumps({"signature_name": "monte_carlo",
                           "inputs": {"images": x, "seed": seed}})
        return _rest_predict(loaded, body)["outputs"]

    a, b, c = outputs([1, 2]), outputs([1, 2]), outputs([3, 4])
    assert np.shape(a["probabilities"]) == (4, 10)
    assert a == b and a["probabilities"] != c["probabilities"]
    np.testing.assert_allclose(np.sum(a["probabilities"], -1), 1.0,
                               atol=1e-5)


def test_saved_model_cli_runs_the_signature(tiny_export, tmp_path):
    np.save(tmp_path / "x.npy", tiny_export["images"][:2])
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "run", "--dir", tiny_export["sm"]["path"], "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs",
         f"images={tmp_path / 'x.npy'}"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "classes" in result.stdout and "probabilities" in result.stdout


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 28, 28), np.float32), "rank 3"),
    (np.zeros((2, 30, 28, 1), np.float32), r"\[2, 30, 28, 1\]"),
    (np.zeros((2, 28, 28, 3), np.float32), r"\[batch, 28, 28, 1\]"),
    (np.zeros((2, 28, 28, 1), np.uint8), "dtype uint8"),
])
def test_bad_inputs_name_what_is_expected(tiny_export, bad, match):
    for key in ("sm", "tflite"):
        fn = inference.load_exported(tiny_export[key]["path"])
        with pytest.raises(inference.InputError, match=match):
            fn(bad)


def test_failed_export_leaves_nothing_and_versions_are_never_touched(
        tiny_export, monkeypatch):
    base = tiny_export["base"]
    before = export.sha256(os.path.join(base, "1"))
    manifest = _text(os.path.join(base, "MANIFEST.json"))
    with pytest.raises(export.ExportError, match="exists"):
        export.export_run(tiny_export["workdir"], out=tiny_export["out"],
                          version=1, score=False)

    def broken(model, path, mc_samples=10, **kwargs):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt  # an interrupt in the middle of writing

    monkeypatch.setattr(export, "write_saved_model", broken)
    with pytest.raises(KeyboardInterrupt):
        export.export_run(tiny_export["workdir"], out=tiny_export["out"],
                          version=2, score=False)
    assert sorted(n for n in os.listdir(base) if not n.endswith(
        ".tflite")) == ["1", "MANIFEST.json"]
    assert export.sha256(os.path.join(base, "1")) == before
    assert _text(os.path.join(base, "MANIFEST.json")) == manifest


def test_keras_model_rebuilt_from_an_export_matches_it(tiny_export):
    _, model = export.keras_from_export(tiny_export["base"])
    x = tiny_export["images"][:8]
    sm = inference.load_exported(tiny_export["sm"]["path"])(x)
    probs = tf.nn.softmax(model(x)["logits"]).numpy()
    np.testing.assert_allclose(probs, sm["probabilities"], atol=1e-6)


def test_trained_updates_follow_the_weights_that_are_exported(
        mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    cfg = train_tiny(workdir, {**TINY, "train.steps": 3})
    assert training.trained_updates(workdir, cfg) == 3
    # Carried on to 6 steps: results.json speaks for the new end.
    longer = train_tiny(workdir, {**TINY, "train.steps": 6})
    assert training.trained_updates(workdir, longer) == 6
    # Without final weights (a run still going) the latest checkpoint's
    # optimizer step is the count, whatever the planned total.
    os.remove(os.path.join(workdir, "model.weights.h5"))
    assert training.trained_updates(workdir, longer) == 6
    assert training.trained_updates(workdir, cfg) == 6


def _split_counts(path):
    """num_split of every Split/SplitV op in the SavedModel's functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    library = proto.meta_graphs[0].graph_def.library
    return [node.attr["num_split"].i for fn in library.function
            for node in fn.node_def if node.op in ("Split", "SplitV")]


def test_rollout_chains_cut_the_batch_and_change_no_answer(tiny_export,
                                                          tmp_path):
    out = str(tmp_path)
    one = export.export_run(tiny_export["workdir"], out=out, name="one",
                            chains=1, score=False)
    three = export.export_run(tiny_export["workdir"], out=out, name="three",
                              chains=3, score=False)
    # The default export (the fixture) has 2 chains, in its manifest and
    # in its graph: the batch is cut into that many slices.
    assert tiny_export["sm"]["chains"] == 2
    assert (one["chains"], three["chains"]) == (1, 3)
    assert 2 in _split_counts(tiny_export["sm"]["path"])
    assert 3 in _split_counts(three["path"])
    assert 2 not in _split_counts(one["path"])
    signatures = [tf.saved_model.load(e["path"]).signatures
                  for e in (one, tiny_export["sm"], three)]
    # Batches smaller than, equal to, and not divisible by the chains.
    for n in (1, 2, 5, 64):
        x = tf.constant(tiny_export["images"][:n])
        outs = [s["serving_default"](images=x) for s in signatures]
        mc = [s["monte_carlo"](images=x, seed=tf.constant([5, 6]))
              for s in signatures]
        for got in outs[1:]:
            np.testing.assert_allclose(got["probabilities"],
                                       outs[0]["probabilities"], atol=1e-6)
            np.testing.assert_allclose(got["locations"], outs[0]["locations"],
                                       atol=1e-6)
        for got in mc[1:]:
            np.testing.assert_allclose(got["probabilities"],
                                       mc[0]["probabilities"], atol=1e-6)


def test_monte_carlo_signature_averages_the_seeded_rollouts(tiny_export):
    """The signature's answer, recomputed from the Keras model: M rollouts
    per image with noise N(0, 1) [B M, A, 2] drawn statelessly from the
    seed, softmax, mean over the M copies."""
    config, model = training.load_run(tiny_export["workdir"])
    m = config.train.mc_samples
    x = tiny_export["images"][:6]
    seed = tf.constant([7, 8])
    noise = tf.random.stateless_normal([6 * m, model.num_actions, 2], seed)
    out = model(x, sample=True, repeats=m, noise=noise)
    want = tf.nn.softmax(out["logits"]).numpy().reshape(6, m, 10).mean(1)
    got = tf.saved_model.load(tiny_export["sm"]["path"]).signatures[
        "monte_carlo"](images=tf.constant(x), seed=seed)
    np.testing.assert_allclose(got["probabilities"], want, atol=1e-6)
    np.testing.assert_allclose(got["locations"],
                               out["locations"].numpy()[::m], atol=1e-6)


@pytest.mark.parametrize("chains", [0, -1, 1.5, True])
def test_export_refuses_a_bad_chain_count(tiny_export, chains, tmp_path):
    with pytest.raises(export.ExportError, match="positive integer"):
        export.export_run(tiny_export["workdir"], out=str(tmp_path),
                          chains=chains, score=False)
    assert not os.listdir(tmp_path)


def test_cli_export_default_is_the_library_default():
    import inspect

    from ram_tf_cli.deploy import export as export_command

    option = next(p for p in export_command.params if p.name == "chains")
    library = inspect.signature(export.export_run).parameters
    # None: the library picks (DEFAULT_CHAINS, or 1 for an XLA export).
    assert option.default == library["chains"].default is None
    assert export.DEFAULT_CHAINS == 2
    option = next(p for p in export_command.params if p.name == "precision")
    assert tuple(option.type.choices) == export.EXPORT_PRECISIONS
    assert option.default == "float32"
