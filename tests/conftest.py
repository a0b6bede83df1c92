"""Shared fixtures: CPU only, tiny shapes, fixed seeds, offline MNIST.

Every test runs on a fake MNIST: four tiny IDX files in the original
format and file names, written once per session (`fake_mnist`), so nothing
skips on a machine without MNIST. `$RAM_TF_MNIST_DIR` points at it for the
whole session. The few tests that need the real digits (the shipped models'
accuracy, the sha256 of the fixed test canvases) take `real_mnist_dir`, are
marked `slow`, and fail when the real files are missing: set
`RAM_TF_MNIST_DIR` to them (CI does) or deselect with `-m "not slow"`.

`straight10` trains, once per session, the uninterrupted run that the
resume and divergence tests (test_resume.py, test_training.py) compare
their weights with; `tiny_export` exports a tiny run once for the export
tests.

Under `pytest -n 2` (pytest-xdist, the README's command) each worker is a
session of its own, with its own temporary folders and session fixtures:
no test shares files with a test of the other worker.
"""

import gzip
import os
import struct

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Read before the session points the variable at the fake files.
_REAL_MNIST = os.environ.get("RAM_TF_MNIST_DIR") or os.path.join(
    _REPO, "..", "shared", "data", "mnist")

# Digits of the fake MNIST: the test split has the original 10,000 (tests
# count them); train has 6,000 (5,500 train + 500 validation).
FAKE_COUNTS = {"train": 6000, "t10k": 10000}

# Seven-segment strokes (rows, cols) in a 20x12 box, per digit.
_SEGMENTS = {
    "a": (slice(0, 3), slice(0, 12)), "b": (slice(0, 10), slice(9, 12)),
    "c": (slice(10, 20), slice(9, 12)), "d": (slice(17, 20), slice(0, 12)),
    "e": (slice(10, 20), slice(0, 3)), "f": (slice(0, 10), slice(0, 3)),
    "g": (slice(8, 11), slice(0, 12)),
}
_DIGITS = ["abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc",
           "abc", "abcdefg", "abcdfg"]


def fake_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct 28x28 uint8 digits (seven-segment glyphs, shifted
    by up to 2 pixels, near-white ink with a little noise that makes every
    digit unique) and their labels: easy enough to learn in a few
    updates."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = np.zeros((count, 28, 28), np.uint8)
    for i, label in enumerate(labels):
        glyph = np.zeros((20, 12), bool)
        for segment in _DIGITS[label]:
            glyph[_SEGMENTS[segment]] = True
        oy, ox = 4 + rng.integers(-2, 3), 8 + rng.integers(-2, 3)
        ink = rng.integers(224, 256, (20, 12)) * glyph
        images[i, oy:oy + 20, ox:ox + 12] = ink
    return images, labels


def write_idx_files(folder, counts=FAKE_COUNTS, seed=0) -> str:
    """The four MNIST files (gzip-compressed IDX) with synthetic digits."""
    os.makedirs(folder, exist_ok=True)
    for i, (prefix, count) in enumerate(counts.items()):
        images, labels = fake_digits(count, seed + i)
        with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"),
                       "wb") as f:
            f.write(struct.pack(">IIII", 2051, count, 28, 28))
            f.write(images.tobytes())
        with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"),
                       "wb") as f:
            f.write(struct.pack(">II", 2049, count))
            f.write(labels.tobytes())
    return str(folder)


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory):
    """A folder with the four MNIST files holding synthetic digits."""
    return write_idx_files(tmp_path_factory.mktemp("fake_mnist"))


@pytest.fixture(scope="session", autouse=True)
def _session_data(fake_mnist, tmp_path_factory):
    """Every loader reads the fake MNIST; canvases are cached in a session
    folder, never in the user's cache."""
    saved = {k: os.environ.get(k)
             for k in ("RAM_TF_MNIST_DIR", "RAM_TF_CACHE_DIR")}
    os.environ["RAM_TF_MNIST_DIR"] = fake_mnist
    os.environ["RAM_TF_CACHE_DIR"] = str(tmp_path_factory.mktemp(
        "ram_tf_cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def mnist_dir(fake_mnist):
    """The MNIST folder of the session (the fake one)."""
    return fake_mnist


@pytest.fixture
def real_mnist_dir(monkeypatch):
    """The original MNIST files ($RAM_TF_MNIST_DIR at start, else
    ../shared/data/mnist), pointed at by `$RAM_TF_MNIST_DIR` during the
    test. Fails (never skips) when they are missing."""
    from ram_tf import mnist

    path = os.path.abspath(_REAL_MNIST)
    try:
        counts = mnist.check_mnist_dir(path)
    except mnist.MnistNotFoundError as e:
        pytest.fail(f"this test needs the real MNIST files: {e}. Set "
                    "RAM_TF_MNIST_DIR to them, or deselect with "
                    "-m 'not slow'", pytrace=False)
    if counts != {"train": 60000, "test": 10000}:
        pytest.fail(f"{path} is not the full MNIST ({counts})",
                    pytrace=False)
    monkeypatch.setenv("RAM_TF_MNIST_DIR", path)
    return path


@pytest.fixture(scope="session")
def cache_dir(_session_data):
    """The session's cache for fixed canvases."""
    return os.environ["RAM_TF_CACHE_DIR"]


@pytest.fixture(scope="session")
def straight10(tmp_path_factory, mnist_dir, cache_dir):
    """Weights of an uninterrupted 10-update float32 run (epochs of 3 and
    1): what resumed and extended runs must end with, bit for bit."""
    from helpers import logged_updates
    from helpers import run_weights
    from helpers import tiny32

    from ram_tf import training

    workdir = str(tmp_path_factory.mktemp("straight10"))
    training.train_and_evaluate(tiny32(10), workdir, verbose=0,
                                evaluate_test=False)
    assert logged_updates(workdir) == [3, 6, 9, 10]
    return run_weights(workdir)


@pytest.fixture(scope="session")
def tiny_export(mnist_dir, cache_dir, tmp_path_factory):
    """A 3-update RAM on mnist28 (helpers.TINY) exported as a SavedModel
    and a TFLite file, both scored; with 64 test images in [0, 1]."""
    from helpers import train_tiny

    from ram_tf import datasets
    from ram_tf import export

    root = tmp_path_factory.mktemp("export")
    workdir = str(root / "run")
    cfg = train_tiny(workdir)
    out = str(root / "models")
    sm = export.export_run(workdir, out=out, score=True)
    tfl = export.export_run(workdir, out=out, fmt="tflite", score=True)
    test = datasets.fixed_arrays(cfg.data, "test")
    images = test["image"][:64].astype(np.float32) / 255.0
    return {"workdir": workdir, "out": out, "sm": sm, "tflite": tfl,
            "images": images, "base": os.path.join(out, "ram_mnist28"),
            "test": test}
