"""Which devices train a run, and the machine settings that fit them.

`choose(machine, devices)` is the one place where the automatic machine
settings (`MachineConfig` fields left at "auto" or 0) become values, as a
function of the devices found (`find()`), so it can be tested with any
device list:

  on a GPU   one rollout chain (one big batch keeps a GPU busy), no
             thread-pool or kernel-library tuning, the whole train step
             XLA-compiled, float32 (mixed_bfloat16 is the option for GPUs
             that multiply bfloat16, compute capability 8.0 and up);
  on a CPU   two rollout chains on two or more cores, or one per replica
             when the CPU is split into replicas; oneDNN for bfloat16,
             Eigen for float32; bfloat16 where the CPU multiplies it
             natively; XLA on the glimpse sensor only
             (docs/performance.md, "Design decisions").

What was chosen goes into `results.json` and `ram-tf benchmark --json`
(`Plan.to_dict`).
"""

from __future__ import annotations

import dataclasses
import os
import sys

from ram_tf import runtime

# bfloat16 matmuls in hardware: NVIDIA Ampere (8.0) and later.
BF16_COMPUTE_CAPABILITY = (8, 0)


@dataclasses.dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: tuple[int, int] | None = None

    @property
    def has_bf16(self) -> bool:
        return (self.compute_capability is not None
                and tuple(self.compute_capability) >= BF16_COMPUTE_CAPABILITY)


@dataclasses.dataclass(frozen=True)
class Devices:
    """What TensorFlow can compute on here.

    Attributes:
      gpus: the visible GPUs.
      cpu: the CPU's model name.
      cpu_flags: its vector units among `runtime.VECTOR_FLAGS`.
      cores: CPU cores this process may use.
      onednn: TensorFlow runs (or will load with) oneDNN kernels.
    """

    gpus: tuple[Gpu, ...] = ()
    cpu: str = ""
    cpu_flags: tuple[str, ...] = ()
    cores: int = 1
    onednn: bool = True


@dataclasses.dataclass(frozen=True)
class Plan:
    """The machine settings a run uses on `Devices`.

    Attributes:
      device: "GPU" or "CPU", and device_name its model.
      replicas: devices the batch is split over (per worker).
      chains: rollout chains per replica (`ram_tf.chains`).
      intra_op_threads: TensorFlow's intra-op pool; 0 leaves its default.
      onednn: the TF_ENABLE_ONEDNN_OPTS wanted, or None to leave it alone.
      precision: "float32" or "mixed_bfloat16".
      jit_compile: XLA-compile the whole train step.
    """

    device: str
    device_name: str
    replicas: int
    chains: int
    intra_op_threads: int
    onednn: bool | None
    precision: str
    jit_compile: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def as_run(self) -> dict:
        """`to_dict` with `onednn` what TensorFlow loaded: a
        TF_ENABLE_ONEDNN_OPTS the user set wins over the plan's wish
        (`runtime.prepare_tensorflow`), and a record says what ran."""
        return {**self.to_dict(), "onednn": runtime.onednn_enabled()}


class DeviceError(ValueError):
    """The machine settings ask for devices that are not here."""


def find() -> Devices:
    """The devices of this process. Listing physical devices does not
    start TensorFlow's runtime, so thread pools and logical devices can
    still be set afterwards; without TensorFlow loaded, GPUs are not
    looked for (CUDA_VISIBLE_DEVICES="" is the usual way to hide them)."""
    info = runtime.cpu_info()
    gpus: list[Gpu] = []
    if "tensorflow" in sys.modules or os.environ.get(
            "CUDA_VISIBLE_DEVICES") != "":
        import tensorflow as tf

        for device in tf.config.list_physical_devices("GPU"):
            try:
                details = tf.config.experimental.get_device_details(device)
            except (RuntimeError, ValueError):
                details = {}
            gpus.append(Gpu(details.get("device_name", device.name),
                            details.get("compute_capability")))
    return Devices(gpus=tuple(gpus), cpu=str(info["cpu"]),
                   cpu_flags=tuple(info["flags"]),
                   cores=runtime.usable_cores(),
                   onednn=runtime._onednn_will_run())


def choose(machine, devices: Devices) -> Plan:
    """The `Plan` for a `MachineConfig` on `devices` (see the module
    docstring); explicit settings are kept as they are.

    Raises:
      DeviceError: more replicas than GPUs, or bfloat16 asked of a GPU
        without it.
    """
    gpus = devices.gpus
    if gpus:
        replicas = machine.replicas or (
            len(gpus) if machine.distribute != "none" else 1)
        if replicas > len(gpus):
            raise DeviceError(
                f"machine.replicas={machine.replicas} but this machine has "
                f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''}; ask for "
                f"{len(gpus)} or fewer, or 0 for all of them")
        if machine.precision == "mixed_bfloat16" and not all(
                g.has_bf16 for g in gpus[:replicas]):
            raise DeviceError(
                "machine.precision='mixed_bfloat16' needs GPUs that "
                "multiply bfloat16 (compute capability 8.0 or later); "
                f"found {', '.join(g.name for g in gpus[:replicas])}: use "
                "float32")
        return Plan(
            device="GPU", device_name=gpus[0].name, replicas=replicas,
            chains=machine.chains or 1, intra_op_threads=0, onednn=None,
            precision=("float32" if machine.precision == "auto"
                       else machine.precision),
            jit_compile=_jit(machine, default=True))
    replicas = machine.replicas or 1
    precision = machine.precision
    if precision == "auto":
        native = runtime.has_native_bf16(devices.cpu_flags)
        precision = ("mixed_bfloat16" if native and devices.onednn
                     else "float32")
    if replicas > 1:
        # The replicas already run side by side, one group of cores each.
        chains = machine.chains or 1
        threads = max(1, devices.cores // (replicas * chains))
    else:
        chains = machine.chains if machine.chains > 0 else (
            2 if devices.cores >= 2 else 1)
        # One chain keeps TensorFlow's own pool (0: all cores).
        threads = 0 if chains == 1 else max(1, devices.cores // chains)
    return Plan(
        device="CPU", device_name=devices.cpu, replicas=replicas,
        chains=chains, intra_op_threads=threads,
        onednn=precision == "mixed_bfloat16",
        precision=precision, jit_compile=_jit(machine, default=False))


def _jit(machine, default: bool) -> bool:
    if machine.jit_compile != "auto":
        return bool(machine.jit_compile)
    # extract_glimpse has no XLA kernel.
    return default and machine.backend != "extract_glimpse"
