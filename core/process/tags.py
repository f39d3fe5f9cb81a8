"""Knowing an attempt's processes by the tag in their environment.

Every attempt carries `$BACKFILL_ATTEMPT=<tag>`, and so does everything it starts unless it
rewrites its environment. That serves three ends:
  - the engine journals an attempt's pid right after spawning it, but a `kill -9` can land in
    between: the next engine finds the still-running attempt by its tag (`find_tagged`);
  - a pid in the journal may, after a crash, belong to a stranger the OS gave it to since: only a
    process with the journaled start time and the tag is adopted, or ever signalled (`identify`);
  - a grandchild that called setsid() has left the attempt's process group, but not its
    environment: once the attempt ends, the engine finds it by the tag (`attempt_members`).

Reading another process's environment needs the right to trace it: the engine's own jobs run as
the engine's user, strangers it cannot read are not its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from core.process.groups import HAVE_PROC, PROC, alive, is_dead_state, proc_stat, read_proc_file
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


@dataclass(frozen=True)
class Seen:
    """A live process as a scan of /proc saw it."""

    pid: int
    pgrp: int
    start_ticks: int
    #: its $BACKFILL_ATTEMPT; None when it has none, or is older than the scan's horizon
    tag: bytes | None


def read_processes(horizon: int | None) -> list[Seen]:
    """Every live process but this one. Only those started at `horizon` (clock ticks since boot)
    or later have their environment read: what an attempt started cannot be older than it, and
    two reads per process instead of one made a scan cost twice as much. Blocking, a read of
    every process: call it in a worker thread."""
    if not HAVE_PROC:
        return []
    me = os.getpid()
    prefix = f"{TAG_VAR}=".encode()
    seen = []
    for pid in _pids():
        if pid == me:
            continue
        stat = proc_stat(pid)
        if stat is None or is_dead_state(stat.state):
            continue
        tag = None
        if horizon is None or stat.start_ticks >= horizon:
            entry = next((v for v in _environ(pid).split(b"\0") if v.startswith(prefix)), None)
            tag = None if entry is None else entry[len(prefix) :]
        seen.append(Seen(pid, stat.pgrp, stat.start_ticks, tag))
    return seen


def attempt_members(
    seen: Iterable[Seen], tag: str, pgid: int | None, since_ticks: int | None
) -> set[int]:
    """Of the processes a scan saw (with a horizon no later than `since_ticks`), the attempt's:
    members of its process group `pgid` (None: a group not known to be the attempt's, such as a
    reused pid's) and everything carrying its tag, wherever it went. `since_ticks`: when the
    attempt started, where known."""
    wanted = os.fsencode(tag) if tag else None
    return {
        p.pid
        for p in seen
        if (since_ticks is None or p.start_ticks >= since_ticks)
        and ((pgid is not None and p.pgrp == pgid) or (wanted is not None and p.tag == wanted))
    }


def _entry(tag: str) -> bytes:
    return f"{TAG_VAR}={tag}".encode()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir(PROC) if name.isdigit()]


def _environ(pid: int) -> bytes:
    return read_proc_file(pid, "environ")
