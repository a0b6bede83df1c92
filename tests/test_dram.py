"""DRAM and L-DRAM: routing of gradients, the location loss, label masks."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import nonzero

from ram_tf import config as config_lib
from ram_tf import datasets
from ram_tf import reinforce
from ram_tf.dram import DeepRecurrentAttentionModel

TINY = dict(glimpse_size=4, num_scales=2, num_glimpses=3, glimpse_hidden=8,
            location_hidden=8, glimpse_units=16, core_units=16, std=0.2,
            context_size=8, context_filters=(4, 4), context_kernels=(3, 3),
            seed=2)


def _model(**extra):
    model = DeepRecurrentAttentionModel(**{**TINY, **extra})
    model(tf.zeros([1, 16, 16, 1]))
    return model


def test_context_picks_the_first_location_and_it_is_an_action():
    model = _model()
    x = tf.random.uniform([3, 16, 16, 1])
    out = model(x)
    assert out["means"].shape == (3, 3, 2)  # l_0, l_1, l_2 are actions
    mu0 = model.location_net(model.context_net(x))
    np.testing.assert_allclose(out["locations"][:, 0], mu0, atol=1e-6)


def _groups(model):
    return {
        "context": model.context_net.trainable_variables,
        "glimpse": model.glimpse_net.trainable_variables,
        "bottom": model.core.trainable_variables,
        "top": model.top_core.trainable_variables,
        "location": model.location_net.trainable_variables,
        "baseline": model.baseline_net.trainable_variables,
        "action": model.action_net.trainable_variables,
    }


WHERE = {"context", "top", "location", "baseline"}
EVERY = WHERE | {"glimpse", "bottom"}


@pytest.mark.parametrize("scope,term,reached", [
    # "critic" (default): the baseline error trains the pathway that feeds
    # only the policy (context, top layer), REINFORCE the location network.
    ("critic", "reinforce", {"location"}),
    ("critic", "baseline_mse", WHERE - {"location"}),
    ("critic", "cross_entropy", {"glimpse", "bottom", "action"}),
    # "where": REINFORCE trains that pathway too, never the bottom layer.
    ("where", "reinforce", WHERE - {"baseline"}),
    ("where", "baseline_mse", WHERE - {"location"}),
    ("where", "cross_entropy", {"glimpse", "bottom", "action"}),
    # "location": RAM's routing, each head trains itself alone.
    ("location", "reinforce", {"location"}),
    ("location", "baseline_mse", {"baseline"}),
    ("location", "cross_entropy", {"glimpse", "bottom", "action"}),
    # "all": through r2 = LSTM2(r1) into everything below.
    ("all", "reinforce", EVERY - {"baseline"}),
    ("all", "baseline_mse", EVERY - {"location"}),
    ("all", "cross_entropy", {"glimpse", "bottom", "action"}),
])
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_gradient_routing(scope, term, reached, precision):
    model = _model(gradient_scope=scope, precision=precision)
    images = tf.random.uniform([4, 16, 16, 1])
    labels = tf.repeat(tf.constant([0, 1, 2, 3]), 2)
    with tf.GradientTape(persistent=True) as tape:
        out = model(images, sample=True, repeats=2)
        terms = reinforce.hybrid_loss(out["logits"], labels, out["means"],
                                      out["samples"], out["baselines"],
                                      model.std)
    for name, variables in _groups(model).items():
        assert nonzero(tape.gradient(terms[term], variables)) == (
            name in reached), (scope, term, name)


def test_ram_refuses_the_where_scope():
    from ram_tf.model import RecurrentAttentionModel

    with pytest.raises(ValueError, match="gradient_scope"):
        RecurrentAttentionModel(gradient_scope="where")
    with pytest.raises(config_lib.ConfigError, match="core_layers=2"):
        config_lib.resolve("ram", "cluttered60",
                           {"policy.gradient_scope": "where"})
    assert config_lib.resolve(
        "dram", "cluttered60").policy.gradient_scope == "critic"
    assert _model().gradient_scope == "critic"


def test_location_loss_matches_hand_computation():
    means = tf.constant([[[0.1, 0.2], [0.0, 0.0]],
                         [[0.5, -0.5], [1.0, 1.0]],
                         [[0.3, 0.3], [0.3, 0.3]]])
    target = tf.constant([[0.0, 0.0], [0.5, 0.5], [9.0, 9.0]])
    labelled = tf.constant([1.0, 1.0, 0.0])  # the third does not count
    want = ((0.01 + 0.04) + (0.0 + 1.0 + 0.25 + 0.25)) / 2
    got = reinforce.location_loss(means, target, labelled)
    assert float(got) == pytest.approx(want, rel=1e-6)
    none = reinforce.location_loss(means, target, tf.zeros([3]))
    assert float(none) == 0.0


def _train_terms(model, data):
    model.compile(optimizer="adam")
    return {k: float(v) for k, v in model.train_step(data).items()}


def test_ldram_with_no_labels_is_dram():
    data = {"image": tf.random.uniform([4, 16, 16, 1]),
            "label": tf.constant([0, 1, 2, 3]),
            "location": tf.random.uniform([4, 2], -1, 1),
            "labelled": tf.zeros([4])}
    dram_model = _model()
    ldram_model = _model(location_loss_weight=1.0)
    ldram_model.set_weights(dram_model.get_weights())
    dram = _train_terms(dram_model, data)
    ldram = _train_terms(ldram_model, data)
    assert ldram["location_loss"] == 0.0
    assert ldram["loss"] == pytest.approx(dram["loss"], rel=1e-6)
    data["labelled"] = tf.ones([4])
    assert _train_terms(_model(location_loss_weight=1.0),
                        data)["location_loss"] > 0


@pytest.mark.parametrize("scope", ["location", "critic", "where", "all"])
def test_location_loss_reaches_the_where_pathway(scope):
    model = _model(location_loss_weight=1.0, gradient_scope=scope)
    with tf.GradientTape(persistent=True) as tape:
        out = model(tf.random.uniform([2, 16, 16, 1]), sample=True,
                    repeats=2)
        loss = reinforce.location_loss(out["supervised"], tf.zeros([4, 2]),
                                       tf.ones([4]))
    groups = _groups(model)
    reached = {"context", "top", "location"} | (
        {"bottom", "glimpse"} if scope == "all" else set())
    for name, variables in groups.items():
        assert nonzero(tape.gradient(loss, variables)) == (
            name in reached), (scope, name)


def test_fixed_label_subset_is_the_same_across_restarts(mnist_dir):
    data = config_lib.resolve("ldram", "mnist28").data
    kw = dict(seed=3, label_fraction=0.25)
    a = list(datasets.train_dataset(data, 64, **kw).take(3))
    b = next(iter(datasets.train_dataset(data, 64, start_step=2, **kw)))
    np.testing.assert_array_equal(a[2]["labelled"], b["labelled"])
    share = np.mean(np.concatenate([x["labelled"] for x in a]))
    assert 0.1 < share < 0.4
    # The same digit keeps its flag in every pass: compare by image.
    full = datasets.train_dataset(data, 55_000, **kw)
    first, second = list(full.take(2))
    flags = {}
    for batch in (first, second):
        keys = [hash(img.tobytes()) for img in batch["image"].numpy()[:2000]]
        for k, f in zip(keys, batch["labelled"].numpy()[:2000]):
            assert flags.setdefault(k, f) == f


def test_per_batch_mask_changes_between_batches(mnist_dir):
    data = config_lib.resolve("ldram", "mnist28").data
    a, b = list(datasets.train_dataset(data, 256, seed=3, label_fraction=0.5,
                                       label_mask="per-batch").take(2))
    assert not np.array_equal(a["labelled"], b["labelled"])


def test_dram_from_its_class_fits_at_once_on_every_batch_form():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 4, size=8)
    for data in ({"image": x, "label": y}, (x, y)):
        model = DeepRecurrentAttentionModel(**TINY, num_classes=4,
                                            mc_samples=2)
        model.compile(optimizer="adam")  # never called by hand
        history = model.fit(tf.data.Dataset.from_tensor_slices(data)
                            .batch(4), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
    assert model.predict(x, verbose=0)["logits"].shape == (8, 4)


def test_ldram_names_the_missing_location_and_takes_it_in_y():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4, 16, 16, 1)).astype("float32")
    y = np.arange(4)
    model = DeepRecurrentAttentionModel(**TINY, location_loss_weight=1.0,
                                        mc_samples=2)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="'location'"):
        model.fit(x, y, verbose=0)
    # Refused before any computation: after compiling again (a failed
    # first trace leaves Keras's train function half made) it trains.
    model.compile(optimizer="adam")
    centres = rng.uniform(-1, 1, size=(4, 2)).astype("float32")
    logs = model.fit(x, {"label": y, "location": centres}, verbose=0)
    assert logs.history["location_loss"][0] > 0


def test_a_saved_dram_without_context_resize_resizes_bilinearly():
    model = _model()
    assert model.context_net.resize == "area"
    config = model.get_config()
    assert DeepRecurrentAttentionModel.from_config(
        config).context_net.resize == "area"
    del config["context_resize"]
    assert DeepRecurrentAttentionModel.from_config(
        config).context_net.resize == "bilinear"


@pytest.mark.parametrize("argument, value, message", [
    ("context_size", 2, "context_size=2"),
    ("context_size", 0, "context_size=0"),
    ("context_filters", (4, 0), r"context_filters=\[4, 0\]"),
    ("context_filters", 32, "one positive integer per conv layer.*"
                            "context_filters=32"),
    ("context_kernels", (3,), r"context_kernels=\[3\]"),
    ("context_resize", "nearest", "context_resize='nearest'"),
    ("location_loss_weight", -1.0, "location_loss_weight=-1.0"),
    ("num_glimpses", 0, "num_glimpses=0"),
])
def test_dram_constructor_names_the_impossible_argument(argument, value,
                                                        message):
    with pytest.raises(ValueError, match=message):
        DeepRecurrentAttentionModel(**{**TINY, argument: value})
