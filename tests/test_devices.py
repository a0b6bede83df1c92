"""`ram_tf.devices.choose`: the automatic machine settings as a function of
the devices found, with the device lists faked."""

import dataclasses

import pytest

from ram_tf import config as config_lib
from ram_tf import devices
from ram_tf import runtime
from ram_tf.devices import Devices
from ram_tf.devices import Gpu

AMX_CPU = Devices(cpu="Xeon", cpu_flags=("avx512f", "amx_bf16"), cores=8)
AVX2_CPU = Devices(cpu="Core", cpu_flags=("avx2", "fma"), cores=2)
A100 = Gpu("NVIDIA A100", (8, 0))
V100 = Gpu("Tesla V100", (7, 0))


def machine(**fields):
    return dataclasses.replace(config_lib.MachineConfig(), **fields)


def test_a_gpu_gets_one_chain_whole_step_xla_and_float32():
    plan = devices.choose(machine(), dataclasses.replace(
        AMX_CPU, gpus=(A100,)))
    assert (plan.device, plan.device_name) == ("GPU", "NVIDIA A100")
    assert (plan.replicas, plan.chains, plan.intra_op_threads) == (1, 1, 0)
    # No kernel-library switch and no thread-pool tuning on a GPU.
    assert plan.onednn is None
    assert plan.jit_compile is True
    # bfloat16 on the host CPU does not make the GPU compute in it.
    assert plan.precision == "float32"


def test_mirrored_takes_every_gpu_unless_told():
    gpus = dataclasses.replace(AVX2_CPU, gpus=(A100, A100, A100, A100))
    assert devices.choose(machine(distribute="mirrored"), gpus).replicas == 4
    assert devices.choose(machine(distribute="mirrored", replicas=2),
                          gpus).replicas == 2
    # Without a strategy one device trains.
    assert devices.choose(machine(), gpus).replicas == 1


def test_more_replicas_than_gpus_is_refused_by_name():
    with pytest.raises(devices.DeviceError,
                       match="machine.replicas=4 but this machine has 2 GPUs"):
        devices.choose(machine(distribute="mirrored", replicas=4),
                       dataclasses.replace(AVX2_CPU, gpus=(A100, A100)))


def test_bfloat16_is_an_option_only_on_gpus_that_have_it():
    ampere = devices.choose(machine(precision="mixed_bfloat16"),
                            dataclasses.replace(AVX2_CPU, gpus=(A100,)))
    assert ampere.precision == "mixed_bfloat16"
    with pytest.raises(devices.DeviceError, match="Tesla V100.*float32"):
        devices.choose(machine(precision="mixed_bfloat16"),
                       dataclasses.replace(AVX2_CPU, gpus=(V100,)))


def test_explicit_settings_are_kept_on_a_gpu():
    plan = devices.choose(machine(jit_compile=False, chains=2),
                          dataclasses.replace(AVX2_CPU, gpus=(A100,)))
    assert (plan.jit_compile, plan.chains) == (False, 2)
    # extract_glimpse has no XLA kernel: "auto" leaves the step alone.
    plan = devices.choose(machine(backend="extract_glimpse", xla=False),
                          dataclasses.replace(AVX2_CPU, gpus=(A100,)))
    assert plan.jit_compile is False


@pytest.mark.parametrize("cpu, onednn, precision", [
    (AMX_CPU, True, "mixed_bfloat16"),
    # The bfloat16 units are only used through oneDNN.
    (dataclasses.replace(AMX_CPU, onednn=False), False, "float32"),
    (AVX2_CPU, False, "float32"),
])
def test_a_cpu_keeps_its_tuning(cpu, onednn, precision):
    plan = devices.choose(machine(), cpu)
    assert (plan.device, plan.device_name) == ("CPU", cpu.cpu)
    assert plan.precision == precision
    # oneDNN for bfloat16 matmuls, Eigen for float32 ones.
    assert plan.onednn is onednn
    assert plan.jit_compile is False
    # Two chains, each on its share of the cores.
    assert (plan.chains, plan.intra_op_threads) == (2, cpu.cores // 2)


def test_a_cpu_split_into_replicas_runs_one_chain_per_replica():
    plan = devices.choose(machine(distribute="mirrored", replicas=2),
                          AMX_CPU)
    assert (plan.replicas, plan.chains, plan.intra_op_threads) == (2, 1, 4)
    one_core = devices.choose(machine(distribute="mirrored", replicas=2),
                              dataclasses.replace(AVX2_CPU, cores=1))
    assert one_core.intra_op_threads == 1


def test_the_plan_is_recorded_as_plain_json_values():
    record = devices.choose(machine(), AVX2_CPU).to_dict()
    assert record == {
        "device": "CPU", "device_name": "Core", "replicas": 1, "chains": 2,
        "intra_op_threads": 1, "onednn": False, "precision": "float32",
        "jit_compile": False}


@pytest.mark.parametrize("loaded", [True, False])
def test_a_run_records_the_kernels_tensorflow_loaded(monkeypatch, loaded):
    # The plan wishes for Eigen (float32 on AVX2), or oneDNN (bf16 on AMX);
    # a TF_ENABLE_ONEDNN_OPTS the user set decides what loads.
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: loaded)
    for cpu in (AVX2_CPU, AMX_CPU):
        plan = devices.choose(machine(), cpu)
        assert plan.onednn is (cpu is AMX_CPU)
        assert plan.as_run() == {**plan.to_dict(), "onednn": loaded}


def test_find_reads_this_machine():
    found = devices.find()
    assert found.cores >= 1 and found.cpu
    # The test session hides GPUs (conftest).
    assert found.gpus == ()
