"""Ending what an attempt left running: an attempt owns every process it started.

A job may exit 0 and leave workers running, and a grandchild that called setsid() survives the
kill of the job's process group. Either could go on writing rows after the attempt was judged,
so once an attempt ends (exit, kill, cancel, timeout) the engine ends all that is left of it
before the warehouse is re-read: SIGTERM, the processor's kill grace, SIGKILL.

What is left is found in the attempt's cgroup where it has one (`cgroups`), else in its process
group and by its tag in /proc (`tags.scan_attempt`, in a worker thread: it reads every process).
A pid found by the scan is signalled a moment later; the kernel reuses pids in order, so one
reused within that moment would have gone round the whole pid space.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Literal

import anyio

from core.process import cgroups
from core.process.groups import HAVE_PROC, KILL_SETTLE
from core.process.logfile import human, note
from core.process.tags import scan_attempt


async def end_leftovers(
    *,
    tag: str,
    pgid: int | None,
    cgroup: Path | None,
    grace: float,
    log_path: Path,
) -> int:
    """Ends the attempt's processes still running; returns how many there were. `pgid`: the
    attempt's group, None where it is not known to be the attempt's (a reused pid's). Shielded:
    abandoned half-way, it would leave processes running unaccounted."""
    finder = _Finder(tag, pgid, cgroup)
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
    def __init__(self, tag: str, pgid: int | None, cgroup: Path | None) -> None:
        self.tag, self.pgid, self.cgroup = tag, pgid, cgroup

    async def find(self) -> set[int]:
        if self.cgroup is not None:
            pids = cgroups.members(self.cgroup)  # one small file: no thread needed
            if pids is not None:
                return pids
            self.cgroup = None  # not usable after all: the scan does it
        return await anyio.to_thread.run_sync(scan_attempt, self.tag, self.pgid)

    def send(self, pids: set[int], sig: signal.Signals) -> None:
        if sig == signal.SIGKILL and self.cgroup is not None:
            cgroups.kill(self.cgroup, pids)
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


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
