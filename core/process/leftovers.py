"""Ending what an attempt left running: an attempt owns every process it started.

A job may exit 0 and leave workers running, and a grandchild that called setsid() survives the
kill of the job's process group. Either could go on writing rows after the attempt was judged,
so once an attempt ends (exit, kill, cancel, timeout) the engine ends all that is left of it
before the warehouse is re-read: SIGTERM, the processor's kill grace, SIGKILL.

What is left is found in the attempt's cgroup where it has one (`cgroups`), else in its process
group and by its tag in /proc (`tags.read_processes`, in a worker thread: it reads every
process; attempts that end together share one scan). A pid found by the scan is signalled a
moment later; the kernel reuses pids in order, so one reused within that moment would have gone
round the whole pid space.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Literal

import anyio
from anyio.lowlevel import RunVar

from core.process import cgroups
from core.process.groups import HAVE_PROC, KILL_SETTLE
from core.process.logfile import human, note
from core.process.tags import Seen, attempt_members, read_processes


async def end_leftovers(
    *,
    tag: str,
    pgid: int | None,
    cgroup: Path | None,
    grace: float,
    log_path: Path,
    since_ticks: int | None = None,
) -> int:
    """Ends the attempt's processes still running; returns how many there were. `pgid`: the
    attempt's group, None where it is not known to be the attempt's (a reused pid's);
    `since_ticks`: when the attempt started, where known (`tags.read_processes`). Shielded:
    abandoned half-way, it would leave processes running unaccounted."""
    if cgroup is not None and cgroups.release_if_empty(cgroup):
        return 0  # the common case: nothing is left, and the cgroup is another attempt's now
    finder = _Finder(tag, pgid, cgroup, since_ticks)
    seen: set[int] = set()
    with anyio.CancelScope(shield=True):
        found = await finder.find()
        seen |= found
        if found:
            note(
                log_path,
                f"{_processes(len(found))} of the attempt still running after it ended; "
                f"ending them (SIGKILL after {human(grace)})",
            )
            found = await _signal_until_gone(finder, found, seen, signal.SIGTERM, grace)
            if found:
                await _signal_until_gone(finder, found, seen, signal.SIGKILL, KILL_SETTLE)
            note(log_path, f"ended {_processes(len(seen))} left by the attempt")
        cgroups.remove(finder.cgroup)
    return len(seen)


async def _signal_until_gone(
    finder: _Finder, found: set[int], seen: set[int], sig: signal.Signals, limit: float
) -> set[int]:
    """Sends `sig` to every process found, again to any that appear meanwhile (a leftover may
    fork while it dies), until none is left or `limit` seconds pass; returns what still runs."""
    deadline = time.monotonic() + limit
    signalled: set[int] = set()
    delay = 0.01
    while found:
        finder.send(found - signalled, sig)
        signalled |= found
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await anyio.sleep(min(delay, left))
        delay = min(delay * 2, 0.1)
        found = await finder.find()
        seen |= found
    return found


class _Finder:
    def __init__(
        self, tag: str, pgid: int | None, cgroup: Path | None, since_ticks: int | None
    ) -> None:
        self.tag, self.pgid, self.cgroup, self.since_ticks = tag, pgid, cgroup, since_ticks

    async def find(self) -> set[int]:
        if self.cgroup is not None:
            pids = cgroups.members(self.cgroup)  # one small file: no thread needed
            if pids is not None:
                return pids
            self.cgroup = None  # not usable after all: the scan does it
        scan = _SCAN.get(None)
        if scan is None:
            scan = _SharedScan()
            _SCAN.set(scan)
        return await scan.members(self.tag, self.pgid, self.since_ticks)

    def send(self, pids: set[int], sig: signal.Signals) -> None:
        if sig == signal.SIGKILL and self.cgroup is not None:
            cgroups.kill(self.cgroup, pids)
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


class _SharedScan:
    """One pass over /proc answers every attempt that asked while the pass before it ran: eight
    attempts ending together cost one scan, not eight (a scan per attempt made the tag scan the
    largest cost of a short attempt, and their threads fought the event loop for the GIL).

    An answer always comes from a pass that started after the question: one already under way
    may have read the process table before the attempt's last child was born."""

    def __init__(self) -> None:
        self._lock = anyio.Lock()
        self._started = 0
        self._finished = 0
        self._seen: list[Seen] = []
        self._horizons: list[int | None] = []

    async def members(self, tag: str, pgid: int | None, since_ticks: int | None) -> set[int]:
        wanted = self._started + 1
        self._horizons.append(since_ticks)
        try:
            async with self._lock:
                if self._finished < wanted:
                    known = [h for h in self._horizons if h is not None]
                    horizon = min(known) if len(known) == len(self._horizons) else None
                    self._started += 1
                    number = self._started
                    self._seen = await anyio.to_thread.run_sync(read_processes, horizon)
                    self._finished = number
                seen = self._seen
        finally:
            self._horizons.remove(since_ticks)
        return attempt_members(seen, tag, pgid, since_ticks)


#: one per event loop: its lock belongs to the loop
_SCAN: RunVar[_SharedScan] = RunVar("backfill_process_scan")

Containment = Literal["cgroup", "tags", "none"]


def containment() -> tuple[Containment, str]:
    """How the leftovers of attempts are found on this machine, and why (for preflight).
    Blocking: makes and removes an empty cgroup to be sure it can."""
    group, found = cgroups.probe()
    if group is not None:
        return "cgroup", found
    if HAVE_PROC:
        return "tags", (
            f"process group and tag scan of /proc ({found}): a process that leaves the group "
            "and also rewrites its environment is not found"
        )
    return "none", (
        f"neither a cgroup v2 nor /proc ({found}): processes that leave an attempt's process "
        "group run on after it ends"
    )


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"
