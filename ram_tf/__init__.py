"""ram_tf: hard visual attention (RAM, Mnih et al. 2014; DRAM, Ba et al.
2015) in TF2 / Keras 3.

Public names, importable from the package:
  RecurrentAttentionModel, DeepRecurrentAttentionModel: the Keras models
    (`fit(images, labels)` on your own arrays: README, "Python quickstart");
  GlimpseSensor: the retina, a Keras layer;
  build_model: the model an experiment config names (`ram_tf.config`);
  load_exported: an exported model, any format (`ram_tf.inference`).

Importing ram_tf does nothing else: it neither loads TensorFlow (each name
loads its module when first used) nor sets environment variables. Process
settings (TensorFlow's kernel library, thread pools) are `ram_tf.runtime`'s,
called by the CLI and `train_and_evaluate`.
"""

import importlib

__version__ = "0.1.0"

# name -> the module that defines it, imported on first use.
_PUBLIC = {
    "RecurrentAttentionModel": "ram_tf.model",
    "DeepRecurrentAttentionModel": "ram_tf.dram",
    "GlimpseSensor": "ram_tf.glimpse",
    "build_model": "ram_tf.builders",
    "load_exported": "ram_tf.inference",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'ram_tf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
