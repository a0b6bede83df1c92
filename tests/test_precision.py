"""train.precision: bfloat16 matmuls against NumPy and Keras references, the
model under mixed_bfloat16, exports in float32, and the oneDNN switch."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import BF16_EMULATION_OK

from ram_tf import config as config_lib
from ram_tf import precision
from ram_tf import runtime
from ram_tf.builders import build_model
from ram_tf.dram import DeepRecurrentAttentionModel
from ram_tf.model import RecurrentAttentionModel


def to_bf16(a):
    """float32 -> the nearest bfloat16 (ties to even), as float32 (NumPy)."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def test_bf16_rounding_reference():
    # 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to even (1).
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, -2.5, 1e-3], np.float32)
    np.testing.assert_array_equal(
        to_bf16(x), tf.cast(tf.cast(x, tf.bfloat16), tf.float32).numpy())
    assert to_bf16(x)[1] == 1.0 and to_bf16(x)[2] == 1 + 2**-6


def test_bf16_matmul_matches_numpy_rounding():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 33)).astype(np.float32)
    w = rng.normal(size=(33, 5)).astype(np.float32)
    got = precision.matmul(tf.constant(x), tf.constant(w), "bfloat16")
    assert got.dtype == tf.float32
    # Operands rounded to 8 significant bits, the product exact, then
    # rounded once more; fp32 accumulation may move it by one bf16 step.
    want = to_bf16((to_bf16(x).astype(np.float64)
                    @ to_bf16(w).astype(np.float64)).astype(np.float32))
    np.testing.assert_allclose(got.numpy(), want, rtol=2**-7, atol=1e-6)
    exact = x.astype(np.float64) @ w
    assert np.abs(got.numpy() - exact).max() > 1e-4  # really bf16
    np.testing.assert_array_equal(
        precision.matmul(tf.constant(x), tf.constant(w), "float32").numpy(),
        tf.matmul(x, w).numpy())


def test_dense_matches_keras_dense():
    layer = keras.layers.Dense(6, "relu")
    x = tf.random.stateless_normal([5, 9], [1, 2])
    layer.build(x.shape)
    want = layer(x).numpy()
    np.testing.assert_allclose(precision.dense(layer, x, "float32"), want)
    got = precision.dense(layer, x, "bfloat16").numpy()
    np.testing.assert_allclose(got, want, atol=3e-2, rtol=2e-2)
    assert (got >= 0).all()  # the activation is applied


def test_lstm_step_matches_keras_lstm_cell():
    # The gate math (order i, f, g, o; sigmoid gates) of lstm_step is
    # checked in float32 against Keras's LSTMCell, an independent
    # implementation; bf16 then differs only by matmul rounding.
    cell = keras.layers.LSTMCell(8)
    x = tf.random.stateless_normal([4, 5], [3, 4])
    h = tf.random.stateless_normal([4, 8], [5, 6])
    c = tf.random.stateless_normal([4, 8], [7, 8])
    cell.build(x.shape)
    # A non-zero bias so that a wrong gate order would show.
    cell.bias.assign(tf.random.stateless_normal([32], [9, 9]))
    want_h, (_, want_c) = cell(x, [h, c])
    got_h, got_c = precision.lstm_step(cell, x, h, c, "float32")
    np.testing.assert_allclose(got_h, want_h, atol=1e-6)
    np.testing.assert_allclose(got_c, want_c, atol=1e-6)
    bf_h, bf_c = precision.lstm_step(cell, x, h, c, "bfloat16")
    assert bf_h.dtype == bf_c.dtype == tf.float32
    np.testing.assert_allclose(bf_h, want_h, atol=3e-2)
    np.testing.assert_allclose(bf_c, want_c, atol=3e-2)
    assert np.abs(bf_h - want_h).max() > 0


TINY = {"glimpse.num_glimpses": 3, "core.glimpse_hidden": 8,
        "core.location_hidden": 8, "core.glimpse_units": 16,
        "core.core_units": 16, "train.mc_samples": 2}


@pytest.mark.parametrize("model_name", ["ram", "dram"])
def test_mixed_bfloat16_model_is_the_float32_model_to_rounding(model_name):
    configs = [config_lib.resolve(model_name, "mnist28",
                                  {**TINY, "machine.precision": p})
               for p in ("float32", "mixed_bfloat16")]
    fp32, bf16 = (build_model(c) for c in configs)
    bf16.set_weights(fp32.get_weights())
    assert all(w.dtype == "float32" for w in bf16.weights)
    images = tf.random.stateless_uniform([6, 28, 28, 1], [0, 1])
    # One glimpse step at the same locations: the core outputs differ by
    # matmul rounding only. (Whole rollouts may not: the sensor cuts
    # windows at whole pixels, so a slightly moved l_t can see other
    # pixels; that is the policy's discontinuity, not an error.)
    location = tf.random.stateless_uniform([6, 2], [2, 3], -0.5, 0.5)
    steps = [m.step(images, location, m.begin(images, 1)[0])
             for m in (fp32, bf16)]
    for want, got in zip(steps[0][:2], steps[1][:2]):  # h_class, h_top
        assert got.dtype == tf.float32
        np.testing.assert_allclose(got, want, atol=0.02)
        assert np.abs(got - want).max() > 0  # really bf16
    # The first action (RAM: after the centre glimpse; DRAM: from the
    # float32 context network) and its baseline.
    want, got = fp32(images), bf16(images)
    np.testing.assert_allclose(got["means"][:, 0], want["means"][:, 0],
                               atol=0.02)
    np.testing.assert_allclose(got["baselines"][:, 0],
                               want["baselines"][:, 0], atol=0.02)


