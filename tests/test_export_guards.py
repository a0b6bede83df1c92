"""Exports never replace or mix: existing artefacts, other tasks, versions
TF Serving would serve, and the repository's shipped models."""

import os
import shutil

import numpy as np
import pytest
from helpers import TINIEST
from helpers import train_tiny

from ram_tf import export
from ram_tf import manifest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(REPO, "exported_models")


@pytest.fixture(scope="module")
def run(mnist_dir, cache_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("guards") / "run")
    train_tiny(workdir, TINIEST)
    return workdir


def _snapshot(folder):
    """Every file under `folder` (hidden ones too) -> its sha256."""
    return {os.path.relpath(os.path.join(root, n), folder):
            manifest.sha256(os.path.join(root, n))
            for root, _, files in os.walk(folder) for n in files}


def test_tflite_file_is_replaced_only_when_forced(run, tmp_path):
    out = str(tmp_path)
    first = export.export_run(run, out=out, fmt="tflite", score=False)
    with open(first["path"], "wb") as f:
        f.write(b"the model shipped before")
    before = _snapshot(out)
    with pytest.raises(export.ExportError, match="exists.*--force"):
        export.export_run(run, out=out, fmt="tflite", score=False)
    assert _snapshot(out) == before  # old bytes, manifest and no leftovers
    forced = export.export_run(run, out=out, fmt="tflite", score=False,
                               force=True)
    with open(forced["path"], "rb") as f:
        assert f.read(8)[4:] == b"TFL3"  # the FlatBuffer's file identifier
    from ram_tf.inference import load_exported

    images = np.zeros((1, 28, 28, 1), np.float32)
    assert load_exported(forced["path"])(images)["classes"].shape == (1,)
    assert forced["sha256"] == manifest.sha256(forced["path"])


def test_a_new_savedmodel_version_must_be_asked_for(run, tmp_path):
    out = str(tmp_path)
    one = export.export_run(run, out=out, score=False)
    assert one["path"].endswith(os.path.join("ram_mnist28", "1"))
    digest = manifest.sha256(one["path"])
    before = _snapshot(out)
    # TF Serving would serve a silent version 2 at once.
    with pytest.raises(export.ExportError, match="--version 2"):
        export.export_run(run, out=out, score=False)
    with pytest.raises(export.ExportError, match="exists"):
        export.export_run(run, out=out, version=1, score=False)
    assert _snapshot(out) == before
    two = export.export_run(run, out=out, version=2, score=False)
    assert two["path"].endswith(os.path.join("ram_mnist28", "2"))
    assert manifest.sha256(one["path"]) == digest


def test_forced_savedmodel_replaces_its_version(run, tmp_path):
    out = str(tmp_path)
    one = export.export_run(run, out=out, score=False)
    stray = os.path.join(one["path"], "stray.txt")
    with open(stray, "w") as f:
        f.write("not part of the export")
    forced = export.export_run(run, out=out, version=1, force=True,
                               score=False)
    assert not os.path.exists(stray)
    assert forced["sha256"] == manifest.sha256(forced["path"])
    assert sorted(os.listdir(os.path.dirname(forced["path"]))) == [
        "1", "MANIFEST.json"]


def test_model_folder_refuses_another_task_or_input_shape(run, tmp_path):
    # An mnist28 run under the name of a 60x60 translated60 model.
    base = tmp_path / "ram_translated60"
    base.mkdir()
    shutil.copy(os.path.join(SHIPPED, "ram_translated60", "MANIFEST.json"),
                base)
    before = _snapshot(str(tmp_path))
    for fmt in ("saved_model", "tflite"):
        with pytest.raises(export.ExportError,
                           match=r"translated60 models of input \[60, 60, 1\]"
                           r".*mnist28 with input \[28, 28, 1\]"):
            export.export_run(run, out=str(tmp_path), name="ram_translated60",
                              fmt=fmt, score=False, force=True)
    assert _snapshot(str(tmp_path)) == before


def test_artefacts_without_a_recorded_sha256_get_one(run, tmp_path):
    out = str(tmp_path)
    one = export.export_run(run, out=out, score=False)
    base = os.path.dirname(one["path"])
    data = manifest.read(base)
    del data["artefacts"]["1"]["sha256"]
    manifest.write(base, data)
    export.export_run(run, out=out, fmt="tflite", score=False)
    assert manifest.read(base)["artefacts"]["1"]["sha256"] == (
        manifest.sha256(one["path"]))


