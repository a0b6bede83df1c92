"""The run directory's safety: whole files, damaged checkpoints,
leftovers, and the folders and files a run refuses to take over."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from helpers import TINY
from helpers import TINY_FLAGS
from helpers import logged_updates
from helpers import read_json
from helpers import run_cli
from helpers import tiny32
from helpers import truncate

from ram_tf import rundir
from ram_tf import training

# -- whole files -----------------------------------------------------------


def _killed_while(workdir, patch, call):
    """Runs `call` in a fresh Python process in which `patch` (source
    defining `half(*args, **kwargs)`) writes part of a file and then
    SIGKILLs the process, as a kill in the middle of that write would:
    no `finally`, no `atexit`. Returns the process's exit code."""
    script = "\n".join([
        "import os, signal, sys",
        "import keras",
        "from ram_tf import config, export, training",
        "def die():",
        "    os.kill(os.getpid(), signal.SIGKILL)",
        patch,
        call,
    ])
    out = subprocess.run([sys.executable, "-c", script, workdir],
                         capture_output=True, text=True, timeout=300)
    return out.returncode, out.stderr


def test_a_kill_during_a_json_write_leaves_the_old_file(tmp_path):
    path = str(tmp_path / "progress.json")
    rundir.write_json(path, {"updates": 3})
    code, err = _killed_while(
        path,
        "import json\n"
        "def half(obj, f, **kwargs):\n"
        "    f.write('{\"updates\": ')\n"
        "    f.flush()\n"
        "    die()\n"
        "json.dump = half",
        "from ram_tf import rundir\n"
        "rundir.write_json(sys.argv[1], {'updates': 6})")
    assert code == -signal.SIGKILL, err[-2000:]
    assert read_json(path) == {"updates": 3}
    # The cut temp file is a leftover the next run removes.
    assert sorted(os.listdir(tmp_path)) == ["progress.json",
                                            "progress.json.tmp"]
    assert rundir.clean_leftovers(str(tmp_path)) == ["progress.json.tmp"]


def test_a_kill_during_a_manifest_write_leaves_the_old_one(tmp_path):
    from ram_tf import manifest

    base = str(tmp_path)
    manifest.write(base, {"artefacts": {"1": {}}})
    code, err = _killed_while(
        base,
        "import json\n"
        "def half(obj, f, **kwargs):\n"
        "    f.write('{\"artefacts\": ')\n"
        "    f.flush()\n"
        "    die()\n"
        "json.dump = half",
        "from ram_tf import manifest\n"
        "manifest.write(sys.argv[1], {'artefacts': {'1': {}, '2': {}}})")
    assert code == -signal.SIGKILL, err[-2000:]
    assert read_json(os.path.join(base, "MANIFEST.json")) == {
        "artefacts": {"1": {}}}
    temps = [n for n in os.listdir(base) if n != "MANIFEST.json"]
    assert len(temps) == 1 and temps[0].startswith(".MANIFEST."), temps
    # The next export into the folder removes the dead writer's temp.
    assert manifest.clean_leftovers(base) == temps
    assert os.listdir(base) == ["MANIFEST.json"]


