"""Prototype: one RAM translated60 train step under Keras mixed_bfloat16 (sensor,
heads and model in float32, glimpse network and LSTM in bf16), vs float32.
  TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/ab/bf16_step.py fp32
  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/ab/bf16_step.py bf16
Speed only: accuracy under bf16 is unchecked. Needs RAM_TF_MNIST_DIR."""
import os, sys, time, statistics, json
import tensorflow as tf
import keras
mode = sys.argv[1]
if mode == "bf16":
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
from ram_tf import config as C, datasets
from ram_tf.model import build_model, RecurrentAttentionModel
from ram_tf.training import make_optimizer
import ram_tf.model as M
cfg = C.resolve("ram", "translated60")
if mode == "bf16":
    orig_init = RecurrentAttentionModel.__init__
    def init(self, *a, **k):
        k["dtype"] = "float32"
        orig_init(self, *a, **k)
        for l in (self.sensor, self.location_net, self.baseline_net, self.action_net):
            l.dtype_policy = "float32"
            for sub in l._layers if hasattr(l, "_layers") else []:
                sub.dtype_policy = "float32"
    RecurrentAttentionModel.__init__ = init
    orig_core = M.networks.CoreNetwork.initial_state
    M.networks.CoreNetwork.initial_state = lambda self, b: [tf.zeros([b, self.units], tf.bfloat16)] * 2
m = build_model(cfg)
m.compile(optimizer=make_optimizer(cfg.train))
ds = datasets.train_dataset(cfg.data, 32, 0, mnist_dir=os.environ["RAM_TF_MNIST_DIR"])
batch = next(iter(ds))
step = tf.function(m.train_step)
fn = lambda: step(batch)["loss"].numpy()
fn(); fn()
ts = []
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(20): fn()
    ts.append((time.perf_counter() - t0) / 20 * 1000)
print(mode, os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "ms", f"{statistics.median(ts):.1f}", [f"{t:.0f}" for t in ts])