def test_precision_is_validated():
    with pytest.raises(config_lib.ConfigError, match="machine.precision.*"
                       "allowed: auto, float32, mixed_bfloat16"):
        config_lib.resolve("ram", "mnist28", {"machine.precision": "fp16"})


def test_export_of_a_bf16_run_computes_in_float32():
    from ram_tf import export

    config = config_lib.resolve("ram", "mnist28",
                                {**TINY, "machine.precision": "mixed_bfloat16"})
    model = build_model(config)
    model.input_hwc = (28, 28, 1)
    served = export.serving_model(model, "saved_model")
    assert served.matmul_dtype == "float32"
    assert served.glimpse_net.matmul_dtype == served.core.matmul_dtype == (
        "float32")
    # It answers as the float32 model with the same weights, not as the
    # bfloat16 one it was copied from.
    fp32 = build_model(config_lib.resolve(
        "ram", "mnist28", {**TINY, "machine.precision": "float32"}))
    fp32.set_weights(model.get_weights())
    images = tf.random.stateless_uniform([16, 28, 28, 1], [3, 4])
    want = fp32(images)["logits"].numpy()
    np.testing.assert_allclose(served(images)["logits"].numpy(), want,
                               atol=1e-5)
    assert np.abs(model(images)["logits"].numpy() - want).max() > 1e-4


_SMALL = dict(glimpse_size=4, num_scales=2, num_glimpses=3, glimpse_hidden=8,
              location_hidden=8, glimpse_units=16, core_units=16, seed=2)
_GLIMPSE_NET = {"fc_glimpse", "fc_location", "fc_what", "fc_where"}
_LSTM = {"kernel", "recurrent_kernel"}
# The model, and the kernels its serving copy freezes, layer by layer.
_SERVING_COPIES = {
    "ram": (lambda: RecurrentAttentionModel(**_SMALL),
            {"glimpse_net": _GLIMPSE_NET, "core": _LSTM}),
    "ram-rectifier": (
        lambda: RecurrentAttentionModel(**_SMALL, core_cell="rectifier"),
        {"glimpse_net": _GLIMPSE_NET, "core": {"fc_input", "fc_recurrent"}}),
    "dram": (lambda: DeepRecurrentAttentionModel(
        **_SMALL, context_size=8, context_filters=(4, 4),
        context_kernels=(3, 3)),
        {"glimpse_net": _GLIMPSE_NET, "core": _LSTM, "top_core": _LSTM}),
}


@pytest.mark.parametrize("name", sorted(_SERVING_COPIES))
def test_bfloat16_serving_copy_freezes_kernels_and_answers_as_bf16(name):
    """`ram-tf export --precision mixed_bfloat16`: the glimpse network's and
    every core layer's kernels become bfloat16 constants, and the copy
    answers as the bf16 model that casts its kernels in every call."""
    from ram_tf import export

    make, frozen = _SERVING_COPIES[name]
    model = make()
    model(tf.zeros([1, 16, 16, 1]))
    for v in model.weights:  # weights far from their initial values
        v.assign(tf.random.normal(v.shape, stddev=0.3, seed=5))
    model.input_hwc = (16, 16, 1)
    served = export.serving_model(model, precision="mixed_bfloat16")
    for layer, kernels in frozen.items():
        held = getattr(served, layer).frozen
        assert set(held) == kernels, layer
        assert all(k.dtype == tf.bfloat16 for k in held.values()), layer
    assert served.sensor.product_dtype == "bfloat16"
    reference = type(model).from_config(
        {**model.get_config(), "precision": "mixed_bfloat16"})
    reference(tf.zeros([1, 16, 16, 1]))
    reference.set_weights(model.get_weights())
    reference.sensor.product_dtype = "bfloat16"
    x = tf.random.uniform([5, 16, 16, 1], seed=6)
    np.testing.assert_allclose(served(x)["logits"], reference(x)["logits"],
                               atol=1e-6)
    # float32 weights stay the model's own: bf16 answers differ from them.
    assert not np.allclose(served(x)["logits"], model(x)["logits"],
                           atol=1e-6)


