"""The 70,000 original MNIST digits, through tensorflow-datasets.

Every task is made from these 28x28 digits. With internet and no setting,
TFDS downloads MNIST as usual. Offline, `mnist_dir` (or the environment
variable `RAM_TF_MNIST_DIR`) names a folder holding the four original files;
it becomes TFDS's `manual_dir`, so the stock `mnist` builder prepares from
disk. The folder is checked first (names, gzip/IDX headers, counts) so a
missing or corrupt file gets an error that lists what is expected.

Splits (reference.md): train = the first 55,000 of TFDS's train split,
validation = the remaining 5,000, test = the 10,000 test digits. TFDS orders
examples by a hash of their keys, which is the same on every machine.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct

import numpy as np

ENV_MNIST_DIR = "RAM_TF_MNIST_DIR"
FILES = {
    "train-images-idx3-ubyte.gz": (2051, 60000),
    "train-labels-idx1-ubyte.gz": (2049, 60000),
    "t10k-images-idx3-ubyte.gz": (2051, 10000),
    "t10k-labels-idx1-ubyte.gz": (2049, 10000),
}
NUM_TRAIN = 55_000
SPLITS = ("train", "validation", "test")


class MnistNotFoundError(RuntimeError):
    """MNIST cannot be read; the message says which files are expected."""


def check_mnist_dir(mnist_dir: str) -> None:
    """Check that `mnist_dir` holds the four original MNIST .gz files.

    Reads each file's IDX header (magic number and count) through gzip,
    which catches missing, truncated-at-the-start and non-gzip files.

    Raises:
      MnistNotFoundError: naming the folder, the bad file and the four
        expected file names.
    """
    expected = ", ".join(FILES)
    if not os.path.isdir(mnist_dir):
        raise MnistNotFoundError(
            f"MNIST folder {mnist_dir!r} does not exist; expected a folder "
            f"with the four original MNIST files: {expected}"
        )
    for name, (magic, count) in FILES.items():
        path = os.path.join(mnist_dir, name)
        if not os.path.isfile(path):
            raise MnistNotFoundError(
                f"MNIST folder {mnist_dir!r} has no {name}; expected the four "
                f"original MNIST files: {expected}"
            )
        try:
            with gzip.open(path, "rb") as f:
                header = f.read(8)
                got_magic, got_count = struct.unpack(">II", header)
        except (OSError, EOFError, struct.error) as e:
            raise MnistNotFoundError(
                f"{path} is not a valid gzip-compressed IDX file ({e}); "
                f"expected the original MNIST file {name}"
            ) from None
        if (got_magic, got_count) != (magic, count):
            raise MnistNotFoundError(
                f"{path} has IDX magic {got_magic} and {got_count} items; "
                f"the original {name} has magic {magic} and {count} items"
            )


def resolve_mnist_dir(mnist_dir: str | None) -> str | None:
    """`mnist_dir`, else `$RAM_TF_MNIST_DIR`, else None (download)."""
    return mnist_dir or os.environ.get(ENV_MNIST_DIR) or None


@functools.lru_cache(maxsize=4)
def load_digits(
    split: str, mnist_dir: str | None = None, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The digits of one split as arrays.

    Args:
      split: "train" (55,000), "validation" (5,000) or "test" (10,000).
      mnist_dir: folder with the four original files (offline); default
        `$RAM_TF_MNIST_DIR`, else TFDS downloads.
      data_dir: TFDS data dir (default: TFDS's own, ~/tensorflow_datasets).

    Returns:
      images uint8 [n, 28, 28] and labels int32 [n].
    """
    if split not in SPLITS:
        raise ValueError(
            f"unknown split {split!r}; allowed: {', '.join(SPLITS)}"
        )
    import tensorflow_datasets as tfds  # heavy; only when data is needed

    tfds.disable_progress_bar()  # the library does not draw on the terminal

    mnist_dir = resolve_mnist_dir(mnist_dir)
    kwargs = {}
    if mnist_dir is not None:
        mnist_dir = os.path.abspath(os.path.expanduser(mnist_dir))
        check_mnist_dir(mnist_dir)
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(
                manual_dir=mnist_dir, try_download_gcs=False
            )
        }
    tfds_split = {
        "train": f"train[:{NUM_TRAIN}]",
        "validation": f"train[{NUM_TRAIN}:]",
        "test": "test",
    }[split]
    try:
        data = tfds.load(
            "mnist",
            split=tfds_split,
            batch_size=-1,
            as_supervised=True,
            data_dir=data_dir,
            **kwargs,
        )
    except Exception as e:  # TFDS raises many types for a failed download
        raise MnistNotFoundError(
            f"could not load MNIST through tensorflow-datasets ({e}). "
            f"Offline, pass --mnist-dir or set {ENV_MNIST_DIR} to a folder "
            f"with {', '.join(FILES)}"
        ) from e
    images, labels = tfds.as_numpy(data)
    return images[..., 0].astype(np.uint8), labels.astype(np.int32)
