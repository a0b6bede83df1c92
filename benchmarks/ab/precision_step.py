"""A/B: one RAM train step (translated60 or cluttered100, fixed batch) under
train.precision float32 vs mixed_bfloat16, in one process per setting.
  TF_ENABLE_ONEDNN_OPTS=0|1 python benchmarks/ab/precision_step.py \
      float32|mixed_bfloat16 [task] [model]
Prints the median ms per update over 5 repeats of 20 updates, and the spread.
Needs RAM_TF_MNIST_DIR offline."""
import os
import statistics
import sys
import time

import ram_tf  # noqa: F401  (before TF: sets the oneDNN default)
import tensorflow as tf

from ram_tf import config as C, datasets
from ram_tf.model import build_model
from ram_tf.training import make_optimizer

precision = sys.argv[1]
task = sys.argv[2] if len(sys.argv) > 2 else "translated60"
model_name = sys.argv[3] if len(sys.argv) > 3 else "ram"
cfg = C.resolve(model_name, task, {"train.precision": precision})
m = build_model(cfg)
m.compile(optimizer=make_optimizer(cfg.train))
ds = datasets.train_dataset(cfg.data, 32, 0,
                            mnist_dir=os.environ.get("RAM_TF_MNIST_DIR"))
batch = next(iter(ds))
step = tf.function(m.train_step)
fn = lambda: step(batch)["loss"].numpy()  # noqa: E731
for _ in range(3):
    fn()
ts = []
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(20):
        fn()
    ts.append((time.perf_counter() - t0) / 20 * 1000)
print(model_name, task, precision, "oneDNN",
      os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "ms/update",
      f"{statistics.median(ts):.1f}", [f"{t:.0f}" for t in ts], flush=True)
