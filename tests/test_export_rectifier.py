"""Exports of a RAM with Mnih et al.'s rectifier core (`core.core_cell`
"rectifier", `ram_tf.cores.RectifierCoreNetwork`): SavedModel and TFLite
parity with Keras, and the bf16 serving copy's frozen W and U. The LSTM
core's exports are `test_export.py`'s."""

import numpy as np
import tensorflow as tf
from helpers import TINY
from helpers import train_tiny

from ram_tf import datasets
from ram_tf import export
from ram_tf import inference
from ram_tf import training
from ram_tf.model import RecurrentAttentionModel


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


def test_bfloat16_serving_copy_freezes_the_rectifier_core():
    """The bf16 export of a rectifier-core RAM holds W and U as bfloat16
    constants and answers as the bf16 model that casts them every call."""
    tiny = dict(glimpse_size=4, num_scales=2, num_glimpses=3,
                glimpse_hidden=8, location_hidden=8, glimpse_units=16,
                core_units=16, core_cell="rectifier")
    model = RecurrentAttentionModel(**tiny)
    model(tf.zeros([1, 16, 16, 1]))
    for v in model.weights:  # weights far from their initial values
        v.assign(tf.random.normal(v.shape, stddev=0.3, seed=5))
    model.input_hwc = (16, 16, 1)
    served = export.serving_model(model, precision="mixed_bfloat16")
    assert set(served.core.frozen) == {"fc_input", "fc_recurrent"}
    assert served.core.frozen["fc_recurrent"].dtype == tf.bfloat16
    reference = RecurrentAttentionModel(**tiny, precision="mixed_bfloat16")
    reference(tf.zeros([1, 16, 16, 1]))
    reference.set_weights(model.get_weights())
    reference.sensor.product_dtype = served.sensor.product_dtype
    x = tf.random.uniform([5, 16, 16, 1], seed=6)
    np.testing.assert_allclose(served(x)["logits"], reference(x)["logits"],
                               atol=1e-6)
    assert not np.allclose(served(x)["logits"], model(x)["logits"],
                           atol=1e-6)
