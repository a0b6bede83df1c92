"""A/B in one process: a RAM train step with 1 vs 2 rollout chains
(`model.chains`), interleaved blocks of 10 updates on one fixed batch.
  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/ab/chains_ab.py \
      float32|mixed_bfloat16 INTRA [task]
INTRA is the intra-op pool (0: TensorFlow's default, every core per op;
1: one thread per op, what `ram_tf.cpu.configure_chains` sets for 2 chains
on 2 cores). Prints both medians and the per-pair ratios (2 chains / 1).
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

precision, intra = sys.argv[1], int(sys.argv[2])
task = sys.argv[3] if len(sys.argv) > 3 else "translated60"
if intra:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
cfg = C.resolve("ram", task, {"train.precision": precision})
ds = datasets.train_dataset(cfg.data, 32, 0,
                            mnist_dir=os.environ.get("RAM_TF_MNIST_DIR"))
batch = next(iter(ds))
fns = {}
for chains in (1, 2):
    m = build_model(cfg)
    m.chains = chains
    m.compile(optimizer=make_optimizer(cfg.train))
    step = tf.function(m.train_step)
    fns[chains] = (lambda step: lambda: step(batch)["loss"].numpy())(step)
    for _ in range(3):
        fns[chains]()
ts = {1: [], 2: []}
for _ in range(12):
    for chains, fn in fns.items():
        t0 = time.perf_counter()
        for _ in range(10):
            fn()
        ts[chains].append((time.perf_counter() - t0) / 10 * 1000)
ratios = [b / a for a, b in zip(ts[1], ts[2])]
print(task, precision, "intra", intra, "oneDNN",
      os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "ms/update 1 chain",
      f"{statistics.median(ts[1]):.1f}", "2 chains",
      f"{statistics.median(ts[2]):.1f}", "ratio median",
      f"{statistics.median(ratios):.3f}", [f"{r:.2f}" for r in ratios],
      flush=True)
