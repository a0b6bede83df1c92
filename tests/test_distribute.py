"""Training under tf.distribute: one update on 2 replicas is the one-device
update, the mirrored and multi-worker commands train and resume, and
what cannot run is refused by name.

The CPU can be split into logical devices only before TensorFlow's first
op, so runs on 2 replicas and multi-worker clusters are separate
processes (`distributed_checks.py`, `ram-tf train`).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from helpers import TINY_FLAGS
from helpers import deterministic_error
from helpers import logged_updates

from ram_tf import config as config_lib
from ram_tf import distribute

HERE = os.path.dirname(os.path.abspath(__file__))


def _env(**extra):
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.path.dirname(HERE), **extra}


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    """Outputs of `distributed_checks.py` (one process for all of them)."""
    out = tmp_path_factory.mktemp("distributed")
    done = subprocess.run([sys.executable,
                           os.path.join(HERE, "distributed_checks.py"),
                           str(out)], env=_env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return out


def _update(checks, name):
    return dict(np.load(checks / f"update_{name}.npz"))


def _assert_same_update(got, want):
    logs = [k for k in want if k.startswith("log_")]
    assert logs and sorted(logs) == sorted(k for k in got if k in logs)
    for key in logs:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    deltas = [k for k in want if k.startswith("delta_")]
    assert len(deltas) > 10
    for key in deltas:
        # SGD with rate 1: the change of a weight is minus its gradient.
        assert np.abs(want[key]).max() > 0, key
        scale = np.abs(want[key]).max()
        np.testing.assert_allclose(got[key], want[key], atol=1e-4 * scale,
                                   err_msg=key)


def test_one_update_on_two_replicas_is_the_one_device_update(checks):
    """Same weights, same batch, same policy noise: the loss terms and the
    gradients of the global batch, to float32 rounding. A replica that drew
    its own noise, or gradients summed without the 1/N, would differ in
    the reinforce term or by a factor of 2."""
    _assert_same_update(_update(checks, "two"), _update(checks, "one"))


def test_whole_step_xla_update_is_the_default_update(checks):
    _assert_same_update(_update(checks, "jit"), _update(checks, "one"))


def _train(workdir, *flags, env=None, output=None, **popen):
    """`ram-tf train` of a tiny RAM in a process writing to `output` (a
    file: a pipe nobody reads could fill up and stall it)."""
    args = [sys.executable, "-c", "from ram_tf_cli.main import main; main()",
            "train", "--model", "ram", "--workdir", str(workdir), "--verbose",
            "2", *TINY_FLAGS, "--steps-per-epoch", "2", *flags]
    output = output or f"{workdir}.out"
    log = open(output, "w")
    process = subprocess.Popen(args, env=env or _env(), text=True,
                               stdout=log, stderr=subprocess.STDOUT, **popen)
    process.output, process.log = output, log
    return process


def _finish(process, timeout=600):
    try:
        process.wait(timeout=timeout)
    finally:
        process.log.close()
    with open(process.output) as f:
        return process.returncode, f.read()


def test_mirrored_on_two_logical_cpus_trains_with_results(tmp_path):
    """`ram-tf train ... --distribute mirrored --replicas 2` (its own
    process: a second MirroredStrategy in one process reuses collective
    keys)."""
    code, out = _finish(_train(tmp_path / "run", "--steps", "4",
                               "--distribute", "mirrored", "--replicas",
                               "2"))
    assert code == 0, out
    with open(tmp_path / "run" / "results.json") as f:
        results = json.load(f)
    assert results["updates"] == 4
    # Counted again from the saved weights on one device (2 images of
    # slack for bfloat16 kernels).
    assert results["test_error_deterministic"] == pytest.approx(
        deterministic_error(str(tmp_path / "run")), abs=0.02)
    plan = results["machine_plan"]
    assert (plan["distribute"], plan["replicas_in_sync"]) == ("mirrored", 2)
    assert (plan["device"], plan["chains"]) == ("CPU", 1)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cluster(workdir, steps, ports):
    workers = [f"localhost:{p}" for p in ports]
    return [_train(workdir, "--steps", str(steps), "--distribute",
                   "multi-worker", env=_env(TF_CONFIG=json.dumps({
                       "cluster": {"worker": workers},
                       "task": {"type": "worker", "index": i}})),
                   output=f"{workdir}.{i}.{ports[0]}.out",
                   start_new_session=True)
            for i in range(len(ports))]


def _kill(processes):
    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        p.log.close()


# Minutes, but on the fake MNIST: not `slow`, which deselects the tests
# that need the real files.
def test_multi_worker_trains_resumes_after_a_kill_and_only_the_chief_writes(
        tmp_path):
    workdir = tmp_path / "run"
    # A first cluster, killed once the chief has committed an epoch.
    first = _cluster(workdir, 40, _free_ports(2))
    try:
        deadline = time.time() + 600
        while not logged_updates(workdir) and time.time() < deadline:
            assert all(p.poll() is None for p in first), [
                _finish(p) for p in first]
            time.sleep(1)
        assert logged_updates(workdir), "no epoch was committed in 10 minutes"
        os.killpg(first[1].pid, signal.SIGKILL)  # worker 1 dies
        try:
            # The chief finds out through the cluster's health checks.
            first[0].wait(timeout=180)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _kill(first)
    committed = logged_updates(workdir)
    assert committed and committed[-1] < 40

    # The same commands again carry on from the chief's last checkpoint.
    second = _cluster(workdir, 40, _free_ports(2))
    try:
        (code0, out0), (code1, out1) = [_finish(p) for p in second]
    finally:
        _kill(second)
    assert code0 == 0, out0
    assert code1 == 0, out1
    # From the chief's last checkpoint, which may be newer than the log
    # read above.
    assert "resuming at update" in out0, out0
    assert "worker 1: 40 updates; the chief writes" in out1
    with open(workdir / "results.json") as f:
        results = json.load(f)
    assert results["updates"] == 40
    assert results["machine_plan"]["workers"] == 2
    assert results["machine_plan"]["replicas_in_sync"] == 2
    # One log row per epoch, none repeated by the resume.
    assert logged_updates(workdir) == list(range(2, 41, 2))
    # Nothing but the chief's run: no worker folders or stray checkpoints.
    assert sorted(os.listdir(workdir)) == sorted(
        ["checkpoints", "config.json", "log.csv", "model.weights.h5",
         "progress.json", "results.json", "tensorboard"])


def test_multi_worker_without_tf_config_says_what_to_set(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.DistributeError,
                       match="TF_CONFIG environment variable, which is not"):
        distribute.make_strategy("multi-worker", 1, gpus=0)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, '
                                    '"task": {"type": "worker", "index": 3}}')
    with pytest.raises(distribute.DistributeError,
                       match="not a cluster with this task in it"):
        distribute.make_strategy("multi-worker", 1, gpus=0)


def test_splitting_a_started_cpu_is_refused_with_what_to_do():
    import tensorflow as tf

    tf.constant(1.0) + 1  # TensorFlow has started with one CPU device
    with pytest.raises(distribute.DistributeError,
                       match="already started with 1; set the replicas"):
        distribute.split_cpu(2)


@pytest.mark.parametrize("overrides, message", [
    ({"machine.replicas": 2}, "needs machine.distribute"),
    ({"machine.distribute": "mirrored", "machine.replicas": 3},
     "must divide train.batch_size=32"),
    ({"machine.distribute": "ring"}, "allowed: none, mirrored, multi-worker"),
    ({"machine.jit_compile": "yes"}, "machine.jit_compile='yes'"),
])
def test_impossible_distribution_settings_are_refused(overrides, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.resolve("ram", "mnist28", overrides)


@pytest.mark.parametrize("cluster, task, want", [
    ({"worker": ["a", "b", "c"]}, ("worker", 0), (0, 3, True)),
    ({"worker": ["a", "b", "c"]}, ("worker", 2), (2, 3, False)),
    ({"chief": ["a"], "worker": ["b", "c"]}, ("chief", 0), (0, 3, True)),
    ({"chief": ["a"], "worker": ["b", "c"]}, ("worker", 0), (1, 3, False)),
])
def test_the_chief_is_task_chief_else_worker_0(cluster, task, want):
    w = distribute.cluster_worker(cluster, *task)
    assert (w.index, w.count, w.chief) == want


def test_the_multi_worker_workaround_refuses_untested_keras(monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.raises(distribute.DistributeError,
                       match="tested with Keras 3.15.x; this is Keras 3.99"):
        distribute.adapt_for_multi_worker(model)


def test_the_multi_worker_workaround_logs_vectors_of_one_value():
    import tensorflow as tf

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    kernel, bias = (v.numpy() for v in model.weights)
    distribute.adapt_for_multi_worker(model)
    logs = model.train_step((tf.ones([4, 2]), tf.zeros([4, 1])))
    # Keras's reduction across workers averages them back to scalars: the
    # vector holds the step's own loss, (x W + b - 0)^2 with x = (1, 1).
    assert logs["loss"].shape == (1,)
    np.testing.assert_allclose(logs["loss"].numpy(),
                               [(kernel.sum() + bias[0]) ** 2], rtol=1e-5)

    class Untouchable:
        def __next__(self):
            raise AssertionError("the symbolic build read a batch")

    # The symbolic build, which would read a batch outside the strategy,
    # is the model's own no-op now.
    assert "_maybe_symbolic_build" in vars(model)
    assert model._maybe_symbolic_build(iterator=Untouchable()) is None


def test_a_whole_step_xla_run_trains_and_records_its_plan(tmp_path):
    from ram_tf import training

    config = config_lib.resolve("ram", "mnist28", {
        "glimpse.num_glimpses": 3, "core.glimpse_hidden": 8,
        "core.location_hidden": 8, "core.glimpse_units": 16,
        "core.core_units": 16, "train.batch_size": 8,
        "train.mc_samples": 2, "train.steps_per_epoch": 3,
        "train.steps": 6, "machine.jit_compile": True})
    results = training.train_and_evaluate(config, str(tmp_path), verbose=0)
    assert results["updates"] == 6
    assert results["machine_plan"]["jit_compile"] is True
    with open(tmp_path / "log.csv") as f:
        rows = f.read().splitlines()
    loss = rows[0].split(",").index("loss")
    assert all(np.isfinite(float(r.split(",")[loss])) for r in rows[1:])
