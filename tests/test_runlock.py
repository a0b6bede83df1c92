"""`ram_tf.runlock.RunLock`: one trainer per run directory, a second one
refused with the first one's pid and host, a dead holder's lock taken
over."""

import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers import TINY_FLAGS
from helpers import read_json
from helpers import run_cli

from ram_tf import runlock


def test_a_locked_workdir_refuses_a_second_holder_naming_the_pid(tmp_path):
    with runlock.RunLock(str(tmp_path)):
        with open(tmp_path / "lock") as f:
            assert f.read().split()[0] == str(os.getpid())
        with pytest.raises(runlock.RunLockedError,
                           match=f"in use by another training process "
                                 f"\\(pid {os.getpid()} on "):
            runlock.RunLock(str(tmp_path)).acquire()
    assert not (tmp_path / "lock").exists()
    with runlock.RunLock(str(tmp_path)):  # free again
        pass


def test_the_lock_is_released_when_the_holder_raises(tmp_path):
    with pytest.raises(ValueError):
        with runlock.RunLock(str(tmp_path)):
            raise ValueError("boom")
    assert not (tmp_path / "lock").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(
        tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "lock").write_text(f"{dead.pid} somehost\n")
    with caplog.at_level(logging.WARNING, logger="ram_tf"):
        with runlock.RunLock(str(tmp_path)):
            with open(tmp_path / "lock") as f:
                assert f.read().split()[0] == str(os.getpid())
    assert f"taking over the lock of pid {dead.pid} on somehost" in caplog.text


def test_a_second_trainer_is_refused_and_a_killed_ones_lock_taken_over(
        mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    flags = TINY_FLAGS + ["--workdir", workdir, "--verbose", "2"]
    first = subprocess.Popen(
        [sys.executable, "-m", "ram_tf_cli.main", "train", *flags,
         "--steps", "3000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = os.path.join(workdir, "progress.json")
    try:
        deadline = time.time() + 240
        while not os.path.exists(progress) and time.time() < deadline:
            time.sleep(0.5)
        assert os.path.exists(progress), "the first trainer never saved"
        second = run_cli("train", *flags, "--steps", "3000")
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert lines[-1] == (
            f"Error: {workdir} is in use by another training process (pid "
            f"{first.pid} on {socket.gethostname()}); wait for it to finish "
            "or choose another --workdir")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with open(os.path.join(workdir, "log.csv")) as f:
        assert f.read().count("epoch,") == 1  # one header, one writer
    # The killed trainer's lock file stays; the next run takes it over.
    with open(os.path.join(workdir, "lock")) as f:
        assert f.read().split()[0] == str(first.pid)
    done = read_json(progress)["updates"]
    third = run_cli("train", *flags, "--steps", str(done + 3))
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"taking over the lock of pid {first.pid}" in third.stderr
    results = read_json(os.path.join(workdir, "results.json"))
    assert results["updates"] == done + 3
    assert not os.path.exists(os.path.join(workdir, "lock"))
