"""A/B in one process: the matmul sensor's selection matrices from one
table of all scales (`glimpse.lookup`, one gather per glimpse, session 7)
vs one table per scale and axis (session 6: three corners and six gathers
per glimpse), in the export's deterministic forward (float32, no XLA,
2 chains) at batch 256 and 1, interleaved blocks.
  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/ab/scale_table_ab.py INTRA [task]
INTRA: the intra-op pool (0: TensorFlow's default; 1: one thread per op).
The session-6 sensor is read from git (`session6.py`)."""
# ruff: noqa: I001  (ram_tf first: it sets the oneDNN default for TF)
import os
import statistics
import sys
import time

import ram_tf  # noqa: F401  (before TF: sets the oneDNN default)
import tensorflow as tf

intra = int(sys.argv[1])
task = sys.argv[2] if len(sys.argv) > 2 else "translated60"
if intra:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
from ram_tf import config as C  # noqa: E402
from ram_tf import export  # noqa: E402
from ram_tf.glimpse import GlimpseSensor  # noqa: E402
from ram_tf.model import build_model  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import session6  # noqa: E402

old = session6.glimpse()

cfg = C.resolve("ram", task, {"train.precision": "float32"})
d = cfg.data
model = build_model(cfg)
model.input_hwc = (d.canvas_size, d.canvas_size, d.channels)
served = export.serving_model(model, chains=2)
new_matmul = GlimpseSensor._matmul
fns = {}
x = {n: tf.random.uniform([n, d.canvas_size, d.canvas_size, 1], seed=1)
     for n in (256, 1)}
for name, impl in (("per_scale", old.GlimpseSensor._matmul),
                   ("one_table", new_matmul)):
    GlimpseSensor._matmul = impl  # read when the graph is traced
    fn = tf.function(lambda x: served.rollouts(x)["logits"])
    for n in x:
        fn(x[n])
    fns[name] = fn
GlimpseSensor._matmul = new_matmul
out = {n: [fn(x[256]).numpy() for fn in fns.values()] for n in (256,)}
diff = float(abs(out[256][0] - out[256][1]).max())
for n, calls in ((256, 5), (1, 100)):
    rates = {name: [] for name in fns}
    for _ in range(10):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(x[n]).numpy()
            rates[name].append(n * calls / (time.perf_counter() - t0))
    a = statistics.median(rates["per_scale"])
    b = statistics.median(rates["one_table"])
    print(task, "intra", intra, f"batch {n}: images/s per-scale tables",
          f"{a:.0f}", "one table", f"{b:.0f}", "ratio", f"{b / a:.2f}",
          f"(max |logit diff| {diff:.1e})", flush=True)
