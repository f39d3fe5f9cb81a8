"""The state_dir as a place on disk: private to its owner, and said so in one line when it cannot
be created, written or read.

The journal keeps the tails of every job's output and the logs keep all of it, so nothing under
state_dir is for other users: the folder is 0700 and its files 0600. With `group:` in
backfill.yaml its members may read too (0750 and 0640, the folder owned by that group and
setgid, so what is made inside it belongs to the group as well).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import stat
from pathlib import Path

from core.errors import UserError

PRIVATE_DIR = 0o700
GROUP_DIR = 0o2750  # setgid: files and folders made inside take the folder's group
#: the engine's umask: what its jobs' logs and every other file it makes are created with
PRIVATE_UMASK = 0o077
GROUP_UMASK = 0o027
_PROBE = ".backfill-write-probe"


def cannot(path: Path | str, what: str, exc: OSError) -> UserError:
    """ "state/: cannot write (Permission denied, EACCES): ..." in one line."""
    code = errno.errorcode.get(exc.errno or 0, "?")
    return UserError(
        f"{path}: cannot {what} ({exc.strerror or exc}, {code}): give this user access to "
        "it, or point state_dir in backfill.yaml elsewhere"
    )


#: the operator's umask, from before the engine set its own: the one jobs run with
_operator_umask: int | None = None


def engine_umask(group: str | None) -> int:
    """For the engine process, before it makes anything: what it creates under state_dir (logs
    above all) is private, whichever code creates it. Returns the umask it replaced."""
    global _operator_umask
    old = os.umask(GROUP_UMASK if group else PRIVATE_UMASK)
    if _operator_umask is None:
        _operator_umask = old
    return old


def job_umask() -> int:
    """The umask a job starts with: the operator's, so what a job writes outside state_dir is
    as shared as it would be without backfill (-1: the process's own, when none was set)."""
    return -1 if _operator_umask is None else _operator_umask


def prepare(state_dir: Path, *, group: str | None) -> None:
    """For the engine: state_dir exists with its private mode and this user can write in it.

    A folder this user owns gets exactly that mode, so one made world-readable by an older
    backfill (or by hand) is tightened; a folder of another user is left as it is. Raises a
    one-line UserError naming the folder and the errno otherwise."""
    mode = GROUP_DIR if group else PRIVATE_DIR
    ensure(state_dir)
    try:
        info = state_dir.stat()
        if info.st_uid == os.geteuid():
            if group is not None:
                gid = _gid(group)
                if info.st_gid != gid:
                    os.chown(state_dir, -1, gid)
            if stat.S_IMODE(info.st_mode) != mode:
                os.chmod(state_dir, mode)
    except OSError as exc:
        raise cannot(state_dir, "set its owner and mode", exc) from None
    require_writable(state_dir)


def ensure(state_dir: Path) -> None:
    """state_dir exists: made private (0700) if it did not, parents as the umask says."""
    try:
        with contextlib.suppress(FileExistsError):
            state_dir.mkdir(mode=PRIVATE_DIR, parents=True)
    except OSError as exc:
        raise cannot(state_dir, "create it", exc) from None
    if not state_dir.is_dir():
        raise cannot(state_dir, "use it", OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)))


def require_writable(state_dir: Path) -> None:
    """A real write, not a look at the mode bits: root ignores those, while a read-only file
    system or an immutable folder stops root too."""
    probe = state_dir / _PROBE
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise cannot(state_dir, "write", exc) from None


def writable(path: Path) -> bool:
    """Whether this user may write `path` (a read-only file system says no to root too)."""
    return os.access(path, os.W_OK)


def file_mode(state_dir: Path) -> int:
    """The mode of a file made in state_dir: group-readable only where the folder is."""
    try:
        shared = state_dir.stat().st_mode & stat.S_IRGRP
    except OSError:
        shared = 0
    return 0o640 if shared else 0o600


def create_file(path: Path) -> None:
    """Make `path` (if it is not there) with the mode its folder calls for, never wider, before
    a library opens it with a mode of its own (SQLite's is 0644 less the umask)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode(path.parent))
    except FileExistsError:
        return
    except OSError as exc:
        raise cannot(path.parent, "write", exc) from None
    os.close(fd)


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise UserError(f"group: no Unix group {group!r} on this machine") from None
