"""A cgroup v2 per attempt, where this process may make them: the kernel's list of everything an
attempt started, wherever it went (systemd's KillMode=control-group).

A process group is left with one setsid() and an environment with one exec, so the tag scan
(`tags.attempt_members`) misses a job that does both. Leaving a cgroup takes write access to the
cgroup tree, which jobs are not given on purpose. Attempts' cgroups are folders of this
process's own cgroup, each labelled with its attempt's tag (a `user.` extended attribute), so
the next engine finds an attempt's cgroup after a crash, whatever the folder is called.

The child must be born inside: moved after the spawn, a job that forks at once would leave
children outside. Python cannot spawn into a cgroup (no clone3), and a `preexec_fn` forces a
full fork of the engine (4 ms a spawn instead of 0.6 ms at 100 MB resident) that the docs call
unsafe with threads. So for the spawn the engine moves itself into the attempt's cgroup and back
right after: the child inherits it. Nothing else of the engine spawns while a run is on, and
attempts are spawned one at a time, on the event loop thread.

The first process a cgroup ever holds wakes a kernel worker at once (the `populated` event of
its cgroup.events, which the kernel then sends at most every 10 ms), and on a machine whose CPUs
the jobs keep busy the woken worker preempts the engine for a scheduler slice, ~1 ms, in the
middle of a spawn. So an attempt's cgroup is not removed once nothing of it runs: it is labelled
anew and used for the next attempt (one emptied a moment ago is joined in ~15 us, a new one in
40 us to 1.4 ms). Those kept are removed when this process exits, or by the next engine.

`BACKFILL_CGROUPS=off` turns this off (the tag scan then does the work): for a machine whose
manager of the cgroup tree (systemd without `Delegate=yes`) must not find ours in its own.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import re
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

from core.process.groups import PROC

SWITCH_VAR = "BACKFILL_CGROUPS"
PREFIX = "backfill-"
#: the extended attribute that names the attempt a cgroup is for: its tag
LABEL = "user.backfill.attempt"
#: emptied cgroups kept for later attempts, beyond which they are removed
KEEP = 64

T = TypeVar("T")


class _Files(NamedTuple):
    procs: int
    events: int


#: set when the engine could not move back to its own cgroup: from then on it must not kill
#: attempts by cgroup (it might be in one) nor place any more in one
_stranded = False
#: the cgroups this process made for attempts -> their cgroup.procs and cgroup.events, open:
#: a move is then one write and a look one read, without a lookup of the path
_files: dict[Path, _Files] = {}
#: those emptied, the last emptied last: the next spawn's
_kept: list[Path] = []
_numbers = itertools.count(1)


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
    (reading it and the mount table on every spawn was most of what a cgroup cost an attempt).
    The first look also removes the empty cgroups that ended processes kept (`_sweep`)."""
    base = cgroup_of("self")
    if base is None:
        return None, "no cgroup v2 hierarchy is mounted"
    if not os.access(base, os.W_OK) or not os.access(base / "cgroup.procs", os.W_OK):
        return base, f"{base} is not writable (not delegated to this user)"
    _sweep(base)
    return base, None


def probe() -> tuple[Path | None, str]:
    """For preflight: makes, labels and removes an empty cgroup where attempts' cgroups would
    go. (the cgroup to use or None, what was found)."""
    why = unusable()
    base = _home()[0]
    if why is not None or base is None:
        return None, why or "no cgroup v2 hierarchy is mounted"
    trial = base / f"{PREFIX}probe-{uuid.uuid4().hex[:12]}"
    try:
        trial.mkdir()
    except OSError as exc:
        return None, f"cannot make a cgroup in {base}: {exc.strerror or exc}"
    try:
        if not _label(trial, "probe"):
            return None, f"cannot label a cgroup in {base} (user xattrs need Linux 5.7)"
    finally:
        remove(trial)
    return base, f"cgroup v2: each attempt in its own cgroup under {base}"


def existing(tag: str, leader: int | None = None) -> Path | None:
    """The cgroup an earlier engine gave the attempt, if it is still there: its `leader`'s own,
    where that is proven to be the attempt's process (the earlier engine may have run in
    another cgroup than this one), else the one labelled with its tag here."""
    if unusable() is not None or not tag:
        return None
    path = None if leader is None else cgroup_of(str(leader))
    if path is not None and path.name.startswith(PREFIX) and _labelled(path) == tag:
        return path
    base = _home()[0]
    if base is None:
        return None
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            if entry.name.startswith(PREFIX) and _labelled(Path(entry.path)) == tag:
                return Path(entry.path)
    return None


