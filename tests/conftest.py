"""Shared fixtures: CPU only, tiny shapes, fixed seeds, offline MNIST."""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SHARED_MNIST = os.path.join(_REPO, "..", "shared", "data", "mnist")


@pytest.fixture(scope="session")
def mnist_dir():
    """The four original MNIST files: $RAM_TF_MNIST_DIR or ../shared."""
    path = os.environ.get("RAM_TF_MNIST_DIR") or _SHARED_MNIST
    if not os.path.exists(os.path.join(path, "t10k-labels-idx1-ubyte.gz")):
        pytest.skip("MNIST files not available offline")
    return os.path.abspath(path)


@pytest.fixture(autouse=True)
def _offline_mnist(mnist_dir_env):
    yield


@pytest.fixture(scope="session")
def mnist_dir_env():
    """Point every loader at the offline MNIST folder, if there is one."""
    path = os.environ.get("RAM_TF_MNIST_DIR") or _SHARED_MNIST
    if os.path.exists(path):
        os.environ["RAM_TF_MNIST_DIR"] = os.path.abspath(path)
    yield


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A fresh cache for fixed canvases, shared by the session."""
    path = str(tmp_path_factory.mktemp("ram_tf_cache"))
    os.environ["RAM_TF_CACHE_DIR"] = path
    return path
