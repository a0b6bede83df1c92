"""TensorFlow's native log lines, kept off the terminal where they say
nothing to act on.

TensorFlow's C++ code writes to file descriptor 2 directly, some of it at
import, before `TF_CPP_MIN_LOG_LEVEL` is read, so neither that variable
nor Python's `sys.stderr` can hide it. `filter_native_stderr` routes the
descriptor through a pipe for the process's life: a thread reads it line
by line, drops the CUDA probe lines on a machine without an NVIDIA driver
and the converter's notes about ram_tf's own graphs, applies
`TF_CPP_MIN_LOG_LEVEL` to TensorFlow's native log lines (`_keeps`), and
writes everything else through unchanged.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# TensorFlow's probe for CUDA on a machine without an NVIDIA driver: at
# import (before absl::InitializeLog, so TF_CPP_MIN_LOG_LEVEL cannot hide
# them) and at the first op.
_CUDA_PROBE = re.compile(
    r"Could not find cuda drivers|failed call to cuInit|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|"
    r"All log messages before absl::InitializeLog\(\) is called")
# Native log lines: I (info), W (warning), E (error), F (fatal).
_NATIVE = re.compile(r"^(?:\d{4}-\d\d-\d\d [\d:.]+: )?([IWEF])(?:\d{4} |"
                     r" (?:tensorflow|external)/)")
_CONTINUED = re.compile(r"^To enable the following instructions:")
# Notes about ram_tf's own graphs that ask nothing of the user, shown only
# with TF_CPP_MIN_LOG_LEVEL=0: the TFLite converter reading the Cast ops it
# made into Identity (an error-level line, though the attribute is just
# ignored) and the TFLite interpreter's delegate notice.
_OWN_GRAPH_NOTES = re.compile(
    r"NodeDef mentions attribute Truncate which is not in the op "
    r"definition: Op<name=Identity|"
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU")


def _keeps(line: str, min_level: int, cpu_only: bool, state: dict) -> bool:
    """Whether a native stderr line reaches the terminal."""
    if cpu_only and _CUDA_PROBE.search(line):
        state["dropped"] = True
        return False
    if min_level > 0 and _OWN_GRAPH_NOTES.search(line):
        state["dropped"] = True
        return False
    match = _NATIVE.match(line)
    if match:
        level = "IWEF".index(match.group(1))
        state["dropped"] = level < min_level
        return not state["dropped"]
    if _CONTINUED.match(line):  # second line of an info message
        return not state.get("dropped")
    state["dropped"] = False
    return True


def _may_drop(start: str) -> bool:
    """Whether a line begun with `start` (its newline not written yet)
    could be one `_keeps` drops, so the pump waits for the rest of it.
    TFLite writes its "INFO: " notices and their newlines separately."""
    return bool(_NATIVE.match(start) or _CUDA_PROBE.search(start)
                or _OWN_GRAPH_NOTES.search(start)
                or "INFO: ".startswith(start[:6])
                or start.startswith("INFO: "))


def _cpu_only() -> bool:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible in ("", "-1") or not os.path.exists(
        "/proc/driver/nvidia/version")


def filter_native_stderr() -> None:
    """Route file descriptor 2 through a filter for the process's life.

    TensorFlow's C++ code logs at import before `TF_CPP_MIN_LOG_LEVEL` is
    read, so the variable cannot hide those lines. The filter drops the
    CUDA probe lines on a machine without an NVIDIA driver (or with
    `CUDA_VISIBLE_DEVICES` empty) and applies `TF_CPP_MIN_LOG_LEVEL` to the
    native lines TensorFlow writes regardless; everything else, Python's
    own stderr and native errors included, passes unchanged.
    """
    try:
        sys.stderr.flush()
        original = os.dup(2)
    except (AttributeError, OSError, ValueError):
        return
    try:
        min_level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        min_level = 0
    cpu_only = _cpu_only()
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def write(data: bytes):
        while data:
            data = data[os.write(original, data):]

    def pump():
        state, pending = {}, b""
        while True:
            try:
                chunk = os.read(read_end, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            out = [line + b"\n" for line in lines
                   if _keeps(line.decode(errors="replace"), min_level,
                             cpu_only, state)]
            if pending and not _may_drop(pending.decode(errors="replace")):
                out.append(pending)  # a prompt or progress: no waiting
                pending = b""
            write(b"".join(out))
        if pending:
            write(pending)
        os.close(read_end)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # closes the pipe's write end: the pump ends
        thread.join(timeout=5)

    atexit.register(restore)
