"""Where a RAM translated60 update spends its time: tf.profiler over 10
updates of the model step on a fixed batch, summed by op type.
  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/ab/profile_step.py mixed_bfloat16
  TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/ab/profile_step.py float32
Needs `pip install xprof` (not a ram_tf dependency) and, offline,
RAM_TF_MNIST_DIR. Times are thread time (two threads), per update."""
import collections
import glob
import json
import os
import sys
import tempfile

import ram_tf  # noqa: F401  (before TF: sets the oneDNN default)
import tensorflow as tf
from xprof.convert import raw_to_tool_data

from ram_tf import config as C, datasets
from ram_tf.model import build_model
from ram_tf.training import make_optimizer

precision = sys.argv[1]
cfg = C.resolve("ram", "translated60", {"train.precision": precision})
m = build_model(cfg)
m.compile(optimizer=make_optimizer(cfg.train))
batch = next(iter(datasets.train_dataset(
    cfg.data, 32, 0, mnist_dir=os.environ.get("RAM_TF_MNIST_DIR"))))
step = tf.function(m.train_step)
for _ in range(5):
    step(batch)["loss"].numpy()
logdir = tempfile.mkdtemp()
tf.profiler.experimental.start(logdir)
for _ in range(10):
    step(batch)["loss"].numpy()
tf.profiler.experimental.stop()
data, _ = raw_to_tool_data.xspace_to_tool_data(
    glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True),
    "framework_op_stats^", {})
table = json.loads(data)[0]
cols = [c["id"] for c in table["cols"]]
rows = [dict(zip(cols, [x.get("v") if x else None for x in r["c"]]))
        for r in table["rows"]]
time_of, count = collections.Counter(), collections.Counter()
for r in rows:
    time_of[r["type"]] += r["total_self_time"]
    count[r["type"]] += r["occurrences"]
print(precision, "oneDNN", os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
      "ms of thread time per update by op type (ops per update):")
for name, us in time_of.most_common(15):
    print(f"  {name:28s} {us / 10 / 1000:6.2f} ms  ({count[name] / 10:.0f})")