def test_a_kill_during_the_weights_write_leaves_no_damaged_weights(
        mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    code, err = _killed_while(
        workdir,
        "def half(self, path, *args, **kwargs):\n"
        "    with open(path, 'wb') as f:\n"
        "        f.write(b'\\x89HDF\\r\\n\\x1a\\n' + bytes(88))\n"
        "        f.flush()\n"
        "    die()\n"
        "keras.Model.save_weights = half",
        f"training.train_and_evaluate(config.resolve('ram', 'mnist28', "
        f"{dict(TINY, **{'train.steps': 6})!r}), sys.argv[1], verbose=0, "
        f"evaluate_test=False)")
    assert code == -signal.SIGKILL, err[-2000:]
    assert os.path.getsize(os.path.join(workdir, "model.tmp.weights.h5")) == 96
    assert not os.path.exists(os.path.join(workdir, "model.weights.h5"))
    # The checkpoint of update 6 stands in for the final weights.
    assert training.trained_updates(workdir, tiny32(6)) == 6
    _, model = training.load_run(workdir)
    assert model.count_params() > 0
    out = run_cli("train", *TINY_FLAGS, "--workdir", workdir, "--steps", "9",
                  "--verbose", "0")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "removed leftovers of an interrupted run" in out.stdout
    assert not os.path.exists(os.path.join(workdir, "model.tmp.weights.h5"))
    assert rundir.h5_readable(os.path.join(workdir, "model.weights.h5"))


def test_a_kill_during_an_export_leaves_no_version_and_is_cleaned(
        mnist_dir, cache_dir, tmp_path):
    from ram_tf import export

    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny32(3), workdir, verbose=0,
                                evaluate_test=False)
    out = str(tmp_path / "exports")
    code, err = _killed_while(
        workdir,
        "def half(model, path, *args, **kwargs):\n"
        "    os.makedirs(path, exist_ok=True)\n"
        "    with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:\n"
        "        f.write(b'half')\n"
        "    die()\n"
        "export.write_saved_model = half",
        f"export.export_run(sys.argv[1], out={out!r}, score=False)")
    assert code == -signal.SIGKILL, err[-2000:]
    base = os.path.join(out, "ram_mnist28")
    left = os.listdir(base)
    # Only the killed export's staging folder: no version TF Serving
    # would serve, no manifest naming one.
    assert len(left) == 1 and left[0].startswith(".staging-"), left
    done = export.export_run(workdir, out=out, score=False)
    assert done["path"] == os.path.join(base, "1")
    assert sorted(os.listdir(base)) == ["1", "MANIFEST.json"]


# -- checkpoints and leftovers -------------------------------------------------


def test_a_garbage_checkpoint_state_file_does_not_restart_from_zero(
        mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny32(6), workdir, verbose=0,
                                evaluate_test=False)
    with open(os.path.join(workdir, "checkpoints", "checkpoint"), "w") as f:
        f.write("not a checkpoint state {{{\n")
    out = run_cli("train", *TINY_FLAGS, "--workdir", workdir, "--steps", "9",
                  "--verbose", "0")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resuming at update 6 of 9 (ckpt-2)" in out.stdout + out.stderr
    assert read_json(os.path.join(workdir, "results.json"))["updates"] == 9
    assert logged_updates(workdir) == [3, 6, 9]  # one epoch more, not three
    with open(os.path.join(workdir, "checkpoints", "checkpoint")) as f:
        assert f.readline() == 'model_checkpoint_path: "ckpt-3"\n'


