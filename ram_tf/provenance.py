"""Where and with what a number was measured: the library versions and
the hardware recorded in results.json, manifests and benchmarks.
"""

from __future__ import annotations

import os
import platform

import keras
import numpy as np
import tensorflow as tf

from ram_tf import __version__
from ram_tf import runtime


def versions() -> dict[str, str]:
    import tensorflow_probability as tfp

    return {
        "ram_tf": __version__, "tensorflow": tf.__version__,
        "keras": keras.__version__, "tensorflow_probability": tfp.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
    }


def hardware() -> dict[str, object]:
    """Where a number was measured: CPU model, cores and the vector units
    that set its matmul rate (machines of one kind differ: AVX2 only vs
    AVX-512 with BF16), read from /proc/cpuinfo where there is one."""
    return {"machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "gpus": runtime.visible_gpus(),
            "onednn": runtime.onednn_enabled(), **runtime.cpu_info()}