def spawn_inside(tag: str, spawn: Callable[[], T]) -> tuple[T, Path | None]:
    """`spawn()` with the engine moved into a cgroup for the attempt, so the child is born
    there. (what spawn returned, the cgroup or None where attempts get none)."""
    base = _home()[0] if unusable() is None else None
    group = _take(base, tag) if base is not None else None
    if base is None or group is None:
        return spawn(), None
    if not _move(_files[group].procs):
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


def release_if_empty(group: Path) -> bool:
    """True if nothing runs in the attempt's cgroup any more (what `members` would have said,
    for less than reading cgroup.procs costs): it is then kept for a later attempt, or removed.
    Nothing can join an empty one: the attempt's processes are all gone, and others have no
    write access to it. False: look at its members."""
    if _stranded:
        return False  # the engine may be in an attempt's cgroup: `members` will not answer
    files = _files.get(group)
    try:
        if files is not None:
            events = os.pread(files.events, 64, 0)
        else:
            events = (group / "cgroup.events").read_bytes()
    except OSError:
        return False
    if not events.startswith(b"populated 0\n"):
        return False
    # Kept unlabelled: a label names the attempt whose processes are, or were, inside, and
    # a later attempt's would be found by a stale one.
    if files is not None and len(_kept) < KEEP and _unlabel(group):
        _kept.append(group)
    else:
        remove(group)  # another process's (an adopted attempt's), or enough are kept
    return True


def remove(group: Path | None) -> None:
    """Best effort: a cgroup with processes left (or already removed) stays as it is."""
    if group is None:
        return
    with contextlib.suppress(OSError):
        group.rmdir()
    files = _files.pop(group, None)
    if files is not None:
        os.close(files.procs)
        os.close(files.events)


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


def _take(base: Path, tag: str) -> Path | None:
    """A cgroup for the attempt, labelled with its tag: the one emptied last, else a new one."""
    while _kept:
        group = _kept.pop()
        if _label(group, tag):
            return group
        remove(group)  # gone meanwhile, or unusable
    group = base / f"{_own_prefix()}{next(_numbers)}"
    try:
        group.mkdir()
    except OSError:
        return None
    files = _open_files(group)
    if files is not None:
        _files[group] = files
        if _label(group, tag):
            return group
    remove(group)
    return None


def _open_files(group: Path) -> _Files | None:
    try:
        procs = os.open(group / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _Files(procs, os.open(group / "cgroup.events", os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        os.close(procs)
        return None


@functools.cache
def _own_prefix() -> str:
    """This process's cgroups are named by its pid, so the next one knows whose they were (and
    a token, so that a process given the same pid later makes none of the same name)."""
    return f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-"


def _label(group: Path, tag: str) -> bool:
    try:
        os.setxattr(group, LABEL, tag.encode())
    except OSError:
        return False
    return True


def _unlabel(group: Path) -> bool:
    try:
        os.removexattr(group, LABEL)
    except OSError:
        return False
    return True


def _labelled(group: Path) -> str | None:
    try:
        return os.getxattr(group, LABEL).decode(errors="replace")
    except OSError:
        return None


def _sweep(base: Path) -> None:
    """Removes the empty cgroups kept by processes that have ended (by a crash: `_drop_kept`
    removes them on a normal exit). One with processes inside is an attempt's that the next
    engine adopts; the kernel refuses to remove it."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            owner = entry.name.removeprefix(PREFIX).partition("-")[0]
            if entry.name.startswith(PREFIX) and owner.isdigit() and not (PROC / owner).exists():
                remove(Path(entry.path))


@atexit.register
def _drop_kept() -> None:
    while _kept:
        remove(_kept.pop())


def _move(procs: int) -> bool:
    """Moves this whole process (every thread): writing 0 to cgroup.procs means the writer."""
    try:
        os.write(procs, b"0")
    except OSError:
        return False
    return True


@functools.cache
def _home_procs(base: Path) -> int | None:
    try:
        return os.open(base / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _move_home(base: Path) -> bool:
    global _stranded
    procs = _home_procs(base)
    if procs is not None and _move(procs):
        return True
    _stranded = True  # inside the attempt's cgroup: killing it would kill the engine too
    return False


def _unescape(field: str) -> str:
    """mountinfo writes a space in a path as \\040."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
