"""Time one train_step (or inference) under settings from the command line.

The A/B tool behind the README "Speed" decisions: run it in pairs, e.g.
  TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/ab/step_ab.py --task cluttered100
  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/ab/step_ab.py --task cluttered100
  python benchmarks/ab/step_ab.py --set glimpse.backend=\"gather\"
with training runs paused. Needs RAM_TF_MNIST_DIR offline.
"""
import argparse
import json
import os
import statistics
import time

p = argparse.ArgumentParser()
p.add_argument("--intra", type=int, default=0)
p.add_argument("--inter", type=int, default=0)
p.add_argument("--task", default="translated60")
p.add_argument("--model", default="ram")
p.add_argument("--set", nargs="*", default=[])
p.add_argument("--iters", type=int, default=20)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--infer", action="store_true")
p.add_argument("--infer-batch", type=int, default=256)
p.add_argument("--policy", default="")
a = p.parse_args()
import tensorflow as tf

if a.intra: tf.config.threading.set_intra_op_parallelism_threads(a.intra)
if a.inter: tf.config.threading.set_inter_op_parallelism_threads(a.inter)
import keras

if a.policy: keras.mixed_precision.set_global_policy(a.policy)
from ram_tf import config as C
from ram_tf import datasets
from ram_tf.model import build_model
from ram_tf.training import make_optimizer

ov = {}
for kv in a.set:
    k, v = kv.split("=")
    ov[k] = json.loads(v)
cfg = C.resolve(a.model, a.task, ov)
m = build_model(cfg)
m.compile(optimizer=make_optimizer(cfg.train), jit_compile=cfg.train.jit_compile)
ds = datasets.train_dataset(cfg.data, cfg.train.batch_size, 0, mnist_dir=os.environ["RAM_TF_MNIST_DIR"])
batch = next(iter(ds))
if a.infer:
    x = tf.repeat(batch["image"][:1], a.infer_batch, 0)
    f = tf.function(lambda x: m(x)["logits"])
    fn = lambda: f(x).numpy()
else:
    step = tf.function(m.train_step, jit_compile=cfg.train.jit_compile)
    fn = lambda: step(batch)["loss"].numpy()
fn(); fn()
ts = []
for _ in range(a.repeats):
    t0 = time.perf_counter()
    for _ in range(a.iters): fn()
    ts.append((time.perf_counter() - t0) / a.iters * 1000)
print(json.dumps({"args": vars(a), "ms": statistics.median(ts), "min": min(ts), "max": max(ts)}))
