"""An exported-models folder: its layout, MANIFEST.json, checksums, and the
rules that keep an export from damaging what is already there.

  NAME/N/                 SavedModel, TF Serving version N (the highest is
                          the one served)
  NAME/model_Q.tflite     TFLite, Q in fp32, dynamic, float16, int8
  NAME/model.onnx         ONNX, the deterministic float32 policy
  NAME/MANIFEST.json      task and input of the folder; per artefact its
                          run's config, test error, library versions and
                          sha256

The rules (`check_target`), all applied before anything is written:
- a folder holds one task and one input shape;
- an existing artefact is replaced only when asked (`force`);
- a new SavedModel version beside existing ones must be asked for by
  number (or `force`), since TF Serving would serve it at once.

`verify` checks an artefact against the sha256 its manifest records, for
`load_exported`, `ram-tf predict` and `ram-tf visualize`. A checksum guards
against damage and mix-ups, not against a hostile folder whose manifest
was rewritten too: load only SavedModels you trust, since a SavedModel's
graph can hold ops that read and write files (TFLite builtins cannot).

No TensorFlow here: `load_exported` on a .tflite or .onnx file runs
without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

from ram_tf import rundir

MANIFEST = "MANIFEST.json"

# What `ram_tf.export` makes, here without TensorFlow so that the CLI reads
# its choices and defaults from them before TensorFlow loads.
FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZE = ("none", "dynamic", "float16", "int8")  # TFLite only
# What an exported SavedModel's glimpse network and core multiply in
# (`ram_tf.export.serving_model`); TFLite files are float32 (or quantized).
EXPORT_PRECISIONS = ("float32", "mixed_bfloat16")
# Rollout chains of an exported SavedModel (`ram_tf.export`).
DEFAULT_CHAINS = 2
# Where `export_run` writes by default: not exported_models/, the folder of
# the shipped models, which a user's export run from a checkout would hit.
DEFAULT_OUT = "exports"


class ExportError(RuntimeError):
    """An export that cannot be made; nothing was written."""


class IntegrityError(ValueError):
    """An artefact whose bytes are not those its manifest records."""


STAGING_PREFIX = ".staging-"
MANIFEST_TEMP_PREFIX = ".MANIFEST."


def new_staging(base: str) -> str:
    """A private folder in `base` for an export being written.

    Its name carries this process's id, so a later export can tell the
    leftover of a killed export (its process is gone), which it removes,
    from one another process is still writing.
    """
    clean_leftovers(base)
    staging = tempfile.mkdtemp(dir=base,
                               prefix=f"{STAGING_PREFIX}{os.getpid()}-")
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide it from a server
    return staging


def clean_leftovers(base: str) -> list[str]:
    """Remove the staging folders and manifest temps of exports whose
    process is gone."""
    removed = []
    for name in sorted(os.listdir(base)):
        prefix = next((p for p in (STAGING_PREFIX, MANIFEST_TEMP_PREFIX)
                       if name.startswith(p)), None)
        if prefix is None:
            continue
        pid = name[len(prefix):].split("-")[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        rundir.remove(os.path.join(base, name))
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sha256(path: str) -> str:
    """Hex sha256 of a file, or of a folder's relative paths and bytes."""
    h = hashlib.sha256()
    if os.path.isdir(path):
        for root, _, files in sorted(os.walk(path)):
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(os.path.relpath(full, path).encode())
                with open(full, "rb") as f:
                    h.update(f.read())
    else:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def versions(base: str) -> list[int]:
    """The SavedModel version numbers in `base`, ascending."""
    if not os.path.isdir(base):
        return []
    return sorted(int(n) for n in os.listdir(base) if n.isdigit())


