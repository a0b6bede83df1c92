"""The process and the machine: what this CPU can do (read without
TensorFlow), the kernel library TensorFlow should load for a given matmul
precision, its thread pools for a number of rollout chains, and what
precision="auto" stands for here. The automatic values themselves are
`ram_tf.devices.choose`'s: `resolve_precision` and `plan_chains` ask it.

Chains (`machine.chains`, `RecurrentAttentionModel.rollouts`): c independent
slices of a batch, each run by TensorFlow's inter-op threads with
cores / c intra-op threads per op: on a multi-core CPU, two chains of one
thread each keep the cores busier than one chain on all of them, while
chains that share one pool do not (docs/performance.md, "Design
decisions"). The intra-op pool is fixed when TensorFlow's runtime
starts, so `configure_chains` must run before the first TensorFlow op (the
CLI and `train_and_evaluate` call it first).

TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads, and importing
ram_tf leaves it alone. `prepare_tensorflow(precision)`, called by the CLI
and `train_and_evaluate` before TensorFlow loads, sets it unless the user
did: "0" (Eigen kernels, the faster float32 ones for RAM's small matmuls)
for float32, "1" for bfloat16 matmuls, which need oneDNN (Eigen emulates
them, slower than float32); docs/performance.md, "Design decisions".
"""

from __future__ import annotations

import os
import platform
import sys
import warnings

from ram_tf import config

# The CPU flags that set the matmul rate, as /proc/cpuinfo names them.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                "amx_bf16")
# Any of these runs bfloat16 matmuls natively (oneDNN uses them).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
# The value prepare_tensorflow wrote, if any: a later call may change its
# own choice, never one the user made.
_onednn_written = None


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


def _onednn_by_environment() -> bool:
    """What TF_ENABLE_ONEDNN_OPTS asks of TensorFlow (oneDNN unless off)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") not in ("0", "false")


def onednn_enabled() -> bool:
    """Whether the TensorFlow loaded (or about to load) uses oneDNN."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # private API moved
        return _onednn_by_environment()


def _onednn_will_run() -> bool:
    """oneDNN on, in the TensorFlow loaded or (not loaded yet, without
    importing it) in the one TF_ENABLE_ONEDNN_OPTS will load."""
    if "tensorflow" in sys.modules:
        return onednn_enabled()
    return _onednn_by_environment()


def visible_gpus() -> int:
    """GPUs TensorFlow sees; 0 while it is not loaded (listing devices
    does not start its runtime, so thread pools can still be set)."""
    if "tensorflow" not in sys.modules:
        return 0
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def resolve_precision(setting: str) -> str:
    """The precision machine.precision `setting` stands for here.

    "auto" is what `ram_tf.devices.choose` picks: "mixed_bfloat16" when
    the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), TensorFlow
    runs oneDNN, the one kernel library that uses those units, and no GPU
    computes instead; else "float32" (Eigen emulates bfloat16, slower than
    float32). On such CPUs bfloat16 matmul operands make updates faster
    with the same test error (docs/performance.md, "Design decisions").
    Other settings stand for themselves.
    """
    if setting != "auto":
        return setting
    return _choose(cpu_flags=tuple(cpu_info()["flags"]),
                   onednn=_onednn_will_run(), gpus=visible_gpus()).precision


def prepare_tensorflow(precision: str) -> None:
    """Pick TensorFlow's kernel library for `precision`; call before
    TensorFlow loads (the CLI does). Warns when it is too late.

    Sets TF_ENABLE_ONEDNN_OPTS unless the user set it (then "auto" follows
    it): "1" (oneDNN) for mixed_bfloat16, and for "auto" on a CPU with
    native bfloat16; "0" (Eigen) otherwise. Once TensorFlow has loaded it
    changes nothing.
    """
    global _onednn_written
    onednn = precision == "mixed_bfloat16" or (precision == "auto"
                                               and has_native_bf16())
    if "tensorflow" not in sys.modules:
        current = os.environ.get(ONEDNN_VARIABLE)
        if current is None or current == _onednn_written:
            _onednn_written = "1" if onednn else "0"
            os.environ[ONEDNN_VARIABLE] = _onednn_written
        return
    if precision == "mixed_bfloat16" and not onednn_enabled():
        warnings.warn(
            "machine.precision='mixed_bfloat16' with TensorFlow's oneDNN "
            "kernels off: bfloat16 matmuls are emulated and slower than "
            "float32. Set TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow loads "
            "(the ram-tf CLI does this itself).", stacklevel=2)


def usable_cores() -> int:
    """CPU cores this process may run on (affinity, else the count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_chains(setting: int, cores: int, gpus: int = 0) -> tuple[int, int]:
    """(chains, intra-op threads per op) for machine.chains = `setting`,
    as `ram_tf.devices.choose` plans them.

    0 is automatic: 2 chains on a CPU with 2 or more cores and no GPU (a
    GPU runs one big batch better), else 1. One chain keeps TensorFlow's
    own pool (threads 0: all cores), and so does a GPU.
    """
    plan = _choose(chains=setting, cores=cores, gpus=gpus)
    return plan.chains, plan.intra_op_threads


def _choose(chains: int = 0, gpus: int = 0, **found):
    """`ram_tf.devices.choose` for the default machine settings but
    `chains`, on the devices `found` (`Devices` fields) with `gpus` GPUs.
    The GPUs stand in unnamed: with these settings the rule reads only
    whether there are any, so the callers follow it without asking
    TensorFlow for the GPUs' details."""
    from ram_tf import devices  # here: it imports this module

    return devices.choose(config.MachineConfig(chains=chains),
                          devices.Devices(gpus=(devices.Gpu("GPU"),) * gpus,
                                          **found))


def configure_chains(setting: int) -> tuple[int, str | None]:
    """Size TensorFlow's intra-op pool for `plan_chains(setting)`; see
    `configure_threads`."""
    chains, threads = plan_chains(setting, usable_cores(), visible_gpus())
    return configure_threads(chains, threads, automatic=setting == 0)


def configure_threads(chains: int, threads: int,
                      automatic: bool) -> tuple[int, str | None]:
    """Give TensorFlow's intra-op pool `threads` per op (0: its default)
    for `chains` rollout chains.

    Returns (chains to run, a note or None). Too late to change the pool
    (TensorFlow already ran an op with another one): an `automatic` chain
    count falls back to 1 chain, an explicit one is kept, and the note
    says so (chains on a shared pool ran slower than one chain).
    """
    import tensorflow as tf

    current = tf.config.threading.get_intra_op_parallelism_threads()
    if threads == 0 or current == threads:
        return chains, None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        return chains, None
    except RuntimeError:
        if chains == 1:
            return 1, None  # the pool only sized the replicas' share
        pool = f"{current} intra-op threads" if current else "all cores"
        if automatic:
            return 1, (f"1 rollout chain: TensorFlow already started with "
                       f"{pool} per op; 2 chains need {threads} (set "
                       "machine.chains before TensorFlow runs its first op)")
        return chains, (f"{chains} rollout chains on {pool} per op instead "
                        f"of {threads}: slower than 1 chain; configure "
                        "chains before TensorFlow runs its first op")
