"""bfloat16 vs float32 matmul rate on this CPU."""
import statistics
import time

import tensorflow as tf


def rate(dtype, m, k, n, reps=20):
    a = tf.cast(tf.random.uniform([m, k]), dtype); b = tf.cast(tf.random.uniform([k, n]), dtype)
    f = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    f().numpy(); ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps): f().numpy()
        ts.append((time.perf_counter() - t0) / reps)
    return 2 * m * k * n / statistics.median(ts) / 1e9
for shape in [(2048, 2048, 2048), (320, 512, 1024)]:
    print(shape, "float32 %.1f GFLOP/s" % rate(tf.float32, *shape), "bfloat16 %.1f GFLOP/s" % rate(tf.bfloat16, *shape))
