"""One trainer per run directory: `RunLock(workdir)`.

Two processes training in one folder would interleave checkpoints and
log lines; the lock refuses the second with the first one's pid and host.
Like `ram_tf.rundir`, this module never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

from ram_tf.rundir import RunDirError

try:
    import fcntl
except ImportError:  # Windows: the lock file's existence is the lock
    fcntl = None

logger = logging.getLogger("ram_tf")


class RunLockedError(RunDirError):
    """Another process is training in the work dir."""


class RunLock:
    """`workdir/lock`, held while a process trains in `workdir`.

    The file names the holder ("<pid> <host>"). With fcntl the OS lock on
    the open file is what counts: it dies with its process, so a trainer
    killed with SIGKILL never blocks the next one, which takes the lock
    over with a note. Without fcntl the file is created with O_EXCL and a
    stale one must be deleted by hand (the error says so).
    """

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, "lock")
        self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def _refuse(self, holder: str, extra: str = ""):
        raise RunLockedError(
            f"{self.workdir} is in use by another training process "
            f"({holder}); wait for it to finish or choose another "
            f"--workdir{extra}")

    def acquire(self) -> None:
        if fcntl is None:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR)
            except FileExistsError:
                with open(self.path) as f:
                    holder = _describe(f.read())
                self._refuse(holder, f" (if it has ended, delete {self.path})")
            self._take(fd)
            return
        for _ in range(10):
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _describe(_read_fd(fd))
                os.close(fd)
                self._refuse(holder)
            # A holder that was releasing may have unlinked this file
            # after we opened it: then the lock we hold guards nothing.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_fd(fd).strip()
            if previous:
                logger.warning(
                    "%s: taking over the lock of %s, which ended without "
                    "releasing it", self.path, _describe(previous))
            self._take(fd)
            return
        self._refuse("the lock file keeps changing")

    def _take(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlinked while still held: a waiter that opened the old file sees
        # the inode change and opens the path again.
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None


def _read_fd(fd: int) -> str:
    return os.pread(fd, 256, 0).decode(errors="replace")


def _describe(content: str) -> str:
    parts = content.split()
    if not parts:
        return "pid unknown"
    return f"pid {parts[0]}" + (f" on {parts[1]}" if len(parts) > 1 else "")
