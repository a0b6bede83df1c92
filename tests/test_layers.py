"""The layer contract of every sub-network (`ram_tf.networks`,
`ram_tf.cores`) and of the sensor: build from a shape, call, output shape,
get_config round trip, and the weight count against its formula."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ram_tf import cores
from ram_tf import networks
from ram_tf.glimpse import GlimpseSensor

B = 3


def _count(layer):
    return sum(math.prod(w.shape) for w in layer.weights)


def _shapes(x):
    """Shapes of a nest of tensors, or a nest of shapes, as lists of
    tuples."""
    if hasattr(x, "shape"):
        return tuple(x.shape)
    if all(d is None or isinstance(d, int) for d in x):
        return tuple(x)
    return [_shapes(item) for item in x]


# name -> (layer, input shape, inputs, call kwargs, weight count by hand)
def _cases():
    k, g, c = 2, 4, 3
    patches = (B, k, g, g, c)
    return {
        "glimpse": (
            networks.GlimpseNetwork(6, 5, 7, name="glimpse_network"),
            (patches, (B, 2)),
            (tf.random.uniform(patches), tf.random.uniform([B, 2], -1, 1)),
            {},
            (k * g * g * c + 1) * 6 + (2 + 1) * 5 + (6 + 1) * 7
            + (5 + 1) * 7),
        "core": (
            cores.CoreNetwork(8, name="core_network"), (B, 7),
            tf.random.uniform([B, 7]),
            {"states": [tf.zeros([B, 8]), tf.zeros([B, 8])]},
            4 * 8 * (7 + 8 + 1)),
        "rectifier_core": (
            cores.RectifierCoreNetwork(8, name="core_network"), (B, 7),
            tf.random.uniform([B, 7]), {"states": [tf.zeros([B, 8])]},
            8 * (7 + 8 + 1)),
        "location": (
            networks.LocationNetwork(name="location_network"), (B, 8),
            tf.random.uniform([B, 8]), {}, 2 * (8 + 1)),
        "location_bounded": (
            networks.LocationNetwork(0.8, name="location_network"), (B, 8),
            tf.random.uniform([B, 8]), {}, 2 * (8 + 1)),
        "baseline": (
            networks.BaselineNetwork(name="baseline_network"), (B, 8),
            tf.random.uniform([B, 8]), {}, 8 + 1),
        "action": (
            networks.ActionNetwork(5, name="action_network"), (B, 8),
            tf.random.uniform([B, 8]), {}, 5 * (8 + 1)),
        # 20x20x3 image resized to 10: conv 3x3 3->4, pool to 5; conv 5x5
        # 4->6, pool to 2; fc 2*2*6 -> 9.
        "context": (
            networks.ContextNetwork(10, (4, 6), (3, 5), 9,
                                    name="context_network"),
            (B, 20, 20, 3), tf.random.uniform([B, 20, 20, 3]), {},
            (9 * 3 + 1) * 4 + (25 * 4 + 1) * 6 + (2 * 2 * 6 + 1) * 9),
        "sensor": (
            GlimpseSensor(4, 2, name="glimpse_sensor"),
            ((B, 20, 20, 3), (B, 2)),
            (tf.random.uniform([B, 20, 20, 3]),
             tf.random.uniform([B, 2], -1, 1)),
            {}, 0),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_layer_builds_from_shapes_and_counts_its_weights(name):
    layer, input_shape, _, _, weights = _cases()[name]
    layer.build(input_shape)
    assert layer.built
    assert _count(layer) == weights
    assert len(layer.trainable_weights) == len(layer.weights)


@pytest.mark.parametrize("name", sorted(_cases()))
def test_layer_call_matches_compute_output_shape(name):
    layer, input_shape, inputs, kwargs, weights = _cases()[name]
    out = layer(inputs, **kwargs)
    assert _shapes(out) == _shapes(layer.compute_output_shape(input_shape))
    assert _count(layer) == weights  # building by calling: same weights
    assert all(np.all(np.isfinite(t)) for t in tf.nest.flatten(out))


@pytest.mark.parametrize("name", sorted(_cases()))
def test_layer_config_round_trip(name):
    layer = _cases()[name][0]
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert config["name"] == layer.name


def test_layer_built_in_a_traced_function_has_static_weights():
    # DRAM fitted straight from its class builds ContextNetwork inside
    # the traced train step, with an unknown batch size.
    layer = networks.ContextNetwork(8, (4,), (3,), 5)
    fn = tf.function(layer, input_signature=[
        tf.TensorSpec([None, 12, 12, 1], tf.float32)])
    assert fn(tf.zeros([2, 12, 12, 1])).shape == (2, 5)
    assert layer.fc.kernel.shape == (4 * 4 * 4, 5)


@pytest.mark.parametrize("bound", [1.0, 0.8])
def test_location_network_is_a_bounded_tanh(bound):
    # mu = a tanh(h W + b) in NumPy; large inputs saturate at +-a.
    layer = networks.LocationNetwork(bound)
    h = 30 * np.random.default_rng(1).normal(size=(64, 5)).astype("float32")
    mu = layer(h).numpy()
    w, b = (v.numpy() for v in layer.fc.weights)
    # float32 sums of five terms of size ~30 round to ~1e-5 before tanh.
    want = bound * np.tanh(h.astype(np.float64) @ w + b)
    np.testing.assert_allclose(mu, want, atol=2e-5)
    assert np.abs(mu).max() <= bound and np.abs(mu).max() > 0.99 * bound


def _relu(x):
    return np.maximum(x, 0)


def _dense(layer, x):
    kernel, bias = (v.numpy() for v in layer.weights)
    return x @ kernel + bias


def test_glimpse_network_computes_what_and_where():
    # g = ReLU(W_what ReLU(W_g rho) + W_where ReLU(W_l l)), Mnih et al.
    # 2014 eq. for the glimpse network, in NumPy; biases made non-zero.
    rng = np.random.default_rng(2)
    layer = networks.GlimpseNetwork(6, 5, 7)
    patches = rng.normal(size=(4, 2, 3, 3, 1)).astype("float32")
    loc = rng.uniform(-1, 1, size=(4, 2)).astype("float32")
    layer((patches, loc))
    for v in layer.weights:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    h_g = _relu(_dense(layer.fc_glimpse, patches.reshape(4, -1)))
    h_l = _relu(_dense(layer.fc_location, loc))
    want = _relu(_dense(layer.fc_what, h_g) + _dense(layer.fc_where, h_l))
    np.testing.assert_allclose(layer((patches, loc)).numpy(), want,
                               rtol=1e-5, atol=1e-5)
    assert (want == 0).any() and (want > 0).any()  # both sides of ReLU


def _conv_same(x, kernel, bias):
    """Cross-correlation with zero "same" padding, odd kernel, stride 1."""
    k = kernel.shape[0]
    pad = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + kernel.shape[-1:], np.float64)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = np.einsum("bhwc,hwcf->bf",
                                     pad[:, i:i + k, j:j + k], kernel)
    return out + bias


def _max_pool2(x):
    b, h, w, c = x.shape
    x = x[:, :h // 2 * 2, :w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def test_context_network_is_resize_convs_pools_and_a_relu_layer():
    # Ba et al. 2015's coarse view in NumPy: an exact halving in bilinear
    # with half-pixel centres is the mean of 2x2 blocks; then per layer a
    # ReLU "same" convolution and 2x2 max pooling (floor: 10 -> 5 -> 2);
    # then ReLU(FC) on the row-major flattening.
    rng = np.random.default_rng(3)
    layer = networks.ContextNetwork(10, (4, 6), (3, 5), 9)
    images = rng.uniform(size=(3, 20, 20, 2)).astype("float32")
    layer(images)
    for v in layer.weights:
        v.assign(rng.normal(size=v.shape).astype("float32") * 0.5)
    x = images.reshape(3, 10, 2, 10, 2, 2).mean(axis=(2, 4))
    for conv in layer.convs:
        kernel, bias = (v.numpy() for v in conv.weights)
        x = _max_pool2(_relu(_conv_same(x, kernel, bias)))
    assert x.shape == (3, 2, 2, 6)
    want = _relu(_dense(layer.fc, x.reshape(3, -1)))
    np.testing.assert_allclose(layer(images).numpy(), want,
                               rtol=1e-4, atol=1e-4)
    assert (want > 0).any()


def test_area_context_resize_is_the_mean_of_every_block():
    # 50 -> 10: k = 5, the means of 5x5 blocks, and bilinear 10 -> 10 is
    # the identity. 23 -> 10: k = 2, the means of 2x2 blocks of the first
    # 22 rows and columns (11 x 11), then bilinear 11 -> 10.
    rng = np.random.default_rng(5)
    area = networks.ContextNetwork(10, (4,), (3,), 6)
    bilinear = networks.ContextNetwork(10, (4,), (3,), 6, resize="bilinear")
    x = rng.uniform(size=(2, 50, 50, 1)).astype("float32")
    np.testing.assert_allclose(
        area.shrink(x).numpy(),
        x.reshape(2, 10, 5, 10, 5, 1).mean(axis=(2, 4)), atol=1e-6)
    # Bilinear alone, half-pixel centres: output i sits on input pixel
    # (i + 0.5) 5 - 0.5 = 5i + 2 and reads it alone, 1 pixel in 25.
    np.testing.assert_allclose(bilinear.shrink(x).numpy(),
                               x[:, 2::5, 2::5], atol=1e-6)
    y = rng.uniform(size=(2, 23, 23, 1)).astype("float32")
    blocks = y[:, :22, :22].reshape(2, 11, 2, 11, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(
        area.shrink(y).numpy(),
        tf.image.resize(blocks, [10, 10], "bilinear").numpy(), atol=1e-6)


def test_area_context_network_converts_to_tflite_builtins(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from ram_tf.tflite_export import tflite_bytes

    layer = networks.ContextNetwork(10, (4,), (3,), 6)
    images = np.random.default_rng(7).uniform(
        size=(1, 43, 43, 1)).astype("float32")  # k = 4, then 10 -> 10
    layer(images)
    archive = keras.export.ExportArchive()  # tracks Keras 3 variables
    archive.track(layer)
    archive.add_endpoint("serving_default", lambda x: {"context": layer(x)},
                         [tf.TensorSpec([1, 43, 43, 1], tf.float32)])
    archive.write_out(str(tmp_path), verbose=False)
    flatbuffer = tflite_bytes(str(tmp_path))  # builtins only, or it raises
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, layer(images).numpy(), atol=1e-5)


def test_area_context_sees_every_digit_on_a_200_canvas():
    # A 28x28 field of 2-pixel strokes at 200 random places on a 200x200
    # canvas, shrunk to 24x24: the ink that reaches the context (sum x
    # (200 / 24)^2) is all of it under "area", and under bilinear alone
    # nothing at all for some placements (its samples are 8.3 pixels apart).
    digit = np.zeros([28, 28], np.float32)
    digit[4:24, 13:15] = digit[13:15, 6:22] = 1.0
    rng = np.random.default_rng(6)
    canvases = np.zeros([200, 200, 200, 1], np.float32)
    for canvas, (y, x) in zip(canvases, rng.integers(0, 172, (200, 2))):
        canvas[y:y + 28, x:x + 28, 0] = digit
    kept = {}
    for resize in ("area", "bilinear"):
        layer = networks.ContextNetwork(24, (4,), (3,), 6, resize=resize)
        shrunk = layer.shrink(canvases).numpy()
        kept[resize] = shrunk.sum(axis=(1, 2, 3)) * (200 / 24) ** 2 / (
            digit.sum())
    assert kept["area"].min() > 0.9
    assert (kept["bilinear"] < 0.01).sum() >= 5


def test_baseline_and_action_networks_are_one_linear_layer():
    rng = np.random.default_rng(4)
    h = rng.normal(size=(5, 8)).astype("float32")
    baseline, action = networks.BaselineNetwork(), networks.ActionNetwork(3)
    baseline(h), action(h)
    for v in baseline.weights + action.weights:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    np.testing.assert_allclose(baseline(h).numpy(),
                               _dense(baseline.fc, h)[:, 0], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(action(h).numpy(), _dense(action.fc, h),
                               rtol=1e-5, atol=1e-5)


def test_core_network_computes_one_lstm_step():
    # z = x W + h U + b; i, f, g, o = split(z); c' = s(f) c + s(i) tanh(g);
    # h' = s(o) tanh(c'), checked in NumPy.
    layer = cores.CoreNetwork(3)
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    h0 = np.full((2, 3), 0.5, "float32")
    c0 = np.full((2, 3), -0.2, "float32")
    h, (h_again, c) = layer(x, [h0, c0])
    w, u, b = (v.numpy() for v in layer.cell.weights)
    z = x @ w + h0 @ u + b
    i, f, g, o = np.split(z, 4, axis=1)
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c_want = s(f) * c0 + s(i) * np.tanh(g)
    np.testing.assert_allclose(c, c_want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, s(o) * np.tanh(c_want), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(h, h_again)


def test_rectifier_core_computes_relu_of_input_and_recurrence():
    # Mnih et al. 2014: h_t = Rect(Linear(h_{t-1}) + Linear(g_t)), one bias,
    # checked in NumPy; bfloat16 matmul operands change it by rounding only.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5)).astype("float32")
    h0 = rng.normal(size=(4, 3)).astype("float32")
    layer = cores.RectifierCoreNetwork(3)
    h, (h_again,) = layer(x, [h0])
    w, b = (v.numpy() for v in layer.fc_input.weights)
    (u,) = (v.numpy() for v in layer.fc_recurrent.weights)
    want = np.maximum(x @ w + h0 @ u + b, 0)
    assert (want == 0).any() and (want > 0).any()  # both sides of the ReLU
    np.testing.assert_allclose(h, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(h, h_again)
    bf16 = cores.RectifierCoreNetwork(3, matmul_dtype="bfloat16")
    bf16.build((4, 5))
    bf16.set_weights(layer.get_weights())
    got, _ = bf16(x, [h0])
    np.testing.assert_allclose(got, want, atol=0.05)
    assert np.abs(got - want).max() > 0  # really bf16
    np.testing.assert_array_equal(layer.initial_state(2)[0], np.zeros((2, 3)))


@pytest.mark.parametrize("make, message", [
    (lambda: cores.RectifierCoreNetwork(units=0), "units=0"),
    (lambda: networks.GlimpseNetwork(glimpse_hidden=0), "glimpse_hidden=0"),
    (lambda: cores.CoreNetwork(units=-4), "units=-4"),
    (lambda: cores.CoreNetwork(8, matmul_dtype="float16"),
     "matmul_dtype='float16'"),
    (lambda: networks.ActionNetwork(num_classes=0), "num_classes=0"),
    (lambda: networks.ContextNetwork(size=2, filters=(4, 4),
                                     kernels=(3, 3)), "size=2"),
    (lambda: networks.ContextNetwork(filters=(4,), kernels=(3, 3)),
     "kernels=[3, 3]"),
    (lambda: networks.ContextNetwork(resize="nearest"), "resize='nearest'"),
])
def test_layers_refuse_impossible_arguments(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        make()


def test_glimpse_network_gradient_graph_optimizes_cleanly_with_onednn():
    """A training step's graph through the glimpse network, under oneDNN
    kernels (the default on bf16 CPUs) in a fresh process: Grappler's
    remapper once fused its output ReLU into a node with no op, and every
    RAM and DRAM run logged `function_optimizer failed` errors."""
    import os
    import subprocess
    import sys

    script = (
        "import tensorflow as tf\n"
        "from ram_tf.networks import GlimpseNetwork\n"
        "layer = GlimpseNetwork(16, 8, 32)\n"
        "patches = tf.random.normal([8, 2, 4, 4, 1])\n"
        "loc = tf.random.uniform([8, 2], -1, 1)\n"
        "layer((patches, loc))\n"
        "@tf.function\n"
        "def step(patches, loc):\n"
        "    with tf.GradientTape() as tape:\n"
        "        loss = tf.reduce_sum(layer((patches, loc)) ** 2)\n"
        "    return tape.gradient(loss, layer.trainable_variables)\n"
        "print(sum(float(tf.reduce_sum(g)) for g in step(patches, loc)))\n")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "0"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "oneDNN custom operations are on" in run.stderr  # kernels used
    for error in ("function_optimizer failed", "empty op name",
                  "does not specify an operation"):
        assert error not in run.stderr, run.stderr
