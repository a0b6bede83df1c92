"""Six glimpses of the TFLite sensor at batch 1: the per-scale gather sensor vs
one gather of all scales' rows (fused); checks they agree, prints ops and
microseconds per invoke."""
import os, time, statistics, sys
import numpy as np
import tensorflow as tf
from ram_tf.glimpse import GlimpseSensor, window_corner, area_resize

H = W = 60; G = 12; K = 3; T = 6
sides = [G * 2**k for k in range(K)]
pad = (sides[-1] + 1) // 2

def fused(images, locations):
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    hw = tf.constant([H, W], tf.float32)
    half = tf.constant([[s / 2.0, s / 2.0] for s in sides])  # [K, 2]
    corner = tf.cast(locations[:, None, :] * hw / 2.0 + hw / 2.0 - half, tf.int32) + pad  # [B,K,2]
    scale_of = np.concatenate([np.full(s, k) for k, s in enumerate(sides)]).astype(np.int32)
    offs = np.concatenate([np.arange(s) for s in sides]).astype(np.int32)
    idx = tf.gather(corner, scale_of, axis=1) + offs[None, :, None]  # [B, 84, 2]
    rows = tf.gather(padded, idx[:, :, 0], axis=1, batch_dims=1)  # [B,84,Wp,C]
    out = []
    for k, (r, c) in enumerate(zip(tf.split(rows, sides, axis=1), tf.split(idx[:, :, 1], sides, axis=1))):
        out.append(area_resize(tf.gather(r, c, axis=2, batch_dims=1), 2**k))
    return tf.stack(out, axis=1)

def build(kind):
    sensor = GlimpseSensor(G, K, "gather")
    @tf.function(input_signature=[tf.TensorSpec([1, H, W, 1]), tf.TensorSpec([1, T, 2])])
    def f(x, locs):
        outs = []
        for t in range(T):
            l = tf.clip_by_value(locs[:, t], -1.0, 1.0)
            outs.append(sensor((x, l)) if kind == "gather" else fused(x, l))
        return tf.stack(outs, 1)
    return f

rng = np.random.default_rng(0)
x = rng.random((1, H, W, 1)).astype(np.float32)
locs = rng.uniform(-1.1, 1.1, (1, T, 2)).astype(np.float32)
a = build("gather")(x, locs).numpy(); b = build("fused")(x, locs).numpy()
np.testing.assert_array_equal(a, b)
from ai_edge_litert.interpreter import Interpreter
res = {}
for kind in ["gather", "fused"] * 1:
    f = build(kind)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    blob = conv.convert()
    it = Interpreter(model_content=blob, num_threads=os.cpu_count())
    it.allocate_tensors()
    ins = it.get_input_details(); out = it.get_output_details()[0]
    n_ops = len(it._get_ops_details())
    res[kind] = (it, ins, out, n_ops)
def run(kind, n=2000):
    it, ins, out, _ = res[kind]
    for d in ins:
        it.set_tensor(d["index"], x if len(d["shape"]) == 4 else locs)
    t0 = time.perf_counter()
    for _ in range(n):
        it.invoke()
    return (time.perf_counter() - t0) / n * 1e6
for kind in res: run(kind, 200)
times = {k: [] for k in res}
for _ in range(5):
    for k in res: times[k].append(run(k))
for k in res:
    print(k, "ops", res[k][3], "us/invoke median", f"{statistics.median(times[k]):.1f}", [f"{t:.0f}" for t in times[k]])