def latest_version(path: str) -> str:
    """`path` if it is a SavedModel, else its highest version folder."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    found = versions(path)
    if not found:
        run = os.path.exists(os.path.join(path, "config.json"))
        raise FileNotFoundError(
            f"{path} holds no SavedModel (saved_model.pb) or version folder"
            + ("; it is a run directory: export it first (ram-tf export "
               f"{path})" if run else "")
            + ("; a .keras file loads with keras.models.load_model"
               if path.endswith(".keras") else ""))
    return os.path.join(path, str(found[-1]))


def read(base: str) -> dict:
    """The manifest of model folder `base` ({"artefacts": {}} if none)."""
    path = os.path.join(base, MANIFEST)
    if not os.path.exists(path):
        return {"artefacts": {}}
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as e:
        raise ExportError(f"{path} is not valid JSON ({e})") from e
    data.setdefault("artefacts", {})
    return data


def write(base: str, manifest: dict) -> None:
    """Replace `base`/MANIFEST.json in one `os.replace`."""
    path = os.path.join(base, MANIFEST)
    # The writer's pid in the name: a killed write's temp is a leftover
    # `clean_leftovers` removes, a live one's is left alone.
    fd, tmp = tempfile.mkstemp(dir=base,
                               prefix=f"{MANIFEST_TEMP_PREFIX}{os.getpid()}-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a server
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def fill_checksums(base: str, manifest: dict) -> None:
    """Record the sha256 of listed artefacts that have none yet."""
    for key, entry in manifest["artefacts"].items():
        path = os.path.join(base, key)
        if "sha256" not in entry and os.path.exists(path):
            entry["sha256"] = sha256(path)


def check_target(base: str, manifest: dict, *, task: str, hwc, key: str,
                 version_given: bool, force: bool) -> None:
    """Refuse an export of `task` with input `hwc` to `base`/`key` that
    would mix tasks or shapes, replace an artefact without `force`, or add
    an unrequested SavedModel version that TF Serving would serve.

    Raises:
      ExportError: naming what is there and how to export anyway.
    """
    name = os.path.basename(os.path.normpath(base))
    shape = list(manifest.get("input", {}).get("shape", [None]))[1:]
    held = manifest.get("task")
    if held is not None and (held != task or shape != list(hwc)):
        raise ExportError(
            f"{base} holds {held} models of input {shape}; this run is "
            f"{task} with input {list(hwc)}: export it under another "
            "--name (one task and input shape per model folder)")
    target = os.path.join(base, key)
    if os.path.exists(target) and not force:
        raise ExportError(
            f"{target} exists; exports never replace an artefact unless "
            "asked (--force, or force=True), or choose another --name "
            "or --out" + (" or --version" if key.isdigit() else ""))
    found = versions(base)
    if key.isdigit() and found and not version_given and not force:
        raise ExportError(
            f"{name} already has SavedModel version(s) "
            f"{', '.join(map(str, found))} and TF Serving serves the "
            f"highest: add this one with --version {key} (it will be "
            "served), or export under another --name or --out")


def move_into_place(new: str, final: str, force: bool) -> None:
    """Rename `new` to `final` atomically; an existing `final` is replaced
    only with `force` (a race with another export is refused)."""
    if os.path.isdir(new):  # a SavedModel version
        if os.path.exists(final):
            if not force:
                raise ExportError(f"{final} appeared during the export; "
                                  "nothing replaced")
            old = new.rstrip(os.sep) + ".replaced"
            os.rename(final, old)  # moved aside, deleted with staging
            os.rename(new, final)
            shutil.rmtree(old)
        else:
            os.rename(new, final)  # refuses a non-empty final on POSIX
    elif force:
        os.replace(new, final)
    else:
        try:
            os.link(new, final)  # fails if final exists: never clobbers
        except FileExistsError:
            raise ExportError(f"{final} appeared during the export; nothing "
                              "replaced") from None
        except OSError:  # a file system without hard links
            if os.path.exists(final):
                raise ExportError(f"{final} appeared during the export; "
                                  "nothing replaced") from None
            os.replace(new, final)


def locate(path: str) -> tuple[str, str]:
    """(model folder, manifest key) of an artefact path: a .tflite or
    .onnx file, a SavedModel version folder, or a model folder (its highest
    version)."""
    if path.endswith((".tflite", ".onnx")):
        full = os.path.abspath(path)
    else:
        full = os.path.abspath(latest_version(path))
    return os.path.dirname(full), os.path.basename(full)


def entry_of(path: str) -> tuple[dict, dict]:
    """(manifest, the artefact's entry) for an artefact path; empty dicts
    where there is no manifest or no entry."""
    base, key = locate(path)
    if not os.path.exists(os.path.join(base, MANIFEST)):
        return {}, {}
    manifest = read(base)
    return manifest, manifest["artefacts"].get(key, {})


def config_of(path: str) -> dict | None:
    """The run config an artefact was exported from (its own, else the
    folder's), or None without a manifest."""
    manifest, entry = entry_of(path)
    return entry.get("config", manifest.get("config"))


def verify(path: str) -> None:
    """Refuse an artefact whose sha256 differs from its manifest's record
    (nothing to check without a manifest or a recorded sha256).

    Raises:
      IntegrityError: naming both checksums.
    """
    base, key = locate(path)
    _, entry = entry_of(path)
    want = entry.get("sha256")
    if want is None:
        return
    got = sha256(os.path.join(base, key))
    if got != want:
        raise IntegrityError(
            f"{os.path.join(base, key)} has sha256 {got[:12]}..., but "
            f"{os.path.join(base, MANIFEST)} records {want[:12]}...: the "
            "artefact changed after export (damaged, or replaced by "
            "hand); restore or re-export it, and load only SavedModels "
            "you trust")


def shipped_folder() -> str | None:
    """The repository's exported_models/ when ram_tf runs from a checkout
    (an editable install), else None."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.join(repo, "exported_models")
    return folder if os.path.isdir(folder) else None


def is_shipped_folder(out: str) -> bool:
    """Whether `out` is the repository's folder of shipped models."""
    shipped = shipped_folder()
    return shipped is not None and os.path.realpath(out) == os.path.realpath(
        shipped)
