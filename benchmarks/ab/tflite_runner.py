"""TFLite fp32 at batch 1: signature runner vs set_tensor/invoke/get_tensor vs
invoke alone, on the shipped translated60 file."""
import os, time, statistics
import numpy as np
from ai_edge_litert.interpreter import Interpreter
p = "exported_models/ram_translated60/model_fp32.tflite"
x = np.random.default_rng(0).random((1, 60, 60, 1)).astype(np.float32)
it = Interpreter(model_path=p, num_threads=os.cpu_count())
r = it.get_signature_runner("serving_default")
r(images=x)
it2 = Interpreter(model_path=p, num_threads=os.cpu_count())
it2.allocate_tensors()
sig = it2.get_signature_list()["serving_default"]
inp = it2.get_input_details()[0]["index"]
outs = {d["name"]: d["index"] for d in it2.get_output_details()}
def direct():
    it2.set_tensor(inp, x); it2.invoke()
    return {k: it2.get_tensor(v) for k, v in outs.items()}
def invoke_only():
    it2.invoke()
direct()
def timed(fn, n=1000):
    t0 = time.perf_counter()
    for _ in range(n): fn()
    return (time.perf_counter() - t0) / n * 1e3
res = {"runner": [], "direct": [], "invoke": []}
for _ in range(5):
    res["runner"].append(timed(lambda: r(images=x)))
    res["direct"].append(timed(direct))
    res["invoke"].append(timed(invoke_only))
for k, v in res.items(): print(k, f"{statistics.median(v):.3f} ms", [f"{t:.2f}" for t in v])
print(sig, list(outs))