def test_cpu_info_reads_model_and_vector_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n"
                    "flags\t\t: fpu sse2 avx2 fma avx512f amx_bf16 amx_tile\n"
                    "processor\t: 1\nmodel name\t: Test CPU 9000\n")
    info = runtime.cpu_info(str(path))
    assert info == {"cpu": "Test CPU 9000",
                    "flags": ["avx2", "fma", "avx512f", "amx_bf16"]}
    assert runtime.has_native_bf16(info["flags"])
    assert not runtime.has_native_bf16(["avx2", "fma"])
    assert runtime.cpu_info(str(tmp_path / "missing"))["flags"] == []


def _onednn_after_prepare(env, precision="mixed_bfloat16", native=None):
    """TF_ENABLE_ONEDNN_OPTS after prepare_tensorflow(precision) in a fresh
    process (TensorFlow not loaded), then train.precision resolved there;
    `native` pins whether the CPU has bfloat16 units."""
    pin = ("" if native is None else
           f"runtime.has_native_bf16 = lambda flags=None: {native}; ")
    code = ("import ram_tf, os; from ram_tf import runtime; " + pin
            + f"runtime.prepare_tensorflow({precision!r}); "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], "
            f"runtime.resolve_precision({precision!r}))")
    env = {k: v for k, v in os.environ.items()
           if k != "TF_ENABLE_ONEDNN_OPTS"} | env
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_bf16_turns_onednn_on_unless_the_user_chose():
    assert _onednn_after_prepare({}) == "1 mixed_bfloat16"
    assert _onednn_after_prepare({"TF_ENABLE_ONEDNN_OPTS": "0"}) == (
        "0 mixed_bfloat16")


def test_auto_precision_is_bf16_only_with_native_units_and_onednn():
    # A CPU with AVX512-BF16 / AMX: oneDNN on, bfloat16 matmuls ...
    assert _onednn_after_prepare({}, "auto", native=True) == (
        "1 mixed_bfloat16")
    # ... unless the user keeps Eigen, which would emulate them.
    assert _onednn_after_prepare({"TF_ENABLE_ONEDNN_OPTS": "0"}, "auto",
                                 native=True) == "0 float32"
    # Without the units: float32, and ram_tf's Eigen default stays.
    assert _onednn_after_prepare({}, "auto", native=False) == "0 float32"
    # Explicit settings stand for themselves.
    assert _onednn_after_prepare({}, "float32", native=True) == "0 float32"


def test_auto_is_the_default_and_builds_what_it_resolves_to(monkeypatch):
    config = config_lib.resolve("ram", "mnist28", TINY)
    assert config.machine.precision == "auto"
    for native, onednn, gpus, dtype in ((True, True, 0, "bfloat16"),
                                        (True, False, 0, "float32"),
                                        (False, True, 0, "float32"),
                                        (True, True, 1, "float32")):
        monkeypatch.setattr(runtime, "has_native_bf16",
                            lambda flags=None, v=native: v)
        monkeypatch.setattr(runtime, "onednn_enabled", lambda v=onednn: v)
        monkeypatch.setattr(runtime, "visible_gpus", lambda v=gpus: v)
        model = build_model(config)
        assert model.core.matmul_dtype == dtype
        assert model.get_config()["precision"] == (
            "mixed_bfloat16" if dtype == "bfloat16" else "float32")


def test_bf16_with_onednn_off_warns():
    # TensorFlow already loaded with oneDNN off: too late to switch.
    code = ("import os, warnings; os.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'; "
            "import tensorflow; from ram_tf import runtime\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    runtime.prepare_tensorflow('mixed_bfloat16')\n"
            "    runtime.prepare_tensorflow('float32')\n"
            "print(runtime.onednn_enabled(), [str(x.message) for x in w])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("False [")
    assert out.count("TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow loads") == 1


@BF16_EMULATION_OK
def test_cli_trains_in_bf16_and_resumes_in_float32(mnist_dir, cache_dir,
                                                   tmp_path):
    from click.testing import CliRunner

    from ram_tf_cli.main import cli

    workdir = str(tmp_path / "run")
    args = ["train", "--task", "mnist28", "--workdir", workdir,
            "--steps-per-epoch", "2", "--batch-size", "4", "--mc-samples",
            "2", "--num-glimpses", "2", "--core-units", "8",
            "--glimpse-units", "8", "--verbose", "0"]
    runner = CliRunner()
    first = runner.invoke(cli, args + ["--steps", "2", "--precision",
                                       "mixed_bfloat16"])
    assert first.exit_code == 0, first.output
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    assert config["machine"]["precision"] == "mixed_bfloat16"
    again = runner.invoke(cli, args + ["--steps", "4", "--precision",
                                       "float32"])
    assert again.exit_code == 0, again.output
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert results["updates"] == 4
    assert results["precision"] == "float32"  # what computed the last part
