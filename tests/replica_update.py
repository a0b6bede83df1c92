"""One update of a tiny RAM on one device or on 2 replicas, for
test_distribute (run as a script: the CPU must be split into 2 logical
devices before TensorFlow's first op, so it needs a fresh process).

Usage: python replica_update.py REPLICAS JIT OUT.npz

Writes the loss terms fit logged and the change of every weight after one
plain SGD step of learning rate 1, which is minus the gradient (Adam's
first step would hide a gradient off by a constant factor).
"""

import os
import sys

os.environ["CUDA_VISIBLE_DEVICES"] = ""
replicas, jit, out = int(sys.argv[1]), sys.argv[2] == "jit", sys.argv[3]

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ram_tf import config as config_lib  # noqa: E402
from ram_tf import datasets  # noqa: E402
from ram_tf import distribute  # noqa: E402
from ram_tf.builders import build_model  # noqa: E402

config = config_lib.resolve("ram", "translated60", {
    "glimpse.num_glimpses": 3, "core.glimpse_hidden": 8,
    "core.location_hidden": 8, "core.glimpse_units": 16,
    "core.core_units": 16, "train.batch_size": 8, "train.mc_samples": 3,
    "machine.precision": "float32", "machine.chains": 1})
strategy = None
if replicas > 1:
    distribute.split_cpu(replicas)
    strategy = tf.distribute.MirroredStrategy(
        [f"/cpu:{i}" for i in range(replicas)])
keras.utils.set_random_seed(0)
with strategy.scope() if strategy else tf.name_scope("one_device"):
    model = build_model(config)
    model.chains = 1
    model.compile(optimizer=keras.optimizers.SGD(1.0), jit_compile=jit)
# The same weights in every process, whatever the strategy's initialisation.
for i, v in enumerate(model.trainable_variables):
    v.assign(np.random.default_rng(i).normal(0, 0.2, v.shape))
before = [v.numpy().copy() for v in model.trainable_variables]
batches = datasets.train_dataset(config.data, 8, seed=3)
logs = model.fit(batches, epochs=1, steps_per_epoch=1, verbose=0,
                 shuffle=False).history
np.savez(out, **{f"log_{k}": np.float64(v[0]) for k, v in logs.items()},
         **{f"delta_{i}": v.numpy() - b for i, (v, b) in
            enumerate(zip(model.trainable_variables, before))})
