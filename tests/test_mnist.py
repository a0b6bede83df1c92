"""MNIST from a folder (IDX files, TFDS's order) or through TFDS."""

import time

import numpy as np
import pytest

from ram_tf import mnist


def test_folder_reader_gives_tfds_splits_in_tfds_order(mnist_dir):
    from conftest import fake_digits

    train_x, train_y = mnist.load_digits("train", mnist_dir)
    val_x, val_y = mnist.load_digits("validation", mnist_dir)
    test_x, test_y = mnist.load_digits("test", mnist_dir)
    assert (len(train_y), len(val_y), len(test_y)) == (5500, 500, 10000)
    assert train_x.dtype == np.uint8 and train_x.shape[1:] == (28, 28)
    assert train_y.dtype == np.int32
    # The files hold fake_digits(6000, seed 0); TFDS's order permutes them.
    x, y = fake_digits(6000, 0)
    order = mnist.tfds_order(6000, "train")
    np.testing.assert_array_equal(np.concatenate([train_x, val_x]),
                                  x[order])
    np.testing.assert_array_equal(np.concatenate([train_y, val_y]),
                                  y[order])


def test_tfds_order_is_tfds_hash_order():
    from tensorflow_datasets.core import hashing

    for split in ("train", "test"):
        hasher = hashing.Hasher(split)
        want = sorted(range(500), key=hasher.hash_key)
        np.testing.assert_array_equal(mnist.tfds_order(500, split), want)


def test_truncated_file_is_a_clear_error(mnist_dir, tmp_path):
    import gzip
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(mnist_dir, bad)
    path = bad / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as f:
        head = f.read(16 + 784 * 10)
    with gzip.open(path, "wb") as f:
        f.write(head)
    with pytest.raises(mnist.MnistNotFoundError, match="truncated"):
        mnist.load_digits("test", str(bad))


def test_offline_without_a_folder_fails_at_once(monkeypatch, tmp_path):
    """No folder, no TFDS copy, no network: the hint in seconds."""
    monkeypatch.delenv(mnist.ENV_MNIST_DIR, raising=False)
    for proxy in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    # A TEST-NET-1 address (RFC 5737): never routed.
    monkeypatch.setattr(mnist, "DOWNLOAD_ADDRESS", ("192.0.2.1", 443))
    monkeypatch.setattr(mnist, "PROBE_TIMEOUT_S", 2.0)
    start = time.monotonic()
    with pytest.raises(mnist.MnistNotFoundError) as e:
        mnist.load_digits("test", data_dir=str(tmp_path / "tfds"))
    assert time.monotonic() - start < 30
    message = str(e.value)
    assert message.startswith("MNIST is not available offline: set "
                              "RAM_TF_MNIST_DIR or pass --mnist-dir")
    assert "\n" not in message


@pytest.mark.slow
def test_real_splits_hold_55000_5000_10000_digits_in_tfds_order(
        real_mnist_dir):
    """Pinned digests of each split as TFDS stores it (checked against
    tfds.load): the folder reader gives the digits every published number
    was trained and scored on."""
    import hashlib

    want = {
        "train": (55000, "6f3d67da052735a83521758810ba1d8c"
                         "35201a88007821588b2adc1758d9ed68"),
        "validation": (5000, "e77f178ad2678632082ff688c3688d44"
                             "5333aa0f1436caab579a1ab02c8d075b"),
        "test": (10000, "670e94e863b684ad97d36ceef5ae7bb7"
                        "dad7897e955a7ac0d1ba5cdb9bedb946"),
    }
    for split, (count, digest) in want.items():
        x, y = mnist.load_digits(split, real_mnist_dir)
        assert len(y) == count
        assert hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest() == \
            digest, split
