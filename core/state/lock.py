"""Only one engine may own a state_dir: an exclusive flock that the OS drops when the owner dies,
so a crashed engine never leaves a stale lock behind.

The lock is taken on the state_dir folder itself, not on a file in it. A lock file can be
deleted (or replaced) while its owner runs: the next engine then makes a fresh file, locks that
and runs the same run beside the first. The folder cannot go while it holds the journal and the
logs without everything else going too (and an engine notices its journal vanishing). The
owner's pid comes from the kernel's table of locks (/proc/locks), so it is known even after
engine.lock, which also holds it for people and other systems, has been deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from core.errors import UserError
from core.state import statedir

LOCK_FILE = "engine.lock"
PROC_LOCKS = Path("/proc/locks")


class EngineLock:
    """Exclusive ownership of a state_dir for one engine process."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        statedir.ensure(self.state_dir)
        fd = _open_folder(self.state_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = self._holder(fd)
            os.close(fd)
            shown = str(owner) if owner else "unknown"
            raise UserError(
                f"another engine (pid {shown}) owns {self.state_dir}; wait for it, or stop it "
                f"(kill {shown}) and start again: its work is resumed"
            ) from None
        self._fd = fd
        self._write_pid()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def owner(self) -> int | None:
        """The pid holding the lock (-1: held, by whom unknown), or None when it is free."""
        try:
            fd = _open_folder(self.state_dir)
        except OSError:
            return None  # no folder, no engine
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._holder(fd) or -1
            return None
        finally:
            os.close(fd)  # drops the shared lock, if this took it

    def _write_pid(self) -> None:
        """For people and for systems without /proc/locks: nothing relies on the file."""
        statedir.create_file(self.path)
        with contextlib.suppress(OSError), open(self.path, "r+b") as file:
            file.truncate(0)
            file.write(str(os.getpid()).encode())

    def _holder(self, fd: int) -> int | None:
        return _locker(os.fstat(fd)) or self._pid_in_file()

    def _pid_in_file(self) -> int | None:
        try:
            text = self.path.read_text(errors="replace").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None


def _open_folder(state_dir: Path) -> int:
    # Not inherited by jobs (os.open's default): a job outliving its engine must not hold the
    # state_dir against the next one.
    return os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)


def _locker(folder: os.stat_result) -> int | None:
    """The pid of the process holding an flock on this folder, from /proc/locks, whose lines
    read `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF` (a waiter's line has "->")."""
    try:
        lines = PROC_LOCKS.read_text().splitlines()
    except OSError:
        return None
    device = f"{os.major(folder.st_dev):02x}:{os.minor(folder.st_dev):02x}"
    same_inode: list[int] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or "->" in fields:
            continue
        pid, where = fields[4], fields[5].rsplit(":", 1)
        if len(where) != 2 or where[1] != str(folder.st_ino) or not pid.isdigit():
            continue
        if where[0] == device:
            return int(pid)
        same_inode.append(int(pid))  # a stacked file system may show another device number
    return same_inode[0] if len(same_inode) == 1 else None
