"""Process groups: signalling one, waiting for it to be gone, and telling the living from zombies.

Every attempt leads its own group, so a kill reaches the grandchildren too. "Gone" is harder than
`killpg(pgid, 0)` failing: orphans are re-parented to an init that may never reap them, and a
group of zombies still answers signals. So /proc has the last word where there is one.

Scanning /proc reads one file per process on the machine. That is blocking file I/O of a size
the engine does not control, so it runs in a worker thread, never on the event loop; the cheap
checks (a signal 0, one process's stat file) stay inline.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import anyio

from core.process.spec import Launched

KILL_SETTLE = 5.0  # after SIGKILL, how long to wait for the kernel to take the group down

PROC = Path("/proc")
HAVE_PROC = (PROC / "self" / "stat").exists()


async def terminate_group(
    pgid: int, grace: float, reap: Callable[[], object] | None = None
) -> bool:
    """TERM, wait up to `grace`, KILL. `reap` collects our own dead child, whose zombie would
    otherwise keep the group looking alive. Returns whether SIGKILL was needed.

    Holds nothing shared between groups, so many can be terminated concurrently, all within one
    grace period."""
    if not signal_group(pgid, signal.SIGTERM):
        return False
    if await wait_group_gone(pgid, grace, reap):
        return False
    signal_group(pgid, signal.SIGKILL)
    await wait_group_gone(pgid, KILL_SETTLE, reap)
    return True


async def wait_group_gone(pgid: int, limit: float, reap: Callable[[], object] | None) -> bool:
    """Whether every member of the group ended within `limit` seconds."""
    deadline = time.monotonic() + limit
    delay = 0.01
    while True:
        if reap is not None:
            reap()
        if not await group_running(pgid):
            if reap is not None:
                reap()  # the leader may have died after the first reap: leave no zombie of ours
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await anyio.sleep(min(delay, left))
        delay = min(delay * 2, 0.1)


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


async def group_running(pgid: int) -> bool:
    """Some member of the group still runs (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False  # the common end of a kill: no thread needed to learn it
    except PermissionError:
        return True
    if not HAVE_PROC:
        return True
    # killpg() also succeeds for a group of zombies nobody reaps, so ask /proc.
    return await anyio.to_thread.run_sync(scan_group, pgid)


def scan_group(pgid: int) -> bool:
    """Whether /proc shows a live member of the group. Blocking: call it from a worker thread."""
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat.pgrp == pgid and not is_dead_state(stat.state):
                return True
    return False


def alive(launched: Launched) -> bool:
    """The process still runs, still leads the group we started and, where its start time was
    journaled, was started then (so it is not a reused pid)."""
    try:
        os.kill(launched.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: the pgid check below settles it
    try:
        if os.getpgid(launched.pid) != launched.pgid:
            return False
    except ProcessLookupError:
        return False
    stat = proc_stat(launched.pid)
    if stat is None:
        return not HAVE_PROC  # without /proc, kill() and getpgid() are all we have
    started = launched.start_ticks
    return (
        stat.pgrp == launched.pgid
        and not is_dead_state(stat.state)
        and (started is None or stat.start_ticks == started)
    )


class ProcStat(NamedTuple):
    state: str
    pgrp: int
    #: when the process started, in clock ticks since boot: with the pid, unique until reboot
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """From /proc/<pid>/stat, or None where there is no /proc or no such pid."""
    if not HAVE_PROC:
        return None
    data = read_proc_file(pid, "stat")
    if not data:
        return None
    # The command name is in parentheses and may contain anything, so split after the last ")";
    # what follows starts at field 3 (state), so field N is at index N - 3.
    fields = data.rpartition(b")")[2].split()
    return ProcStat(fields[0].decode(), int(fields[2]), int(fields[19]))


def read_proc_file(pid: int, name: str) -> bytes:
    """A small file of /proc/<pid>/, b"" if it cannot be read (gone meanwhile, not ours). Plain
    os calls: a scan reads one per process, and pathlib and buffered files tripled its cost."""
    try:
        fd = os.open(f"{PROC}/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)


def is_dead_state(state: str) -> bool:
    return state in ("Z", "X", "x")


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot), or None without /proc or such pid."""
    stat = proc_stat(pid)
    return None if stat is None else stat.start_ticks


#: nanoseconds in one of the clock ticks that /proc counts start times in (0: no such clock)
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK") if HAVE_PROC else 0


def boot_clock() -> int:
    """Now, on the clock the kernel stamps a new process's start with (CLOCK_BOOTTIME, ns)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) if _TICK_NS else 0


def spawned_ticks(pid: int, before: int, after: int) -> int | None:
    """The start time of our child `pid`, forked between `boot_clock()` readings `before` and
    `after`: the kernel stamped it in between, so when both fall in the same clock tick that
    tick is its start time, with no read of /proc. Reading /proc/<pid>/stat right after the
    spawn sleeps until the child's exec is through (0.1-0.5 ms, most of what a spawn cost the
    event loop); only a spawn across a tick boundary (1 in ~30) pays it."""
    if _TICK_NS and before // _TICK_NS == after // _TICK_NS:
        return before // _TICK_NS
    return start_ticks(pid)
