"""A short DRAM run that prints, every --every updates, the running reward
and |l|, each loss term's gradient norm and the share of saturated policy
means (|mu| > 0.99): the evidence behind DRAM's default gradient scope
(README, "DRAM gradient routing"). E.g.
  python benchmarks/ab/dram_routing.py --set policy.gradient_scope='"all"'
Needs RAM_TF_MNIST_DIR offline.
"""
import argparse
import json
import os
import time

p = argparse.ArgumentParser()
p.add_argument("--task", default="cluttered60")
p.add_argument("--model", default="dram")
p.add_argument("--steps", type=int, default=1000)
p.add_argument("--every", type=int, default=100)
p.add_argument("--set", nargs="*", default=[])
a = p.parse_args()
import tensorflow as tf  # noqa: E402

from ram_tf import config as C  # noqa: E402
from ram_tf import datasets, reinforce  # noqa: E402
from ram_tf.model import build_model  # noqa: E402
from ram_tf.training import make_optimizer  # noqa: E402

overrides = {k: json.loads(v) for k, v in (kv.split("=") for kv in a.set)}
cfg = C.resolve(a.model, a.task, overrides)
print("gradient_scope", cfg.policy.gradient_scope, flush=True)
m = build_model(cfg)
m.compile(optimizer=make_optimizer(cfg.train))
ds = datasets.train_dataset(cfg.data, cfg.train.batch_size, 0,
                            mnist_dir=os.environ["RAM_TF_MNIST_DIR"])
step = tf.function(m.train_step)


@tf.function
def diagnose(data):
    M = m.mc_samples
    labels = tf.repeat(tf.cast(data["label"], tf.int32), M, axis=0)
    with tf.GradientTape(persistent=True) as tape:
        out = m(data["image"], training=True, sample=True, repeats=M)
        terms = reinforce.hybrid_loss(out["logits"], labels, out["means"],
                                      out["samples"], out["baselines"],
                                      m.std, m.reinforce_weight)
    res = {}
    for k in ("cross_entropy", "baseline_mse", "reinforce"):
        g = tape.gradient(terms[k], m.trainable_variables)
        res["grad_" + k] = tf.linalg.global_norm(
            [x for x in g if x is not None])
    res["saturated"] = tf.reduce_mean(
        tf.cast(tf.abs(out["means"]) > 0.99, tf.float32))
    return res


it = iter(ds)
t0 = time.time()
for i in range(1, a.steps + 1):
    batch = next(it)
    r = step(batch)  # running means since the start
    if i % a.every == 0:
        d = {k: float(v) for k, v in diagnose(batch).items()}
        print(f"update {i} ({time.time() - t0:.0f} s): "
              f"reward {float(r['reward']):.3f} "
              f"location_abs {float(r['location_abs']):.3f} "
              f"cross_entropy {float(r['cross_entropy']):.3f} | "
              + " ".join(f"{k} {v:.3g}" for k, v in d.items()), flush=True)
