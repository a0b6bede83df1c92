"""A/B in one process: the export's deterministic forward (serving copy:
matmul sensor, no XLA, float32) at batch 256 with 1 vs 2 rollout chains,
interleaved blocks of 5 calls.
  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/ab/serving_chains_ab.py INTRA [task]
INTRA is the intra-op pool (0: TensorFlow's default, every core per op;
1: one thread per op, TF Serving's --tensorflow_intra_op_parallelism=1).
Prints images/s, medians of 10 blocks, and their ratio."""
# ruff: noqa: I001  (ram_tf first: it sets the oneDNN default for TF)
import statistics
import sys
import time

import ram_tf  # noqa: F401  (before TF: sets the oneDNN default)
import tensorflow as tf

from ram_tf import config as C
from ram_tf import export
from ram_tf.model import build_model

intra = int(sys.argv[1])
task = sys.argv[2] if len(sys.argv) > 2 else "translated60"
if intra:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
cfg = C.resolve("ram", task, {"train.precision": "float32"})
d = cfg.data
model = build_model(cfg)
model.input_hwc = (d.canvas_size, d.canvas_size, d.channels)
x = tf.random.uniform([256, d.canvas_size, d.canvas_size, 1], seed=1)
fns = {}
for chains in (1, 2):
    served = export.serving_model(model, chains=chains)
    fns[chains] = tf.function(lambda x, s=served: s.rollouts(x)["logits"])
    fns[chains](x)
rates = {1: [], 2: []}
for _ in range(10):
    for chains, fn in fns.items():
        t0 = time.perf_counter()
        for _ in range(5):
            fn(x).numpy()
        rates[chains].append(256 * 5 / (time.perf_counter() - t0))
one, two = statistics.median(rates[1]), statistics.median(rates[2])
print(task, "intra", intra, "images/s at batch 256: 1 chain", f"{one:.0f}",
      "2 chains", f"{two:.0f}", "ratio", f"{two / one:.2f}", flush=True)
