"""The checks of test_distribute that need the CPU split into 2 logical
devices, which must happen before TensorFlow's first op: run as a script,
in a fresh process, once for the whole module.

Usage: python distributed_checks.py OUT_DIR

Writes OUT_DIR/update_{one,jit,two}.npz: one update of a tiny RAM on one
device, on one device with the whole step XLA-compiled, and on 2 mirrored
replicas, from the same weights and batch: the loss terms fit logged and
the change of every weight after one plain SGD step of learning rate 1,
which is minus the gradient (Adam's first step would hide a gradient off
by a constant factor).
"""

import os
import sys

os.environ["CUDA_VISIBLE_DEVICES"] = ""
out_dir = sys.argv[1]

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ram_tf import config as config_lib  # noqa: E402
from ram_tf import datasets  # noqa: E402
from ram_tf import distribute  # noqa: E402
from ram_tf.builders import build_model  # noqa: E402

distribute.split_cpu(2)
config = config_lib.resolve("ram", "translated60", {
    "glimpse.num_glimpses": 3, "core.glimpse_hidden": 8,
    "core.location_hidden": 8, "core.glimpse_units": 16,
    "core.core_units": 16, "train.batch_size": 8, "train.mc_samples": 3,
    "machine.precision": "float32", "machine.chains": 1})


def update(strategy, jit):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(config)
        model.chains = 1
        model.compile(optimizer=keras.optimizers.SGD(1.0), jit_compile=jit)
    # The same weights in every mode, whatever the strategy's initialisation.
    for i, v in enumerate(model.trainable_variables):
        v.assign(np.random.default_rng(i).normal(0, 0.2, v.shape))
    before = [v.numpy().copy() for v in model.trainable_variables]
    batches = datasets.train_dataset(config.data, 8, seed=3)
    logs = model.fit(batches, epochs=1, steps_per_epoch=1, verbose=0,
                     shuffle=False).history
    return {**{f"log_{k}": np.float64(v[0]) for k, v in logs.items()},
            **{f"delta_{i}": v.numpy() - b for i, (v, b) in
               enumerate(zip(model.trainable_variables, before))}}


one_device = tf.distribute.get_strategy()  # the default: /cpu:0
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
for name, strategy, jit in (("one", one_device, False),
                            ("jit", one_device, True),
                            ("two", mirrored, False)):
    np.savez(os.path.join(out_dir, f"update_{name}.npz"),
             **update(strategy, jit))