def test_a_damaged_latest_checkpoint_falls_back_and_leftovers_go(
        mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny32(9), workdir, verbose=0,
                                evaluate_test=False)
    ckpts = os.path.join(workdir, "checkpoints")
    truncate(os.path.join(ckpts, "ckpt-3.data-00000-of-00001"), 10)
    with open(os.path.join(ckpts, "checkpoint"), "w") as f:
        f.write("garbage")
    # What a kill in the middle of a checkpoint or JSON write leaves.
    os.makedirs(os.path.join(ckpts, "ckpt-4_temp"))
    for name in ("checkpoints/ckpt-4_temp/part-00000-of-00001.index",
                 "checkpoints/checkpoint.tmp1f2e3d", "progress.json.tmp",
                 "model.tmp.weights.h5"):
        with open(os.path.join(workdir, name), "w") as f:
            f.write("partial")
    out = run_cli("train", *TINY_FLAGS, "--workdir", workdir, "--steps",
                  "12", "--verbose", "0")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "could not read checkpoint ckpt-3 (" in out.stderr
    assert "); using the one before it, ckpt-2" in out.stderr
    assert "removed leftovers of an interrupted run" in out.stdout
    assert read_json(os.path.join(workdir, "results.json"))["updates"] == 12
    assert logged_updates(workdir) == [3, 6, 9, 12]
    assert sorted(os.listdir(ckpts)) == [
        "checkpoint", "ckpt-3.data-00000-of-00001", "ckpt-3.index",
        "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert not [n for n in os.listdir(workdir) if "tmp" in n]


def test_unreadable_checkpoints_are_refused_not_overwritten(
        mnist_dir, cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny32(6), workdir, verbose=0,
                                evaluate_test=False)
    ckpts = os.path.join(workdir, "checkpoints")
    for name in ("ckpt-1.index", "ckpt-2.index"):
        truncate(os.path.join(ckpts, name), 10)
    before = {n: os.path.getmtime(os.path.join(ckpts, n))
              for n in os.listdir(ckpts)}
    result = run_cli("train", *TINY_FLAGS, "--workdir", workdir, "--steps",
                     "9")
    assert result.returncode == 2, result.stderr[-2000:]
    assert (f"Error: none of the checkpoints in {ckpts} can be read: "
            "ckpt-2 (") in result.stderr
    assert "Refusing to start again from update 0" in result.stderr
    assert {n: os.path.getmtime(os.path.join(ckpts, n))
            for n in os.listdir(ckpts)} == before
    assert not os.path.exists(os.path.join(workdir, "lock"))
    # Index files gone altogether (deleted by hand), the data still there:
    # still checkpoints that cannot be read, not an empty folder.
    for name in ("ckpt-1.index", "ckpt-2.index"):
        os.remove(os.path.join(ckpts, name))
    before = {n: os.path.getmtime(os.path.join(ckpts, n))
              for n in os.listdir(ckpts)}
    result = run_cli("train", *TINY_FLAGS, "--workdir", workdir, "--steps",
                     "9")
    assert result.returncode == 2, result.stderr[-2000:]
    assert ("ckpt-2 (its .index file is missing); ckpt-1 (its .index file "
            "is missing)") in result.stderr
    assert {n: os.path.getmtime(os.path.join(ckpts, n))
            for n in os.listdir(ckpts)} == before


def test_a_refused_checkpoint_leaves_no_unrestored_value_warnings(
        tmp_path):
    import gc
    import logging

    import tensorflow as tf

    directory = str(tmp_path / "checkpoints")
    saved = tf.train.Checkpoint(v=tf.Variable(tf.zeros([4])),
                                step=tf.Variable(1))
    tf.train.CheckpointManager(saved, directory, max_to_keep=2).save()
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    tf.get_logger().addHandler(handler)
    try:
        other = tf.train.Checkpoint(v=tf.Variable(tf.zeros([3])))
        with pytest.raises(rundir.CheckpointError, match="other shapes"):
            rundir.restore_checkpoint(other, directory)
        del other
        gc.collect()
        # The same deleted without our error: TensorFlow does warn.
        tf.train.Checkpoint(v=tf.Variable(tf.zeros([4]))).restore(
            tf.train.latest_checkpoint(directory))
        gc.collect()
    finally:
        tf.get_logger().removeHandler(handler)
    warned = [m for m in messages if "unrestored values" in m]
    assert len(warned) == 1, messages


def test_a_file_in_place_of_the_work_dir_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(rundir.RunDirError, match="notes.txt exists and is "
                       "not a folder; expected a run directory"):
        training.train_and_evaluate(tiny32(2), str(path), verbose=0)
    assert path.read_text() == "mine"


def test_resume_trims_a_log_two_writers_left(tmp_path):
    path = str(tmp_path / "log.csv")
    header = "epoch,updates,val_accuracy"
    with open(path, "w") as f:
        f.write(f"{header}\n0,3,0.1\n{header}\n0,3,0.15\n1,6,0.2\n1,6\n"
                "2,9,0.3\n")
    rundir.trim_log(path, updates=6, epochs=2)
    with open(path) as f:
        assert f.read().splitlines() == [header, "0,3,0.15", "1,6,0.2"]


def test_a_run_without_its_checkpoints_is_refused_not_started_again(
        mnist_dir, cache_dir, tmp_path):
    # A finished run whose checkpoints/ was deleted for space: training
    # again from update 0 replaced its weights, results and log.
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(tiny32(2), workdir, verbose=0,
                                evaluate_test=False)
    shutil.rmtree(os.path.join(workdir, "checkpoints"))
    def files():
        return {str(p.relative_to(workdir)): p.read_bytes()
                for p in sorted((tmp_path / "run").rglob("*"))
                if p.is_file()}

    before = files()
    for steps in (2, 4):  # the same command, or one asking for more
        with pytest.raises(rundir.RunDirError,
                           match="records 2 updates but has no checkpoint"):
            training.train_and_evaluate(tiny32(steps), workdir, verbose=0,
                                        evaluate_test=False)
    assert files() == before


def test_a_log_without_updates_or_epochs_is_refused_not_trimmed(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(rundir.RunDirError, match="not this run's log"):
        rundir.trim_log(str(path), updates=6, epochs=2)
    assert path.read_text() == "a,b\n1,2\n"


def test_cleaning_leftovers_keeps_files_a_run_did_not_write(tmp_path):
    # A work dir may be a folder holding other things (--workdir .).
    for name in ("results.json.tmp", "log.csv.tmp", "model.tmp.weights.h5",
                 "notes.tmp", "draft.json.tmp"):
        (tmp_path / name).write_text("x")
    removed = rundir.clean_leftovers(str(tmp_path))
    assert sorted(removed) == ["log.csv.tmp", "model.tmp.weights.h5",
                               "results.json.tmp"]
    assert sorted(os.listdir(tmp_path)) == ["draft.json.tmp", "notes.tmp"]


@pytest.mark.parametrize("files", [
    {"log.csv": "epoch,loss\n1,0.5\n2,0.4\n"},
    {"model.weights.h5": "the user's weights", "results.json": "{}"},
    {"checkpoints/checkpoint": "x", "notes.txt": "mine"},
    {"MANIFEST.json": "{}"},  # an export folder TF Serving may serve
])
def test_a_folder_with_run_files_but_no_config_is_refused_untouched(
        tmp_path, files):
    # Another program's log.csv or weights, or a run that lost its
    # config.json: training there trimmed the log and overwrote the rest.
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    with pytest.raises(rundir.RunDirError, match=r"no config\.json.*"
                       r"restore its config\.json or choose another"):
        training.train_and_evaluate(tiny32(2), str(tmp_path), verbose=0,
                                    evaluate_test=False)
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert after == before  # no config.json, no lock left
    for name, text in files.items():
        assert (tmp_path / name).read_text() == text


def test_a_folder_with_other_files_only_can_hold_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    rundir.check_run_files_have_a_config(str(tmp_path))  # no error
    (tmp_path / "log.csv").write_text("a,b\n")
    (tmp_path / "config.json").write_text("{}")
    rundir.check_run_files_have_a_config(str(tmp_path))  # a run's log


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["glimpse"].update(size="abc"),
     "glimpse.size='abc' is invalid: must be an integer"),
    (lambda c: c["glimpse"].update(num_glimpses=-3),
     "glimpse.num_glimpses=-3 is invalid"),
    (lambda c: c.update(model="foo"), "model='foo' is invalid: allowed: ram"),
    (lambda c: c["core"].update(wings=2), "unknown setting 'core.wings'"),
    (lambda c: c.update(gilmpse=c.pop("glimpse")),
     "unknown setting group 'gilmpse'; expected model, task and the groups "
     "glimpse, core"),
    (lambda c: c.pop("task"), "task missing"),
])
def test_a_damaged_config_is_named_when_loading_or_resuming(tmp_path, edit,
                                                            message):
    # A hand-edited config.json: tracebacks from deep inside the layers, or
    # for an unknown model a run scored as if nothing were wrong.
    workdir = tmp_path / "run"
    workdir.mkdir()
    saved = tiny32(2).to_dict()
    edit(saved)
    (workdir / "config.json").write_text(json.dumps(saved))
    from ram_tf import loading

    with pytest.raises(rundir.RunDirError, match=r"config\.json: .*" + message
                       + r".*restore it or choose another --workdir"):
        loading.load_run(str(workdir))
    with pytest.raises(rundir.RunDirError, match=message):
        training.train_and_evaluate(tiny32(2), str(workdir), verbose=0,
                                    evaluate_test=False)
