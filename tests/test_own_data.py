"""The Python API a researcher tries first: the README's quickstart on
their own arrays, the package's public names, and an import that changes
nothing in the process."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

README = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "README.md")


def quickstart_code() -> str:
    """The first ```python block under "## Python quickstart"."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Python quickstart\n", 1)[1]
    section = re.split(r"\n## ", section, maxsplit=1)[0]
    match = re.search(r"```python\n(.*?)\n```", section, re.DOTALL)
    assert match, "no ```python block under '## Python quickstart'"
    return match.group(1)


@pytest.fixture(scope="module")
def quickstart():
    keras.utils.set_random_seed(0)
    scope = {"__name__": "quickstart"}
    exec(compile(quickstart_code(), README, "exec"), scope)
    return scope


def test_quickstart_trains_ram_on_own_arrays_and_predicts(quickstart):
    x, y = quickstart["x"], quickstart["y"]
    assert x.shape[1:] == (40, 40, 3) and y.max() < 5
    history = quickstart["history"].history
    for key in ("loss", "cross_entropy", "accuracy", "val_accuracy",
                "val_cross_entropy"):
        assert np.isfinite(history[key]).all(), key
    # evaluate scores the deterministic policy, as predict answers.
    assert quickstart["scores"]["accuracy"] == pytest.approx(np.mean(
        np.argmax(quickstart["model"].predict(x, verbose=0)["logits"], -1)
        == y))
    assert quickstart["out"]["logits"].shape == (8, 5)
    assert quickstart["classes"].shape == (8,)
    glimpses = quickstart["glimpses"]
    assert glimpses.shape == (8, 4, 2) and np.abs(glimpses).max() <= 1.0


def test_quickstart_trains_dram_on_own_arrays(quickstart):
    dram = quickstart["dram"]
    assert np.isfinite(quickstart["dram_history"].history["loss"]).all()
    out = dram.predict(quickstart["x"][:3], verbose=0)
    assert out["logits"].shape == (3, 5)
    assert out["means"].shape == (3, 4, 2)  # DRAM's l_0 is an action too


def _coloured_squares(n=80, seed=0):
    """5 classes, each a colour filling a 40x40 RGB image, plus noise:
    separable from one glimpse at the centre."""
    rng = np.random.default_rng(seed)
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0],
                        [0, 1, 1]], "float32") * 0.8
    y = rng.integers(0, 5, size=n)
    x = rng.uniform(0, 0.2, size=(n, 40, 40, 3)).astype("float32")
    return x + colours[y][:, None, None, :], y


@pytest.mark.parametrize("name", ["RecurrentAttentionModel",
                                  "DeepRecurrentAttentionModel"])
def test_quickstart_models_learn_a_separable_own_data_task(quickstart, name):
    keras.utils.set_random_seed(1)
    x, y = _coloured_squares()
    extra = {"context_size": 16} if name.startswith("Deep") else {}
    model = quickstart[name](glimpse_size=8, num_scales=2, num_glimpses=4,
                             num_classes=5, mc_samples=4, **extra)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    after = model.evaluate(x, y, verbose=0, return_dict=True)
    assert after["cross_entropy"] < 0.5 * before["cross_entropy"]
    assert after["accuracy"] >= 0.9


def test_public_names_import_from_the_package():
    import ram_tf
    from ram_tf import DeepRecurrentAttentionModel
    from ram_tf import GlimpseSensor
    from ram_tf import RecurrentAttentionModel
    from ram_tf import build_model
    from ram_tf import builders
    from ram_tf import dram
    from ram_tf import glimpse
    from ram_tf import inference
    from ram_tf import load_exported
    from ram_tf import model

    assert RecurrentAttentionModel is model.RecurrentAttentionModel
    assert DeepRecurrentAttentionModel is dram.DeepRecurrentAttentionModel
    assert GlimpseSensor is glimpse.GlimpseSensor
    assert build_model is builders.build_model
    assert load_exported is inference.load_exported
    assert set(ram_tf.__all__) <= set(dir(ram_tf))
    with pytest.raises(AttributeError, match="no attribute 'Model'"):
        ram_tf.Model  # noqa: B018


def test_importing_ram_tf_changes_nothing_in_the_process():
    code = ("import os, sys; before = dict(os.environ); import ram_tf; "
            "print(dict(os.environ) == before, 'tensorflow' in sys.modules, "
            "os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND")}
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "None"]
