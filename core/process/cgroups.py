"""A cgroup v2 per attempt, where this process may make them: the kernel's list of everything an
attempt started, wherever it went (systemd's KillMode=control-group).

A process group is left with one setsid() and an environment with one exec, so the tag scan
(`tags.attempt_members`) misses a job that does both. Leaving a cgroup takes write access to the
cgroup tree, which jobs are not given on purpose. The attempt's cgroup is
`<this process's cgroup>/backfill-<digest of the tag>/`, so the next engine finds it after a crash.

The child must be born inside: moved after the spawn, a job that forks at once would leave
children outside. Python cannot spawn into a cgroup (no clone3), and a `preexec_fn` forces a
full fork of the engine (4 ms a spawn instead of 0.6 ms at 100 MB resident) that the docs call
unsafe with threads. So for the spawn the engine moves itself into the attempt's cgroup and back
right after: the child inherits it. Nothing else of the engine spawns while a run is on, and
attempts are spawned one at a time, on the event loop thread.

`BACKFILL_CGROUPS=off` turns this off (the tag scan then does the work): for a machine whose
manager of the cgroup tree (systemd without `Delegate=yes`) must not find ours in its own.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from core.process.groups import PROC

SWITCH_VAR = "BACKFILL_CGROUPS"
PREFIX = "backfill-"

T = TypeVar("T")

#: set when the engine could not move back to its own cgroup: from then on it must not kill
#: attempts by cgroup (it might be in one) nor place any more in one
_stranded = False


def unusable() -> str | None:
    """Why attempts get no cgroup of their own here (None: they do). Cheap, no probe (`probe`
    makes one): the environment and what `_home` learnt once."""
    if os.environ.get(SWITCH_VAR, "").lower() in ("0", "off", "no", "false"):
        return f"turned off by {SWITCH_VAR}={os.environ[SWITCH_VAR]}"
    if _stranded:
        return "the engine could not move back to its own cgroup after a spawn"
    return _home()[1]


@functools.cache
def _home() -> tuple[Path | None, str | None]:
    """This process's own cgroup and why attempts cannot have theirs under it (None: they can).
    Read once: the engine's cgroup is where it started, it only ever leaves it for a spawn
    (reading it and the mount table on every spawn was most of what a cgroup cost an attempt)."""
    base = cgroup_of("self")
    if base is None:
        return None, "no cgroup v2 hierarchy is mounted"
    if not os.access(base, os.W_OK) or not os.access(base / "cgroup.procs", os.W_OK):
        return base, f"{base} is not writable (not delegated to this user)"
    return base, None


def probe() -> tuple[Path | None, str]:
    """For preflight: makes and removes an empty cgroup where attempts' cgroups would go.
    (the cgroup to use or None, what was found)."""
    why = unusable()
    base = _home()[0]
    if why is not None or base is None:
        return None, why or "no cgroup v2 hierarchy is mounted"
    trial = base / f"{PREFIX}probe-{uuid.uuid4().hex[:12]}"
    try:
        trial.mkdir()
    except OSError as exc:
        return None, f"cannot make a cgroup in {base}: {exc.strerror or exc}"
    remove(trial)
    return base, f"cgroup v2: each attempt in its own cgroup under {base}"


def path_for(tag: str) -> Path | None:
    """Where the attempt with this tag has its cgroup, if attempts have cgroups here."""
    base = _home()[0]
    if base is None or not tag:
        return None
    return Path(f"{base}/{PREFIX}{hashlib.sha256(tag.encode()).hexdigest()[:20]}")


def existing(tag: str, leader: int | None = None) -> Path | None:
    """The cgroup an earlier engine made for the attempt, if it is still there: its `leader`'s
    own, where that is proven to be the attempt's process (the earlier engine may have run in
    another cgroup than this one), else the one its tag names here."""
    if unusable() is not None:
        return None
    path = None if leader is None else cgroup_of(str(leader))
    if path is None or not path.name.startswith(PREFIX):
        path = path_for(tag)
    return path if path is not None and (path / "cgroup.procs").exists() else None


def spawn_inside(tag: str, spawn: Callable[[], T]) -> tuple[T, Path | None]:
    """`spawn()` with the engine moved into a new cgroup for the attempt, so the child is born
    there. (what spawn returned, the cgroup or None where attempts get none)."""
    base = _home()[0] if unusable() is None else None
    group = path_for(tag or uuid.uuid4().hex) if base is not None else None
    if base is None or group is None or not _make(group):
        return spawn(), None
    if not _move_self(group):
        remove(group)
        return spawn(), None
    try:
        result = spawn()
    except BaseException:
        if _move_home(base):
            remove(group)
        raise
    return result, (group if _move_home(base) else None)


def members(group: Path) -> set[int] | None:
    """The live processes in the cgroup (the kernel lists no zombies), never this one; None if
    the cgroup cannot be used to end them (gone, or the engine itself is inside)."""
    try:
        pids = {int(p) for p in (group / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return None
    return None if os.getpid() in pids or _stranded else pids


def kill(group: Path, pids: set[int]) -> None:
    """SIGKILL the whole cgroup: with `cgroup.kill` (Linux 5.14) even what forks meanwhile."""
    try:
        (group / "cgroup.kill").write_text("1")
        return
    except OSError:
        pass
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove_if_empty(group: Path) -> bool:
    """Removes the attempt's cgroup if nothing runs in it, in one rmdir: the kernel refuses to
    remove one with a live process (zombies are in none), and nothing can join one that is
    gone. True: removed, so nothing of the attempt runs (what `members` would have said,
    for less than reading cgroup.procs costs); False: look at its members."""
    if _stranded:
        return False  # the engine may be in an attempt's cgroup: `members` will not answer
    try:
        os.rmdir(group)
    except OSError:
        return False
    return True


def remove(group: Path | None) -> None:
    """Best effort: a cgroup with processes left (or already removed) stays as it is."""
    if group is not None:
        with contextlib.suppress(OSError):
            group.rmdir()


def cgroup_of(pid: str) -> Path | None:
    """A process's cgroup in the v2 hierarchy (as this process sees it mounted), as a folder."""
    try:
        lines = (PROC / pid / "cgroup").read_text().splitlines()
        mounts = (PROC / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None:
        return None
    for mount in mounts:
        fields, _, fs = mount.partition(" - ")
        parts = fields.split()
        if fs.split()[:1] != ["cgroup2"] or len(parts) < 5:
            continue
        root, point = _unescape(parts[3]), _unescape(parts[4])
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return Path(point) / path[len(root) :].lstrip("/")
    return None


def _make(group: Path) -> bool:
    try:
        group.mkdir(exist_ok=True)
    except OSError:
        return False
    return True


def _move_self(group: Path) -> bool:
    """Moves this whole process (every thread): writing 0 to cgroup.procs means the writer."""
    try:
        fd = os.open(group / "cgroup.procs", os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, b"0")
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _move_home(base: Path) -> bool:
    global _stranded
    if _move_self(base):
        return True
    _stranded = True  # inside the attempt's cgroup: killing it would kill the engine too
    return False


def _unescape(field: str) -> str:
    """mountinfo writes a space in a path as \\040."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
