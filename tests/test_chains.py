"""Rollout chains: the batch cut into slices computed concurrently gives the
numbers of one chain; the policy noise; the thread plan."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ram_tf import config as config_lib
from ram_tf import runtime
from ram_tf.dram import DeepRecurrentAttentionModel
from ram_tf.model import RecurrentAttentionModel

RAM = dict(glimpse_size=4, num_scales=2, num_glimpses=4, glimpse_hidden=8,
           location_hidden=8, glimpse_units=16, core_units=16, seed=1,
           mc_samples=3)
DRAM = dict(glimpse_size=4, num_scales=2, num_glimpses=3, glimpse_hidden=8,
            location_hidden=8, glimpse_units=16, core_units=16, std=0.2,
            context_size=8, context_filters=(4, 4), context_kernels=(3, 3),
            seed=2, mc_samples=3)
MODELS = {
    "ram": lambda: RecurrentAttentionModel(**RAM),
    "dram": lambda: DeepRecurrentAttentionModel(**DRAM),
    "ldram": lambda: DeepRecurrentAttentionModel(**DRAM,
                                                 location_loss_weight=1.0),
}


def _one_update(name, chains, data):
    """Logs and weights after one train_step from fixed initial weights."""
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    model(tf.zeros([1, 16, 16, 1]))
    model.chains = chains
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    logs = {k: float(v) for k, v in model.train_step(data).items()}
    return logs, [v.numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_chains_give_the_update_of_one_chain(name):
    # 5 images: slices of 3 + 2 (2 chains) and 2 + 2 + 1 (3 chains).
    data = {"image": tf.random.uniform([5, 16, 16, 1], seed=3),
            "label": tf.constant([0, 1, 2, 3, 4]),
            "location": tf.random.uniform([5, 2], -1, 1, seed=4),
            "labelled": tf.constant([1.0, 0.0, 1.0, 1.0, 0.0])}
    logs, weights = _one_update(name, 1, data)
    for chains in (2, 3):
        other_logs, other = _one_update(name, chains, data)
        assert other_logs == pytest.approx(logs, rel=1e-5, abs=1e-6)
        for a, b in zip(weights, other):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_rollouts_keep_the_row_order_of_call():
    model = MODELS["ram"]()
    x = tf.random.uniform([7, 16, 16, 1], seed=5)
    whole = model(x)
    noise = tf.random.normal([7 * 3, model.num_actions, 2], seed=6)
    whole_mc = model(x, sample=True, repeats=3, noise=noise)
    model.chains = 3
    for got, want in ((model.rollouts(x), whole),
                      (model.rollouts(x, sample=True, repeats=3,
                                      noise=noise), whole_mc)):
        for key in ("logits", "locations", "means", "samples"):
            np.testing.assert_allclose(got[key], want[key], atol=1e-6)
    # More chains than images: one slice per image, none empty.
    model.chains = 4
    np.testing.assert_allclose(model.rollouts(x[:2])["logits"],
                               whole["logits"][:2], atol=1e-6)
    # Under tf.function with an unknown batch size the slices are cut at
    # run time (here one is empty).
    f = tf.function(lambda x: model.rollouts(x)["logits"],
                    input_signature=[tf.TensorSpec([None, 16, 16, 1])])
    np.testing.assert_allclose(f(x[:3]), whole["logits"][:3], atol=1e-6)


def test_noise_is_the_standard_normal_of_each_action():
    model = MODELS["dram"]()  # l_0 is an action too: A = T
    x = tf.random.uniform([4, 16, 16, 1], seed=7)
    assert model.num_actions == 3
    noise = tf.random.normal([8, 3, 2], seed=8)
    out = model(x, sample=True, repeats=2, noise=noise)
    np.testing.assert_allclose(out["samples"],
                               out["means"] + model.std * noise, atol=1e-6)
    np.testing.assert_allclose(out["locations"],
                               np.clip(out["samples"], -1, 1), atol=0)


@pytest.mark.parametrize("setting, cores, gpus, plan", [
    (0, 2, 0, (2, 1)),  # automatic: 2 chains of one thread each
    (0, 8, 0, (2, 4)),
    (0, 1, 0, (1, 0)),  # one core: TensorFlow's own pool
    (0, 8, 1, (1, 0)),  # a GPU takes the whole batch
    (3, 8, 0, (3, 2)),
    (1, 8, 0, (1, 0)),
])
def test_plan_chains(setting, cores, gpus, plan):
    assert runtime.plan_chains(setting, cores, gpus) == plan


def _configure(code_before, setting):
    code = ("import tensorflow as tf\nfrom ram_tf import runtime\n"
            "runtime.usable_cores = lambda: 4\n" + code_before
            + f"chains, note = runtime.configure_chains({setting})\n"
            "print(chains, tf.config.threading"
            ".get_intra_op_parallelism_threads(), note)")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-c", code], env=env, text=True,
                          capture_output=True, check=True).stdout.strip()


def test_configure_chains_sizes_the_pool_before_the_first_op():
    assert _configure("", 0) == "2 2 None"
    assert _configure("", 4) == "4 1 None"
    assert _configure("", 1) == "1 0 None"


def test_configure_chains_after_the_first_op_says_what_it_did():
    late = "tf.constant(1.0) + 1\n"
    auto = _configure(late, 0)
    assert auto.startswith("1 0 1 rollout chain: TensorFlow already started")
    explicit = _configure(late, 2)
    assert explicit.startswith("2 0 2 rollout chains on all cores")
    assert "slower than 1 chain" in explicit


def test_chains_are_validated():
    with pytest.raises(config_lib.ConfigError, match="machine.chains"):
        config_lib.resolve("ram", "mnist28", {"machine.chains": -1})
    assert config_lib.resolve("ram", "mnist28").machine.chains == 0
