"""A short DRAM run that prints the evidence behind DRAM's gradient scope.

Every --every updates it prints the running reward and mean |l| since the
start, the cross-entropy, each loss term's gradient norm and the share of
saturated policy means (|mu| > 0.99). docs/model.md ("DRAM gradient
scopes") explains the default this documents; results/studies/dram_routing/
holds the logs it produced. E.g.

  python scripts/dram_routing.py --set policy.gradient_scope='"all"'
  python scripts/dram_routing.py --task cluttered100 --steps 800 \
      --set policy.gradient_scope='"location"'

Offline, point RAM_TF_MNIST_DIR (or --mnist-dir) at the four MNIST .gz files.
"""

import argparse
import json
import os
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="cluttered60")
    p.add_argument("--model", default="dram")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--set", nargs="*", default=[],
                   help="config overrides, group.field=JSON value")
    p.add_argument("--mnist-dir", default=os.environ.get("RAM_TF_MNIST_DIR"),
                   help="folder with the four MNIST .gz files "
                        "[env RAM_TF_MNIST_DIR]")
    return p.parse_args()


def main():
    a = parse_args()
    # TensorFlow loads only after the arguments are read (--help is quick).
    import tensorflow as tf

    from ram_tf import build_model
    from ram_tf import config as config_lib
    from ram_tf import datasets
    from ram_tf import reinforce
    from ram_tf.training import make_optimizer

    overrides = {k: json.loads(v)
                 for k, v in (kv.split("=", 1) for kv in a.set)}
    cfg = config_lib.resolve(a.model, a.task, overrides)
    print("gradient_scope", cfg.policy.gradient_scope, flush=True)
    m = build_model(cfg)
    m.compile(optimizer=make_optimizer(cfg.train))
    ds = datasets.train_dataset(cfg.data, cfg.train.batch_size, 0,
                                mnist_dir=a.mnist_dir)
    step = tf.function(m.train_step)

    @tf.function
    def diagnose(data):
        repeats = m.mc_samples
        labels = tf.repeat(tf.cast(data["label"], tf.int32), repeats, axis=0)
        with tf.GradientTape(persistent=True) as tape:
            out = m(data["image"], training=True, sample=True,
                    repeats=repeats)
            terms = reinforce.hybrid_loss(
                out["logits"], labels, out["means"], out["samples"],
                out["baselines"], m.std, m.reinforce_weight)
        res = {}
        for k in ("cross_entropy", "baseline_mse", "reinforce"):
            g = tape.gradient(terms[k], m.trainable_variables)
            res["grad_" + k] = tf.linalg.global_norm(
                [x for x in g if x is not None])
        res["saturated"] = tf.reduce_mean(
            tf.cast(tf.abs(out["means"]) > 0.99, tf.float32))
        return res

    it = iter(ds)
    t0 = time.time()
    for i in range(1, a.steps + 1):
        batch = next(it)
        r = step(batch)  # running means since the start
        if i % a.every == 0:
            d = {k: float(v) for k, v in diagnose(batch).items()}
            print(f"update {i} ({time.time() - t0:.0f} s): "
                  f"reward {float(r['reward']):.3f} "
                  f"location_abs {float(r['location_abs']):.3f} "
                  f"cross_entropy {float(r['cross_entropy']):.3f} | "
                  + " ".join(f"{k} {v:.3g}" for k, v in d.items()),
                  flush=True)


if __name__ == "__main__":
    main()
