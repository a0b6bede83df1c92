"""The 70,000 original MNIST digits, from a folder or through TFDS.

Every task is made from these 28x28 digits. Two sources give the same
arrays in the same order:

- a folder (`mnist_dir`, or the environment variable `RAM_TF_MNIST_DIR`)
  holding the four original IDX files, read directly (offline; no TFDS
  preparation). The folder is checked first (names, gzip/IDX headers,
  counts) so a missing or corrupt file gets an error that lists what is
  expected. A folder with fewer digits in the same format (a test fixture,
  a subset) is accepted; published numbers need the full set.
- with no folder, tensorflow-datasets' `mnist`, downloaded once into the
  TFDS data dir. Before a download the host is probed with a short timeout,
  so an offline machine gets the one-line hint at once instead of minutes
  of retries.

Splits: train = the first 55,000 of TFDS's train split,
validation = the remaining 5,000 (one twelfth of a smaller folder's train
digits), test = the 10,000 test digits. TFDS orders examples by the md5 of
the split name and each example's index (`tensorflow_datasets.core.hashing`);
the folder reader applies the same order, which is the same on every
machine.
"""

from __future__ import annotations

import functools
import glob
import gzip
import hashlib
import os
import socket
import struct
import urllib.parse
import urllib.request
import zlib

import numpy as np

