"""A/B in one process: the exported SavedModel (`ram-tf export`, 2 chains)
computing in float32 vs mixed_bfloat16 (`--precision`), both loaded from
disk, serving_default at batch 256 and 1, interleaved blocks.
  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/ab/serving_precision_ab.py INTRA [task]
INTRA: the intra-op pool (0: TensorFlow's default; 1: one thread per op,
TF Serving's --tensorflow_intra_op_parallelism=1). Random weights of the
initialised model; prints images/s (medians of 10 blocks), their ratio
and the largest probability difference."""
# ruff: noqa: I001  (ram_tf first: it sets the oneDNN default for TF)
import statistics
import sys
import tempfile
import time

import ram_tf  # noqa: F401  (before TF: sets the oneDNN default)
import numpy as np
import tensorflow as tf

intra = int(sys.argv[1])
task = sys.argv[2] if len(sys.argv) > 2 else "translated60"
if intra:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
from ram_tf import config as C  # noqa: E402
from ram_tf import export  # noqa: E402
from ram_tf import inference  # noqa: E402
from ram_tf.model import build_model  # noqa: E402

cfg = C.resolve("ram", task, {"train.precision": "float32"})
d = cfg.data
model = build_model(cfg)
model.input_hwc = (d.canvas_size, d.canvas_size, d.channels)
tmp = tempfile.mkdtemp()
fns = {}
for precision in export.EXPORT_PRECISIONS:
    served = export.serving_model(model, chains=export.DEFAULT_CHAINS,
                                  precision=precision)
    export.write_saved_model(served, f"{tmp}/{precision}")
    fns[precision] = inference.load_exported(f"{tmp}/{precision}")
rng = np.random.default_rng(1)
x = {n: rng.random((n, d.canvas_size, d.canvas_size, 1)).astype(np.float32)
     for n in (256, 1)}
p = [fn(x[256])["probabilities"] for fn in fns.values()]
diff = float(np.abs(p[0] - p[1]).max())
for n, calls in ((256, 5), (1, 100)):
    rates = {name: [] for name in fns}
    for name, fn in fns.items():
        fn(x[n])
    for _ in range(10):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(x[n])
            rates[name].append(n * calls / (time.perf_counter() - t0))
    a = statistics.median(rates["float32"])
    b = statistics.median(rates["mixed_bfloat16"])
    print(task, "intra", intra, f"batch {n}: images/s float32 {a:.0f}",
          f"mixed_bfloat16 {b:.0f}", "ratio", f"{b / a:.2f}",
          f"(max |p diff| {diff:.1e})", flush=True)
