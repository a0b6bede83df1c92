"""Whole-model TFLite fp32 at batch 1: the file built with each glimpse
sensor, timed in one process (interleaved blocks), plus op counts.
  python benchmarks/ab/tflite_sensor_ab.py [--task translated60]
"""
import argparse
import os
import statistics
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("--task", default="translated60")
p.add_argument("--model", default="ram")
p.add_argument("--backends", nargs="*", default=["gather", "matmul"])
a = p.parse_args()
import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from ram_tf import config as C  # noqa: E402
from ram_tf import export  # noqa: E402
from ram_tf.model import build_model  # noqa: E402

cfg = C.resolve(a.model, a.task)
model = build_model(cfg)
n = cfg.data.canvas_size
model.input_hwc = (n, n, cfg.data.channels)
x = np.random.default_rng(0).random((1, n, n, cfg.data.channels)).astype(
    np.float32)
runners, outs = {}, {}
with tempfile.TemporaryDirectory() as tmp:
    for backend in a.backends:
        export.SENSOR_OF_FORMAT["tflite"] = backend
        copy = export.serving_model(model, "tflite")
        export.write_saved_model(copy, f"{tmp}/{backend}", 10)
        it = Interpreter(model_content=export.tflite_bytes(f"{tmp}/{backend}"),
                         num_threads=os.cpu_count())
        r = it.get_signature_runner("serving_default")
        outs[backend] = r(images=x)["probabilities"]
        runners[backend] = (it, r)
first = outs[a.backends[0]]
for b, o in outs.items():
    print(b, "max |p - p_first|", float(np.abs(o - first).max()))


def timed(r, iters=1000):
    t0 = time.perf_counter()
    for _ in range(iters):
        r(images=x)
    return (time.perf_counter() - t0) / iters * 1e3


for _, r in runners.values():
    timed(r, 100)
ts = {b: [] for b in runners}
for _ in range(7):
    for b, (_, r) in runners.items():
        ts[b].append(timed(r))
for b, (it, _) in runners.items():
    print(f"{b}: {len(it._get_ops_details())} ops, median "
          f"{statistics.median(ts[b]):.3f} ms/image, blocks "
          + " ".join(f"{t:.3f}" for t in ts[b]))
