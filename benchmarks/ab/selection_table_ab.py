"""A/B in one process (session 6): the matmul sensor's selection matrices
looked up in one constant table per scale and axis (`select`, kept then)
vs built from ranges and comparisons (`selection_matrices`, before),
interleaved blocks. Both are the session-6 sensor (`session6.py`, from
git); session 7 replaced the per-scale tables by one table of all scales
(`scale_table_ab.py`).
  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/ab/selection_table_ab.py serve INTRA
      the export's forward (serving copy, 2 chains, no XLA), batch 1 and 256
  python benchmarks/ab/selection_table_ab.py train INTRA [PRECISION]
      a translated60 train step (XLA sensor, 2 chains), 10 updates a block
INTRA is the intra-op pool (0: TensorFlow's default; 1: one thread per op,
as with 2 chains on 2 cores). Needs RAM_TF_MNIST_DIR offline for "train"."""
# ruff: noqa: I001  (ram_tf first: it sets the oneDNN default for TF)
import os
import statistics
import sys
import time

import ram_tf  # noqa: F401  (before TF: sets the oneDNN default)
import tensorflow as tf

from ram_tf import config as C
from ram_tf import datasets
from ram_tf import export
from ram_tf.glimpse import GlimpseSensor
from ram_tf.model import build_model
from ram_tf.training import make_optimizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import session6  # noqa: E402

glimpse = session6.glimpse()
GlimpseSensor._matmul = glimpse.GlimpseSensor._matmul  # session 6's

mode, intra = sys.argv[1], int(sys.argv[2])
precision = sys.argv[3] if len(sys.argv) > 3 else "float32"
if intra:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
cfg = C.resolve("ram", "translated60", {"train.precision": precision})
d = cfg.data
table = glimpse.select
variants = {"built": glimpse.selection_matrices, "table": table}
cases = {}  # (variant, label) -> (fn, images per call)
for name, fn in variants.items():
    glimpse.select = fn  # read when the graph is traced
    m = build_model(cfg)
    if mode == "serve":
        m.input_hwc = (d.canvas_size, d.canvas_size, d.channels)
        s = export.serving_model(m, chains=2)
        f = tf.function(lambda x, s=s: s.rollouts(x)["logits"])
        x = tf.random.uniform([256, d.canvas_size, d.canvas_size, 1], seed=1)
        for n in (1, 256):
            xs = x[:n]
            f(xs)
            cases[(name, f"batch {n}")] = (
                (lambda f, xs: lambda: f(xs).numpy())(f, xs), n)
    else:
        batch = next(iter(datasets.train_dataset(
            d, 32, 0, mnist_dir=os.environ.get("RAM_TF_MNIST_DIR"))))
        m.chains = 2
        m.compile(optimizer=make_optimizer(cfg.train))
        step = tf.function(m.train_step)
        for _ in range(3):
            step(batch)["loss"].numpy()
        cases[(name, "train step")] = (
            (lambda step: lambda: step(batch)["loss"].numpy())(step), 1)
glimpse.select = table
labels = sorted({label for _, label in cases})
for label in labels:
    per_call = {}
    reps = 100 if label == "batch 1" else (5 if label == "batch 256" else 10)
    times = {name: [] for name in variants}
    for _ in range(10):
        for name in variants:
            fn, n = cases[(name, label)]
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t0) / reps * 1000)
    ratios = [t / b for b, t in zip(times["built"], times["table"])]
    print(mode, label, precision, "intra", intra, "oneDNN",
          os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "ms per call: built",
          f"{statistics.median(times['built']):.2f}", "table",
          f"{statistics.median(times['table']):.2f}", "ratio (table/built)",
          f"{statistics.median(ratios):.3f}", flush=True)