ENV_MNIST_DIR = "RAM_TF_MNIST_DIR"
FILES = {
    "train-images-idx3-ubyte.gz": (2051, 60000),
    "train-labels-idx1-ubyte.gz": (2049, 60000),
    "t10k-images-idx3-ubyte.gz": (2051, 10000),
    "t10k-labels-idx1-ubyte.gz": (2049, 10000),
}
_PAIRS = {"train": ("train-images-idx3-ubyte.gz",
                    "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
NUM_TRAIN = 55_000
SPLITS = ("train", "validation", "test")
# Where TFDS downloads MNIST from (tensorflow_datasets mnist._MNIST_URL).
DOWNLOAD_ADDRESS = ("storage.googleapis.com", 443)
PROBE_TIMEOUT_S = 5.0
_HINT = (f"set {ENV_MNIST_DIR} or pass --mnist-dir to a folder with the four "
         f"original MNIST files ({', '.join(FILES)})")


class MnistNotFoundError(RuntimeError):
    """MNIST cannot be read; the message says which files are expected."""


def _read_header(path: str, name: str) -> tuple[int, ...]:
    """(magic, count[, rows, cols]) of a gzip-compressed IDX file."""
    magic = FILES[name][0]
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(16 if magic == 2051 else 8)
            fields = struct.unpack(">IIII" if magic == 2051 else ">II",
                                   header)
    except (OSError, EOFError, struct.error) as e:
        raise MnistNotFoundError(
            f"{path} is not a valid gzip-compressed IDX file ({e}); "
            f"expected the original MNIST file {name}"
        ) from None
    if fields[0] != magic:
        raise MnistNotFoundError(
            f"{path} has IDX magic {fields[0]}; the original {name} has "
            f"magic {magic}"
        )
    if magic == 2051 and fields[2:] != (28, 28):
        raise MnistNotFoundError(
            f"{path} holds {fields[2]}x{fields[3]} images; MNIST digits are "
            "28x28"
        )
    return fields


def check_mnist_dir(mnist_dir: str) -> dict[str, int]:
    """Check that `mnist_dir` holds the four MNIST .gz files.

    Reads each file's IDX header (magic number, count, image size) through
    gzip, which catches missing, truncated-at-the-start and non-gzip files,
    and checks that images and labels agree in number.

    Returns:
      digits per original split: {"train": 60000, "test": 10000} for the
      original files.

    Raises:
      MnistNotFoundError: naming the folder, the bad file and the four
        expected file names.
    """
    expected = ", ".join(FILES)
    if not os.path.isdir(mnist_dir):
        what = "is a file" if os.path.exists(mnist_dir) else "does not exist"
        raise MnistNotFoundError(
            f"MNIST folder {mnist_dir!r} {what}; expected a folder "
            f"with the four original MNIST files: {expected}"
        )
    for name in FILES:
        if not os.path.isfile(os.path.join(mnist_dir, name)):
            raise MnistNotFoundError(
                f"MNIST folder {mnist_dir!r} has no {name}; expected the four "
                f"original MNIST files: {expected}"
            )
    counts = {}
    for split, (images, labels) in _PAIRS.items():
        n_images = _read_header(os.path.join(mnist_dir, images), images)[1]
        n_labels = _read_header(os.path.join(mnist_dir, labels), labels)[1]
        if n_images != n_labels:
            raise MnistNotFoundError(
                f"{os.path.join(mnist_dir, labels)} has {n_labels} labels but "
                f"{images} has {n_images} images; the original files have "
                f"{FILES[images][1]} of each"
            )
        least = 12 if split == "train" else 1  # validation: 1/12 of train
        if n_images < least:
            raise MnistNotFoundError(
                f"{os.path.join(mnist_dir, images)} has {n_images} images; "
                f"expected at least {least} (the original has "
                f"{FILES[images][1]})"
            )
        counts[split] = n_images
    return counts


def resolve_mnist_dir(mnist_dir: str | None) -> str | None:
    """`mnist_dir`, else `$RAM_TF_MNIST_DIR`, else None (download)."""
    return mnist_dir or os.environ.get(ENV_MNIST_DIR) or None


def source_tag(mnist_dir: str | None = None) -> str:
    """"" for the original digits, else a short tag of the folder's files.

    Caches of canvases made from the digits add it to their key, so a
    smaller folder (a test fixture) never shares a cache entry with MNIST.
    """
    mnist_dir = resolve_mnist_dir(mnist_dir)
    if mnist_dir is None:
        return ""  # TFDS: the original digits
    mnist_dir = os.path.abspath(os.path.expanduser(mnist_dir))
    counts = check_mnist_dir(mnist_dir)
    if counts == {"train": 60000, "test": 10000}:
        return ""
    h = hashlib.sha256()
    for name in FILES:
        with open(os.path.join(mnist_dir, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


def tfds_order(n: int, split: str) -> np.ndarray:
    """The order in which TFDS stores examples 0..n-1 of `split`.

    TFDS sorts a split's examples by the md5 of the split name followed by
    the example key (for MNIST the index as a decimal string).
    """
    salt = hashlib.md5(split.encode())

    def key(i):
        md5 = salt.copy()
        md5.update(str(i).encode())
        return int(md5.hexdigest(), 16)

    return np.array(sorted(range(n), key=key), np.int64)


def _read_idx(path: str, count: int, image: bool) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as e:  # EOF: a cut download
        raise MnistNotFoundError(
            f"{path} is not a whole gzip file ({e}); expected the original "
            "MNIST file: download it again") from e
    offset = 16 if image else 8
    size = count * (28 * 28 if image else 1)
    if len(data) < offset + size:
        raise MnistNotFoundError(
            f"{path} is truncated: {len(data) - offset} bytes of data where "
            f"its header announces {count} {'images' if image else 'labels'}"
        )
    array = np.frombuffer(data, np.uint8, count=size, offset=offset)
    return array.reshape(count, 28, 28) if image else array


@functools.lru_cache(maxsize=2)
def _folder_split(mnist_dir: str, original: str):
    images, labels = _PAIRS[original]
    count = check_mnist_dir(mnist_dir)[original]
    x = _read_idx(os.path.join(mnist_dir, images), count, image=True)
    y = _read_idx(os.path.join(mnist_dir, labels), count, image=False)
    order = tfds_order(count, original)
    return x[order], y[order].astype(np.int32)


def _from_folder(split: str, mnist_dir: str):
    if split == "test":
        return _folder_split(mnist_dir, "test")
    images, labels = _folder_split(mnist_dir, "train")
    num_train = len(labels) - len(labels) // 12  # 55,000 of 60,000
    part = slice(None, num_train) if split == "train" else slice(num_train,
                                                                 None)
    return images[part], labels[part]


def _probe_download(timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise `MnistNotFoundError` at once if the download host (or the
    HTTPS proxy) cannot be reached."""
    host, port = DOWNLOAD_ADDRESS
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlsplit(proxy if "//" in proxy
                                       else f"//{proxy}")
        host, port = parsed.hostname, parsed.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise MnistNotFoundError(
            f"MNIST is not available offline: {_HINT}. (No MNIST folder is "
            f"set and {host}:{port}, where tensorflow-datasets downloads it "
            f"from, cannot be reached: {e})"
        ) from None


@functools.lru_cache(maxsize=4)
def _from_tfds(split: str, data_dir: str | None):
    import tensorflow_datasets as tfds  # heavy; only when data is needed

    tfds.disable_progress_bar()  # the library does not draw on the terminal
    root = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), "tensorflow_datasets")
    if not glob.glob(os.path.join(root, "mnist", "*", "dataset_info.json")):
        _probe_download()  # TFDS would download: fail at once if offline
    tfds_split = {
        "train": f"train[:{NUM_TRAIN}]",
        "validation": f"train[{NUM_TRAIN}:]",
        "test": "test",
    }[split]
    try:
        data = tfds.load("mnist", split=tfds_split, batch_size=-1,
                         as_supervised=True, data_dir=data_dir)
    except Exception as e:  # TFDS raises many types for a failed download
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise MnistNotFoundError(
            f"could not load MNIST through tensorflow-datasets: {_HINT} "
            f"({type(e).__name__}: {first})"
        ) from e
    images, labels = tfds.as_numpy(data)
    return images[..., 0].astype(np.uint8), labels.astype(np.int32)


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

    Raises:
      MnistNotFoundError: no readable folder and no TFDS copy, with the
        hint to set `RAM_TF_MNIST_DIR` / `--mnist-dir`.
    """
    if split not in SPLITS:
        raise ValueError(
            f"unknown split {split!r}; allowed: {', '.join(SPLITS)}"
        )
    mnist_dir = resolve_mnist_dir(mnist_dir)
    if mnist_dir is not None:
        return _from_folder(split,
                            os.path.abspath(os.path.expanduser(mnist_dir)))
    return _from_tfds(split, data_dir)
