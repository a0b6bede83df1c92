"""RecurrentAttentionModel: outputs, policy modes, shared first glimpse."""

import keras
import numpy as np
import tensorflow as tf

from ram_tf import config as config_lib
from ram_tf.model import RecurrentAttentionModel
from ram_tf.model import build_model

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
