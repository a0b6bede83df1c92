"""Float32 GFLOP/s of the matmul shapes of a RAM update (and 2048^3)."""
import statistics
import time

import tensorflow as tf


def bench(m, k, n, ta=False, tb=False, reps=200):
    a = tf.random.uniform([k, m] if ta else [m, k]); b = tf.random.uniform([n, k] if tb else [k, n])
    f = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b, transpose_a=ta, transpose_b=tb)))
    f().numpy()
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps // 10): f()
        f().numpy()
        ts.append((time.perf_counter() - t0) / (reps // 10 + 1))
    t = statistics.median(ts)
    return 2 * m * k * n / t / 1e9
for shape in [(2048, 2048, 2048, 0, 0, 20), (320, 256, 1024, 0, 0, 200), (320, 512, 1024, 0, 0, 200), (320, 1024, 256, 0, 1, 200), (320, 1024, 512, 0, 1, 200), (256, 320, 1024, 1, 0, 200), (512, 320, 1024, 1, 0, 200), (256, 1920, 1024, 1, 0, 50), (512, 1920, 1024, 1, 0, 50), (1920, 256, 1024, 0, 0, 50)]:
    m, k, n, ta, tb, reps = shape
    print(shape, f"{bench(m, k, n, bool(ta), bool(tb), reps):.1f} GFLOP/s", flush=True)
