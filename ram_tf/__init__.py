"""ram_tf: hard visual attention (RAM, Mnih et al. 2014) in TF2 / Keras 3.

Public modules: `config` (experiment presets), `datasets` (MNIST-derived
tasks), `glimpse` (the sensor), `networks` and `model` (RAM), `reinforce`
(the hybrid loss), `training` (train_and_evaluate), `evaluation`.
Nothing heavy happens at import time: TensorFlow loads with the submodules.
"""

import os

# Keras 3 on TensorFlow; never the legacy tf_keras (used by TFP only).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import ram_tf` stays free of TensorFlow until needed.
    if name == "load_exported":
        from ram_tf.inference import load_exported

        return load_exported
    raise AttributeError(f"module 'ram_tf' has no attribute {name!r}")