def test_each_artefact_records_its_own_config(run, tmp_path):
    entry = export.export_run(run, out=str(tmp_path), score=False)
    data = manifest.read(os.path.dirname(entry["path"]))
    assert data["artefacts"]["1"]["config"] == data["config"]
    assert data["artefacts"]["1"]["input_checks"] is True
    assert data["input"]["shape"] == [None, 28, 28, 1]
    # A manifest travels with the models: the run's name, no folder of the
    # exporting machine and no date.
    assert data["artefacts"]["1"]["source_run"] == os.path.basename(run)
    assert "exported_at" not in data["artefacts"]["1"]


def test_shipped_manifests_name_no_folder_of_a_machine():
    for name in os.listdir(SHIPPED):
        path = os.path.join(SHIPPED, name, "MANIFEST.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            text = f.read()
        assert "exported_at" not in text, name
        for entry in manifest.read(os.path.join(SHIPPED, name))[
                "artefacts"].values():
            assert not os.path.isabs(entry["source_run"]), name
            assert os.sep not in entry["source_run"], name
        # No absolute path anywhere in the manifest's values.
        assert '": "/' not in text, name


def test_default_out_is_not_the_shipped_models(monkeypatch):
    from ram_tf_cli.deploy import export as export_command

    option = next(p for p in export_command.params if p.name == "out")
    assert option.default == export.DEFAULT_OUT
    monkeypatch.chdir(REPO)
    assert not manifest.is_shipped_folder(export.DEFAULT_OUT)
    assert manifest.is_shipped_folder("exported_models")


def test_cli_export_warns_in_the_shipped_folder_and_refuses_overwrite(
        run, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ram_tf_cli.main import cli

    # A stand-in for the repository's exported_models/, so that a
    # regression could never write into the real shipped models.
    shipped = tmp_path / "exported_models"
    (shipped / "ram_translated60").mkdir(parents=True)
    shutil.copy(os.path.join(SHIPPED, "ram_translated60", "MANIFEST.json"),
                shipped / "ram_translated60")
    monkeypatch.setattr(manifest, "shipped_folder", lambda: str(shipped))
    before = _snapshot(str(shipped))
    # Refused (another task): warned, and the shipped models untouched.
    result = CliRunner().invoke(cli, [
        "export", run, "--out", str(shipped), "--name", "ram_translated60",
        "--format", "tflite", "--no-score"])
    assert result.exit_code == 2, result.output
    assert "WARNING" in result.output and "shipped" in result.output
    assert "mnist28" in result.output
    assert _snapshot(str(shipped)) == before
    # A second TFLite export into the same place: one-line refusal.
    out = str(tmp_path / "mine")
    args = ["export", run, "--out", out, "--format", "tflite", "--no-score"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    file = os.path.join(out, "ram_mnist28", "model_fp32.tflite")
    digest = manifest.sha256(file)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2
    assert "exists" in again.output and "--force" in again.output
    assert "WARNING" not in again.output
    assert manifest.sha256(file) == digest
    assert CliRunner().invoke(cli, args + ["--force"]).exit_code == 0


def test_leftovers_of_killed_exports_are_cleaned_not_live_ones(
        run, tmp_path):
    import subprocess
    import sys

    base = tmp_path / "ram_mnist28"
    gone = subprocess.run([sys.executable, "-c", "import os; "
                           "print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    for name in (f".staging-{gone}-abc", ".staging-q1w2e3",
                 f".staging-{os.getpid()}-live"):
        (base / name).mkdir(parents=True)
        (base / name / "saved_model.pb").write_bytes(b"half")
    export.export_run(run, out=str(tmp_path), score=False)
    left = sorted(p.name for p in base.iterdir() if p.name.startswith("."))
    # The killed export's and the old-style folder go; a folder another
    # live process is writing stays.
    assert left == [f".staging-{os.getpid()}-live"]


def test_version_zero_or_negative_is_refused(run, tmp_path):
    for bad in (0, -1):
        with pytest.raises(export.ExportError, match="expected an integer"):
            export.export_run(run, out=str(tmp_path), version=bad,
                              score=False)
    assert not os.path.exists(tmp_path / "ram_mnist28" / "0")


@pytest.mark.parametrize("name", ["../escaped", "a/b", "/abs", "", ".."])
def test_a_name_that_is_not_one_folder_is_refused(run, tmp_path, name):
    # It wrote outside out, past the shipped-folder warning, or fell back
    # to the default name without a word.
    out = tmp_path / "models"
    with pytest.raises(export.ExportError, match="expected one folder name"):
        export.export_run(run, out=str(out), name=name, score=False)
    assert sorted(os.listdir(tmp_path)) == []
