"""ram_tf: hard visual attention (RAM, Mnih et al. 2014) in TF2 / Keras 3.

Public modules: `config` (experiment presets), `datasets` (MNIST-derived
tasks), `glimpse` (the sensor), `networks` and `model` (RAM), `reinforce`
(the hybrid loss), `training` (train_and_evaluate), `evaluation`.
Nothing heavy happens at import time: TensorFlow loads with the submodules.
"""

import os
import sys

# Keras 3 on TensorFlow; never the legacy tf_keras (used by TFP only).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's own (Eigen) CPU kernels instead of oneDNN's: RAM's matmuls
# are small (320 x 512 x 1024) and half of them transposed, where Eigen ran
# a training update 15-20 % faster on this project's 2-core AVX2 machines
# (README, "Speed"). Read once, when TensorFlow loads: it takes effect only
# if ram_tf is imported first (else it is left unset, so the benchmark's
# record of it stays true), and a value the user set wins.
# bfloat16 matmuls need oneDNN: `ram_tf.cpu.prepare_tensorflow` turns it
# back on for train.precision="mixed_bfloat16" unless the user chose.
ONEDNN_SET_BY_USER = "TF_ENABLE_ONEDNN_OPTS" in os.environ
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import ram_tf` stays free of TensorFlow until needed.
    if name == "load_exported":
        from ram_tf.inference import load_exported

        return load_exported
    raise AttributeError(f"module 'ram_tf' has no attribute {name!r}")
