"""Exports of a RAM with Mnih et al.'s rectifier core (`core.core_cell`
"rectifier", `ram_tf.cores.RectifierCoreNetwork`): SavedModel and TFLite
parity with Keras. The LSTM core's exports are `test_export.py`'s; the bf16
serving copies of every core, `test_precision.py`'s."""

import numpy as np
import tensorflow as tf
from helpers import TINY
from helpers import train_tiny

from ram_tf import datasets
from ram_tf import export
from ram_tf import inference
from ram_tf import training


def test_a_rectifier_core_run_exports_with_parity(mnist_dir, cache_dir,
                                                   tmp_path):
    # Mnih et al.'s MNIST core has one state tensor where the LSTM has two.
    workdir = str(tmp_path / "run")
    cfg = train_tiny(workdir, {**TINY, "core.core_cell": "rectifier"})
    out = str(tmp_path / "models")
    sm = export.export_run(workdir, out=out)
    tfl = export.export_run(workdir, out=out, fmt="tflite")
    _, model = training.load_run(workdir)
    assert model.core.__class__.__name__ == "RectifierCoreNetwork"
    x = (datasets.fixed_arrays(cfg.data, "test")["image"][:32]
         .astype(np.float32) / 255.0)
    keras_probs = tf.nn.softmax(model(x)["logits"]).numpy()
    sm = inference.load_exported(sm["path"])(x)
    tfl = inference.load_exported(tfl["path"])(x)
    np.testing.assert_allclose(sm["probabilities"], keras_probs, atol=1e-6)
    np.testing.assert_allclose(tfl["probabilities"], keras_probs, atol=1e-5)
    np.testing.assert_allclose(tfl["locations"], sm["locations"], atol=1e-5)
