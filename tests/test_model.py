"""RecurrentAttentionModel: outputs, policy modes, shared first glimpse."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from ram_tf import config as config_lib
from ram_tf import cores
from ram_tf import reinforce
from ram_tf.builders import build_model
from ram_tf.dram import DeepRecurrentAttentionModel
from ram_tf.model import RecurrentAttentionModel

TINY = dict(glimpse_size=4, num_scales=2, num_glimpses=4, glimpse_hidden=8,
            location_hidden=8, glimpse_units=16, core_units=16, seed=1)


def test_output_shapes_and_deterministic_policy_is_repeatable():
    model = RecurrentAttentionModel(**TINY)
    x = tf.random.uniform([5, 20, 20, 1])
    a, b = model(x), model(x)
    assert a["logits"].shape == (5, 10)
    assert a["locations"].shape == (5, 4, 2)
    assert a["means"].shape == (5, 3, 2)
    assert a["baselines"].shape == (5, 3)
    np.testing.assert_array_equal(a["logits"], b["logits"])
    np.testing.assert_array_equal(a["locations"][:, 0], 0.0)  # centre
    # Deterministic: the used locations are the policy means.
    np.testing.assert_allclose(a["locations"][:, 1:], a["means"], atol=0)


def test_sampled_locations_are_clipped_draws_around_the_mean():
    model = RecurrentAttentionModel(**{**TINY, "num_glimpses": 2}, std=0.5)
    x = tf.random.uniform([400, 20, 20, 1])
    out = model(x, sample=True)
    draws = out["samples"].numpy()
    assert np.all(np.abs(out["locations"].numpy()) <= 1.0)
    np.testing.assert_allclose(out["locations"][:, 1], np.clip(draws[:, 0],
                                                               -1, 1))
    noise = (draws - out["means"].numpy()).ravel()
    assert abs(noise.std() - 0.5) < 0.05 and abs(noise.mean()) < 0.05


def test_mean_bound_scales_every_policy_mean_dram_first_one_included():
    # The same weights with a = 1 and a = 0.8: means and the deterministic
    # locations after the first differ by the factor a (the first glimpse
    # sees the same pixels, later ones do not, so compare mu_1 only).
    config = config_lib.resolve("dram", "translated60", {
        "glimpse.size": 6, "core.core_units": 16, "core.glimpse_units": 16,
        "core.glimpse_hidden": 8, "core.location_hidden": 8,
        "core.context_filters": (4,), "core.context_kernels": (3,)})
    full = build_model(config)
    bounded = build_model(dataclasses.replace(config, policy=(
        dataclasses.replace(config.policy, mean_bound=0.8))))
    bounded.set_weights(full.get_weights())
    x = tf.random.uniform([4, 60, 60, 1])
    a, b = full(x)["means"].numpy(), bounded(x)["means"].numpy()
    np.testing.assert_allclose(b[:, 0], 0.8 * a[:, 0], atol=1e-6)
    assert np.abs(bounded(x, sample=True)["means"]).max() <= 0.8
    assert bounded.get_config()["mean_bound"] == 0.8


def test_repeats_share_the_first_glimpse_without_changing_results():
    model = RecurrentAttentionModel(**TINY)
    x = tf.random.uniform([3, 20, 20, 1])
    shared = model(x, repeats=4)
    tiled = model(tf.repeat(x, 4, axis=0))
    np.testing.assert_allclose(shared["logits"], tiled["logits"], atol=1e-5)
    np.testing.assert_allclose(shared["locations"], tiled["locations"],
                               atol=1e-6)


def test_train_step_changes_weights_and_logs_every_term():
    model = RecurrentAttentionModel(**TINY, mc_samples=2)
    model(tf.zeros([1, 20, 20, 1]))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [v.numpy().copy() for v in model.trainable_variables]
    data = {"image": tf.random.uniform([4, 20, 20, 1]),
            "label": tf.constant([1, 2, 3, 4])}
    logs = model.train_step(data)
    assert set(logs) == {"loss", "cross_entropy", "baseline_mse",
                         "reinforce", "reward", "accuracy", "location_abs"}
    changed = [not np.array_equal(b, v.numpy())
               for b, v in zip(before, model.trainable_variables)]
    assert all(changed)


def test_get_config_round_trip_and_build_from_experiment_config():
    model = RecurrentAttentionModel(**TINY)
    clone = RecurrentAttentionModel.from_config(model.get_config())
    assert clone.get_config()["num_glimpses"] == 4
    cfg = config_lib.resolve("ram", "mnist28", {"core.core_units": 32})
    built = build_model(cfg)
    assert built.core.units == 32 and built.sensor.size == 8
    assert built.sensor.num_scales == 1


# Every constructor argument away from its default (and from the presets),
# RAM and DRAM: a setting get_config dropped would come back as the default.
_ROUND_TRIP = {
    "ram": {"glimpse.size": 5, "glimpse.num_scales": 2,
            "glimpse.num_glimpses": 3, "core.glimpse_hidden": 6,
            "core.location_hidden": 7, "core.glimpse_units": 9,
            "core.core_units": 10, "core.core_cell": "rectifier",
            "policy.std": 0.2, "policy.mean_bound": 0.7,
            "policy.initial_location": "random",
            "policy.reinforce_weight": 0.5, "policy.gradient_scope": "all",
            "train.mc_samples": 3, "train.seed": 5,
            "machine.backend": "gather", "machine.xla": False,
            "machine.precision": "float32"},
    "ldram": {"glimpse.size": 5, "glimpse.num_glimpses": 3,
              "core.glimpse_hidden": 6, "core.location_hidden": 7,
              "core.glimpse_units": 9, "core.core_units": 10,
              "core.context_size": 12, "core.context_filters": [3, 4],
              "core.context_kernels": [3, 3], "policy.std": 0.2,
              "policy.mean_bound": 0.7, "policy.gradient_scope": "where",
              "policy.location_loss_weight": 0.5,
              "policy.location_loss_decay": 0.9, "train.lr_decay_steps": 100,
              "train.mc_samples": 3, "machine.precision": "float32"},
}


@pytest.mark.parametrize("model_name", sorted(_ROUND_TRIP))
def test_get_config_round_trips_every_argument(model_name):
    from ram_tf.builders import model_kwargs

    cfg = config_lib.resolve(model_name, "mnist28", _ROUND_TRIP[model_name])
    kwargs = model_kwargs(cfg)
    model = build_model(cfg)
    saved = model.get_config()
    for key, value in kwargs.items():
        want = list(value) if isinstance(value, tuple) else value
        got = saved[key]
        assert (list(got) if isinstance(got, tuple) else got) == want, key
    clone = type(model).from_config(saved)
    assert clone.get_config() == saved
    images = tf.random.stateless_uniform([4, 28, 28, 1], [1, 2])
    clone(images)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(images)["logits"].numpy(),
                                  model(images)["logits"].numpy())


def test_rectifier_core_trains_and_round_trips():
    # Mnih et al.'s MNIST core: one state, h_t, and every weight trained.
    model = RecurrentAttentionModel(**TINY, core_cell="rectifier",
                                    mc_samples=2)
    images = tf.random.stateless_uniform([3, 20, 20, 1], [4, 5])
    model(images)
    assert len(model.begin(images, 1)[0]) == 1
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.numpy() for w in model.core.weights]
    model.train_step({"image": images, "label": tf.constant([1, 2, 3])})
    assert all(np.abs(w.numpy() - b).max() > 0
               for w, b in zip(model.core.weights, before))
    clone = RecurrentAttentionModel.from_config(model.get_config())
    assert isinstance(clone.core, cores.RectifierCoreNetwork)
    with pytest.raises(ValueError, match="rectifier core is RAM's"):
        DeepRecurrentAttentionModel(**TINY, core_cell="rectifier")


# -- Keras-style batches and sample weights ---------------------------------

def _fresh(**extra):
    keras.utils.set_random_seed(7)
    return RecurrentAttentionModel(**{**TINY, "mc_samples": 2, **extra})


def _step(model, data):
    model(tf.zeros([1, 20, 20, 1]))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    logs = {k: float(v) for k, v in model.train_step(data).items()}
    return logs, [v.numpy() for v in model.trainable_variables]


def test_tuple_batches_train_exactly_as_dict_batches():
    x = tf.random.uniform([4, 20, 20, 1], seed=3)
    y = tf.constant([1, 2, 3, 4], tf.int64)
    want_logs, want = _step(_fresh(), {"image": x, "label": y})
    for data in ((x, y), (x, y[:, None]), (x, y, tf.ones([4])),
                 {"image": x, "label": y, "sample_weight": tf.ones([4])}):
        logs, got = _step(_fresh(), data)
        assert logs == pytest.approx(want_logs, rel=1e-6)
        for a, b in zip(want, got):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_sample_weights_weight_each_rollout_in_the_hybrid_loss():
    # Two rollouts, one action each; rollout 0 right, rollout 1 wrong.
    logits = tf.constant([[2.0, 0.0], [2.0, 0.0]])
    labels = tf.constant([0, 1])
    means = tf.constant([[[0.0, 0.0]], [[0.0, 0.0]]])
    samples = tf.constant([[[0.1, 0.0]], [[0.0, 0.2]]])
    baselines = tf.constant([[0.5], [0.25]])
    std = 0.5
    w = tf.constant([3.0, 0.0])
    terms = reinforce.hybrid_loss(logits, labels, means, samples, baselines,
                                  std, 1.0, sample_weight=w)
    ce0 = np.log1p(np.exp(-2.0))  # -log softmax([2, 0])[0]
    log_pi0 = (-0.5 * (0.1 / std) ** 2 - 0.5 * (0.0 / std) ** 2
               - 2 * np.log(std * np.sqrt(2 * np.pi)))
    # Keras "sum_over_batch_size": sum_n w_n term_n / N, N = 2.
    assert float(terms["cross_entropy"]) == pytest.approx(3 * ce0 / 2)
    assert float(terms["baseline_mse"]) == pytest.approx(3 * 0.25 / 2)
    assert float(terms["reinforce"]) == pytest.approx(
        -3 * log_pi0 * (1 - 0.5) / 2, rel=1e-5)
    assert float(terms["reward"]) == 1.0  # weighted mean: rollout 0 only
    # All weights 1: the unweighted terms.
    ones = reinforce.hybrid_loss(logits, labels, means, samples, baselines,
                                 std, 1.0, sample_weight=tf.ones([2]))
    plain = reinforce.hybrid_loss(logits, labels, means, samples, baselines,
                                  std, 1.0)
    for name in plain:
        assert float(ones[name]) == pytest.approx(float(plain[name]))


def test_zero_weight_images_change_no_gradient():
    x = tf.random.uniform([4, 20, 20, 1], seed=4)
    y = tf.constant([1, 2, 3, 4])
    half = tf.constant([1.0, 1.0, 0.0, 0.0])
    # Images 2 and 3 weigh 0: replacing them changes nothing.
    other = tf.concat([x[:2], tf.random.uniform([2, 20, 20, 1], seed=5)], 0)
    _, a = _step(_fresh(), (x, y, half))
    _, b = _step(_fresh(), (other, tf.constant([1, 2, 7, 0]), half))
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)


def test_fit_evaluate_predict_on_numpy_arrays_and_tuple_datasets():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(8, 20, 20, 2)).astype("float32")
    y = rng.integers(0, 3, size=8)
    model = RecurrentAttentionModel(**TINY, num_classes=3, mc_samples=2)
    model.compile(optimizer="adam")  # never called by hand: fit builds it
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0,
                        sample_weight=np.linspace(0.5, 1.5, 8))
    assert np.isfinite(history.history["loss"]).all()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    model.fit(dataset, epochs=1, verbose=0)
    scores = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    # evaluate scores the deterministic policy, as predict answers.
    assert scores["accuracy"] == pytest.approx(np.mean(np.argmax(
        model.predict(x, batch_size=4, verbose=0)["logits"], -1) == y))
    out = model.predict(x, batch_size=4, verbose=0)
    assert out["logits"].shape == (8, 3)
    assert out["locations"].shape == (8, 4, 2)


def test_a_batch_without_labels_is_refused_by_name():
    model = _fresh()
    model(tf.zeros([1, 20, 20, 1]))
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"Missing \['label'\]"):
        model.train_step((tf.zeros([2, 20, 20, 1]),))
    with pytest.raises(ValueError, match="sample_weight"):
        model.train_step((tf.zeros([2, 20, 20, 1]), tf.constant([0, 1]),
                          tf.ones([2, 3])))
    with pytest.raises(ValueError, match="one-hot"):
        model.test_step((tf.zeros([2, 20, 20, 1]), tf.one_hot([0, 1], 10)))


# -- impossible arguments ------------------------------------------------------

@pytest.mark.parametrize("argument, value", [
    ("num_glimpses", 0), ("std", 0.0), ("std", -1), ("glimpse_size", 0),
    ("num_scales", 0), ("mc_samples", 0), ("core_units", 0),
    ("num_classes", 0), ("glimpse_size", 2.5),
    ("initial_location", "corner"), ("reinforce_weight", -1.0),
    ("mean_bound", 0.0), ("mean_bound", 1.2), ("mean_bound", "0.8"),
    ("core_cell", "gru"), ("xla_sensor", "yes"),
])
def test_constructor_names_the_impossible_argument(argument, value):
    with pytest.raises(ValueError, match=f"{argument}={value!r}"):
        RecurrentAttentionModel(**{**TINY, argument: value})


def test_a_glimpse_larger_than_the_image_fails_on_first_call():
    model = RecurrentAttentionModel(**{**TINY, "glimpse_size": 24})
    with pytest.raises(ValueError, match="glimpse_size=24 .* 20x20"):
        model(tf.zeros([1, 20, 20, 1]))
    with pytest.raises(ValueError, match="glimpse_size=24 .* 16x30"):
        RecurrentAttentionModel(**{**TINY, "glimpse_size": 24}).build(
            (None, 16, 30, 1))
    # At most the image: the coarser scales may reach beyond it (zeros).
    assert RecurrentAttentionModel(**{**TINY, "glimpse_size": 20})(
        tf.zeros([1, 20, 20, 1]))["logits"].shape == (1, 10)


def test_build_creates_every_weight_from_the_image_shape():
    model = RecurrentAttentionModel(**TINY)
    model.build((None, 20, 20, 3))
    assert model.built and all(layer.built for layer in model.layers)
    # k g^2 C = 2 * 16 * 3 inputs to the glimpse network.
    assert model.glimpse_net.fc_glimpse.kernel.shape == (96, 8)
    called = RecurrentAttentionModel(**TINY)
    called(tf.zeros([1, 20, 20, 3]))
    assert model.count_params() == called.count_params()


# -- checkpoints of runs written before keep restoring -----------------------

# The variables of `build_model` for cluttered60 ("ram"), in the order of
# `trainable_variables` (the optimizer's slots follow it) and under their
# tf.train.Checkpoint names: a run checkpointed by an earlier version
# resumes only while both stay as they are.
RAM_CHECKPOINT_VARIABLES = [
    ("glimpse_net/fc_glimpse/_kernel", (432, 128)),
    ("glimpse_net/fc_glimpse/bias", (128,)),
    ("glimpse_net/fc_location/_kernel", (2, 128)),
    ("glimpse_net/fc_location/bias", (128,)),
    ("glimpse_net/fc_what/_kernel", (128, 256)),
    ("glimpse_net/fc_what/bias", (256,)),
    ("glimpse_net/fc_where/_kernel", (128, 256)),
    ("glimpse_net/fc_where/bias", (256,)),
    ("core/cell/kernel", (256, 1024)),
    ("core/cell/recurrent_kernel", (256, 1024)),
    ("core/cell/bias", (1024,)),
    ("location_net/fc/_kernel", (256, 2)),
    ("location_net/fc/bias", (2,)),
    ("baseline_net/fc/_kernel", (256, 1)),
    ("baseline_net/fc/bias", (1,)),
    ("action_net/fc/_kernel", (256, 10)),
    ("action_net/fc/bias", (10,)),
]


def test_checkpoint_variables_keep_their_names_and_order(tmp_path):
    cfg = config_lib.resolve("ram", "cluttered60",
                             {"machine.precision": "float32"})
    model = build_model(cfg)
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    assert shapes == [s for _, s in RAM_CHECKPOINT_VARIABLES]
    # The i-th trainable variable holds i: the checkpoint name that holds i
    # is the i-th of the list, so two variables of one shape that swap
    # places (fc_what and fc_where, kernel and recurrent_kernel) fail here.
    for i, v in enumerate(model.trainable_variables):
        v.assign(tf.fill(v.shape, float(i)))
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    names = {name[len("model/"):-len(suffix)]
             for name, _ in tf.train.list_variables(path)
             if name.startswith("model/")}
    assert names == {name for name, _ in RAM_CHECKPOINT_VARIABLES}
    for i, (name, shape) in enumerate(RAM_CHECKPOINT_VARIABLES):
        value = tf.train.load_variable(path, f"model/{name}{suffix}")
        assert value.shape == shape
        assert np.all(value == i), name


def test_a_training_checkpoint_restores_into_a_new_model(tmp_path):
    def run_state():
        model = _fresh()
        model(tf.zeros([1, 20, 20, 1]))
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model, tf.train.Checkpoint(
            model=model, optimizer=model.optimizer,
            epoch=tf.Variable(0, dtype=tf.int64),
            seed_state=model.seed_generator.state)

    model, ckpt = run_state()
    model.fit(tf.random.uniform([4, 20, 20, 1]), tf.constant([0, 1, 2, 3]),
              epochs=1, verbose=0)
    path = ckpt.save(str(tmp_path / "ckpt"))
    fresh, again = run_state()
    fresh.optimizer.build(fresh.trainable_variables)
    status = again.restore(path)
    status.assert_existing_objects_matched()
    status.assert_consumed()
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(fresh.optimizer.iterations) == 1
