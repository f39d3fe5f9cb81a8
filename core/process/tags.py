"""Knowing an attempt's processes by the tag in their environment.

Every attempt carries `$BACKFILL_ATTEMPT=<tag>`, and so does everything it starts unless it
rewrites its environment. That serves three ends:
  - the engine journals an attempt's pid right after spawning it, but a `kill -9` can land in
    between: the next engine finds the still-running attempt by its tag (`find_tagged`);
  - a pid in the journal may, after a crash, belong to a stranger the OS gave it to since: only a
    process with the journaled start time and the tag is adopted, or ever signalled (`identify`);
  - a grandchild that called setsid() has left the attempt's process group, but not its
    environment: once the attempt ends, the engine finds it by the tag (`scan_attempt`).

Reading another process's environment needs the right to trace it: the engine's own jobs run as
the engine's user, strangers it cannot read are not its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from core.process.groups import HAVE_PROC, PROC, alive, is_dead_state, proc_stat
from core.process.spec import TAG_VAR, Launched


def find_tagged(tags: Iterable[str]) -> dict[str, int]:
    """The pids of running attempts started with these tags (their group leaders), for an engine
    that died between spawning an attempt and journaling its pid. Reads /proc; where there is
    none, finds nothing (then such an attempt is re-queued, as if it never started).

    Synchronous and blocking: it reads the environment of every process on the machine. From
    async code call it in a worker thread, `await anyio.to_thread.run_sync(find_tagged, tags)`.
    """
    wanted = {_entry(tag): tag for tag in tags}
    if not wanted or not HAVE_PROC:
        return {}
    found: dict[str, int] = {}
    for pid in _pids():
        environ = _environ(pid)
        tag = next((wanted[v] for v in environ.split(b"\0") if v in wanted), None)
        if tag is None:
            continue
        stat = proc_stat(pid)
        # Children inherit the tag; the attempt is the one leading its own group.
        if stat is not None and stat.pgrp == pid and not is_dead_state(stat.state):
            found[tag] = pid
    return found


@dataclass(frozen=True)
class Unproven:
    """Why a journaled pid is not (or no longer) the attempt's process."""

    why: str
    #: no process runs with that pid; else a stranger does, to be left alone
    gone: bool


def identify(launched: Launched, tag: str) -> Unproven | None:
    """None if `launched.pid` is still the attempt's process. Its start time must be the
    journaled one and its environment must carry the tag (journals from before start times
    were kept: the tag alone). Where there is no /proc, nothing can be proven beyond the pid and
    its group (`alive`).

    Blocking (one process's stat and environment): from async code, in a worker thread."""
    pid = launched.pid
    if not HAVE_PROC:
        return None if alive(launched) else Unproven(f"pid {pid} is gone", gone=True)
    stat = proc_stat(pid)
    if stat is None or is_dead_state(stat.state):
        return Unproven(f"pid {pid} is gone", gone=True)
    if launched.start_ticks is not None and stat.start_ticks != launched.start_ticks:
        why = f"pid {pid} now belongs to another process (started later: the pid was reused)"
        return Unproven(why, gone=False)
    if tag and _entry(tag) not in _environ(pid).split(b"\0"):
        why = f"pid {pid} now belongs to another process (it lacks the attempt's tag)"
        return Unproven(why, gone=False)
    if launched.start_ticks is None and not tag:
        why = f"pid {pid} cannot be told from a stranger (no start time, no tag)"
        return Unproven(why, gone=False)
    if stat.pgrp != launched.pgid:
        return Unproven(f"pid {pid} has left process group {launched.pgid}", gone=False)
    return None


def scan_attempt(tag: str, pgid: int | None) -> set[int]:
    """The live processes of an attempt: members of its process group `pgid` (None: a group not
    known to be the attempt's, such as a reused pid's) and everything carrying its tag, wherever
    it went. Never this process. Blocking, a read of every process: call it in a worker thread.
    """
    if not HAVE_PROC:
        return set()
    entry = _entry(tag) if tag else None
    me = os.getpid()
    found = set()
    for pid in _pids():
        if pid == me:
            continue
        stat = proc_stat(pid)
        if stat is None or is_dead_state(stat.state):
            continue
        if (pgid is not None and stat.pgrp == pgid) or (
            entry is not None and entry in _environ(pid).split(b"\0")
        ):
            found.add(pid)
    return found


def _entry(tag: str) -> bytes:
    return f"{TAG_VAR}={tag}".encode()


def _pids() -> list[int]:
    return [int(e.name) for e in os.scandir(PROC) if e.name.isdigit()]


def _environ(pid: int) -> bytes:
    try:
        return (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return b""  # gone meanwhile, or not ours to read
