"""What this CPU can do, read without TensorFlow, and the kernel library
TensorFlow should load for a given matmul precision.

TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads. ram_tf's import
defaults it to "0" (Eigen kernels: faster float32 updates on AVX2 machines,
README "Speed"); bfloat16 matmuls need oneDNN (Eigen emulates them: a
translated60 update took 100 ms in bfloat16 under Eigen vs 52 ms under
oneDNN and 75 ms in float32, benchmarks/ab/precision_step.py), so
`prepare_tensorflow("mixed_bfloat16")` switches oneDNN on when TensorFlow
has not loaded yet and the user did not choose.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings

# The CPU flags that set the matmul rate, as /proc/cpuinfo names them.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                "amx_bf16")
# Any of these runs bfloat16 matmuls natively (oneDNN uses them).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, object]:
    """{"cpu": model name, "flags": the VECTOR_FLAGS present}; where there
    is no /proc/cpuinfo (not Linux) the flags are empty."""
    info: dict[str, object] = {"cpu": None, "flags": []}
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name" and info["cpu"] is None:
            info["cpu"] = value  # x86; Arm lists "CPU part" instead
        elif key == "flags":
            have = set(value.split())
            info["flags"] = [f for f in VECTOR_FLAGS if f in have]
            break
    if info["cpu"] is None:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def has_native_bf16(flags=None) -> bool:
    """True when the CPU multiplies bfloat16 in hardware."""
    flags = cpu_info()["flags"] if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def onednn_enabled() -> bool:
    """Whether the TensorFlow loaded (or about to load) uses oneDNN."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # private API moved
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") not in ("0",
                                                                    "false")


def prepare_tensorflow(precision: str) -> None:
    """Pick TensorFlow's kernel library for `precision`; call before
    TensorFlow loads (the CLI does). Warns when it is too late."""
    if precision != "mixed_bfloat16":
        return
    import ram_tf

    if "tensorflow" not in sys.modules:
        if not ram_tf.ONEDNN_SET_BY_USER:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
        return
    if not onednn_enabled():
        warnings.warn(
            "train.precision='mixed_bfloat16' with TensorFlow's oneDNN "
            "kernels off: bfloat16 matmuls are emulated and slower than "
            "float32. Set TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow loads "
            "(the ram-tf CLI does this itself).", stacklevel=2)
