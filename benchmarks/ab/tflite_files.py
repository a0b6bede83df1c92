"""Ops and ms per batch-1 invoke of .tflite files given as arguments, e.g.
  python benchmarks/ab/tflite_files.py exported_models/ram_translated60/*.tflite"""
import os, sys, time, statistics
import numpy as np
from ai_edge_litert.interpreter import Interpreter
x = np.random.default_rng(0).random((1, 60, 60, 1)).astype(np.float32)
its = {}
for p in sys.argv[1:]:
    it = Interpreter(model_path=p, num_threads=int(os.environ.get("NT", os.cpu_count())))
    d = it.get_input_details()[0]
    if list(d["shape"]) != [1, 60, 60, 1]:
        it.resize_tensor_input(d["index"], [1, 60, 60, 1])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    its[p] = it
def run(it, n=1000):
    t0 = time.perf_counter()
    for _ in range(n): it.invoke()
    return (time.perf_counter() - t0) / n * 1e3
for it in its.values(): run(it, 100)
ts = {p: [] for p in its}
for _ in range(5):
    for p, it in its.items(): ts[p].append(run(it))
for p in its:
    print(os.path.basename(p), len(its[p]._get_ops_details()), "ops", f"{statistics.median(ts[p]):.3f} ms", [f"{t:.2f}" for t in ts[p]])
