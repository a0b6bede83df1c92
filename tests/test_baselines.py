"""FC and CNN baselines: parameter counts by formula, the shared run path."""

import os

import keras
import numpy as np

from ram_tf import config as config_lib
from ram_tf import datasets
from ram_tf import training
from ram_tf.builders import build_model


def test_fc_parameter_count_matches_formula():
    for width in (64, 256):
        cfg = config_lib.resolve("fc", "translated60",
                                 {"core.fc_units": width})
        n = 60 * 60
        want = (n * width + width) + (width * width + width) + (
            width * 10 + 10)
        assert build_model(cfg).count_params() == want


def test_cnn_parameter_count_matches_formula():
    cfg = config_lib.resolve("cnn", "translated60")
    # "same" padding: 60 -> ceil(60 / 5) = 12 -> ceil(12 / 2) = 6
    want = (10 * 10 * 1 * 8 + 8) + (5 * 5 * 8 * 16 + 16) + (
        6 * 6 * 16 * 256 + 256) + (256 * 10 + 10)
    assert build_model(cfg).count_params() == want


def test_cnn6_parameter_count_matches_formula():
    cfg = config_lib.resolve("cnn6", "cluttered100")
    convs = [(1, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
    # 100 -> 50 (stride 2) -> pools: 25 -> 13 -> 7 ("same").
    want = sum(3 * 3 * c_in * f + f for c_in, f in convs) + (
        7 * 7 * 64 * 256 + 256) + (256 * 10 + 10)
    assert want == 877_434
    assert build_model(cfg).count_params() == want


def test_baselines_train_and_score_like_ram(mnist_dir, cache_dir, tmp_path):
    for name in ("fc", "cnn", "cnn6"):
        cfg = config_lib.resolve(name, "mnist28", {
            "train.steps": 4, "train.steps_per_epoch": 2,
            "train.batch_size": 16, "core.fc_units": 32})
        workdir = str(tmp_path / name)
        results = training.train_and_evaluate(cfg, workdir, verbose=0)
        assert results["updates"] == 4
        # Deterministic models: both evaluation modes agree.
        assert results["test_error_mc"] == results["test_error_deterministic"]
        assert results["test_error_deterministic"] < 90
        assert os.path.exists(os.path.join(workdir, "checkpoints"))


def test_cnn6_starts_where_its_signal_reaches_the_logits(mnist_dir):
    """He initialisation, Var(w) = 2 / fan_in, on every ReLU layer: its
    kernels have that variance, and on cluttered canvases the initial
    logits vary many times more than under Keras's Glorot default, with
    which cnn6 never left the uniform prediction."""
    data = datasets.task_data_config("cluttered100")
    images = next(iter(datasets.train_dataset(data, 32, 0,
                                              mnist_dir=mnist_dir)))["image"]
    cfg = config_lib.resolve("cnn6", "cluttered100")
    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    he_std = float(np.std(model(images)["logits"]))
    for layer in [*model.convs, model.fc]:
        kernel = layer.kernel.numpy()
        fan_in = np.prod(kernel.shape[:-1])
        # Sampling error of a variance over 144 weights (conv1) is ~10 %.
        np.testing.assert_allclose(kernel.var(), 2 / fan_in, rtol=0.2)
    for layer in [*model.convs, model.fc]:
        layer.kernel.assign(
            keras.initializers.GlorotUniform(seed=0)(layer.kernel.shape))
    glorot_std = float(np.std(model(images)["logits"]))
    assert he_std > 10 * glorot_std, (he_std, glorot_std)
