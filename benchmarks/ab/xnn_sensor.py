"""Six glimpses at batch 1 in TFLite: gather, matmul and a matmul sensor built
from float ops only (XNNPACK-delegable: floor/ceil truncation, clipped
products instead of comparisons); checks exactness, prints ops and us."""
import os, time, statistics
import numpy as np
import tensorflow as tf
from ram_tf.glimpse import GlimpseSensor

H = W = 60; G = 12; K = 3; T = 6
sides = [G * 2**k for k in range(K)]

def relu1(x):
    return tf.minimum(tf.maximum(x, 0.0), 1.0)

def trunc(x):
    return tf.floor(tf.maximum(x, 0.0)) + tf.math.ceil(tf.minimum(x, 0.0))

# constants: rows of all scales stacked: row j = (scale k, block i)
scale_of = np.concatenate([np.full(G, k) for k in range(K)])
onehot = np.eye(K, dtype=np.float32)[scale_of].T  # [K, K*G]
start = np.concatenate([np.arange(G) * 2**k for k in range(K)]).astype(np.float32)  # i*f
fac = np.concatenate([np.full(G, 2.0**k) for k in range(K)]).astype(np.float32)

def sel(corner_k, length):
    # corner_k: [B, K] float (integer-valued) -> [B, K*G, length]
    c = tf.matmul(corner_k, onehot)  # [B, K*G]
    o = np.arange(length, dtype=np.float32)[None, None, :] - (c[:, :, None] + start[None, :, None])
    return relu1(o + 1.0) * relu1(fac[None, :, None] - o) * (1.0 / fac)[None, :, None]

def xsensor(images, loc):
    half = np.array([s / 2.0 for s in sides], np.float32)  # [K]
    y = trunc(loc[:, 0:1] * (H / 2.0) + (H / 2.0) - half[None, :])  # [B, K]
    x = trunc(loc[:, 1:2] * (W / 2.0) + (W / 2.0) - half[None, :])
    r = sel(y, H)  # [B, KG, H]
    c = sel(x, W)  # [B, KG, W]
    strips = tf.matmul(r, images[..., 0])  # [B, KG, W]
    strips = tf.reshape(strips, [-1, K, G, W])
    cc = tf.reshape(c, [-1, K, G, W])
    return tf.matmul(strips, cc, transpose_b=True)[..., None]  # [B,K,G,G,1]

def build(kind):
    sensor = GlimpseSensor(G, K, kind if kind != "xnn" else "gather")
    @tf.function(input_signature=[tf.TensorSpec([1, H, W, 1]), tf.TensorSpec([1, T, 2])])
    def f(x, locs):
        outs = []
        for t in range(T):
            l = tf.clip_by_value(locs[:, t], -1.0, 1.0)
            outs.append(xsensor(x, l) if kind == "xnn" else sensor((x, l)))
        return tf.stack(outs, 1)
    return f

rng = np.random.default_rng(0)
x = rng.random((1, H, W, 1)).astype(np.float32)
locs = rng.uniform(-1.1, 1.1, (1, T, 2)).astype(np.float32)
a = build("gather")(x, locs).numpy(); b = build("xnn")(x, locs).numpy()
print("max diff", np.abs(a - b).max())
# exactness over many random locations
L = rng.uniform(-1.2, 1.2, (4000, 2)).astype(np.float32)
imgs = np.floor(rng.random((4000, H, W, 1)) * 256).astype(np.float32)
ga = GlimpseSensor(G, K, "gather")((imgs, L)).numpy()
xa = xsensor(tf.constant(imgs), tf.clip_by_value(L, -1, 1)).numpy()
print("integer-pixel exact:", np.array_equal(ga, xa), np.abs(ga - xa).max())
from ai_edge_litert.interpreter import Interpreter
res = {}
for kind in ["gather", "matmul", "xnn"]:
    f = build(kind)
    blob = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()
    it = Interpreter(model_content=blob, num_threads=os.cpu_count())
    it.allocate_tensors()
    res[kind] = it
def run(it, n=2000):
    for d in it.get_input_details():
        it.set_tensor(d["index"], x if len(d["shape"]) == 4 else locs)
    t0 = time.perf_counter()
    for _ in range(n): it.invoke()
    return (time.perf_counter() - t0) / n * 1e6
for it in res.values(): run(it, 200)
ts = {k: [] for k in res}
for _ in range(5):
    for k, it in res.items(): ts[k].append(run(it))
for k, it in res.items():
    print(k, "ops", len(it._get_ops_details()), f"{statistics.median(ts[k]):.1f} us", [f"{t:.0f}" for t in ts[k]])
