"""Watching a running attempt to its end: timeout, stall, cancel, and the outcome.

One `Attempt` object per attempt, whether we spawned it (`start`) or reattached to it after an
engine crash (`adopt`). The difference is whether we are the parent: only then can we read an
exit status, so an adopted attempt ends with `exit_code=None` and the warehouse decides.

The attempt is over only when nothing it started runs any more: `wait()` ends its leftovers
(`leftovers`) before it returns, so nothing of it writes once the warehouse is re-read.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import anyio

from core.process import cgroups
from core.process.groups import alive, terminate_group
from core.process.leftovers import end_leftovers
from core.process.logfile import human, note, read_tail
from core.process.spec import AttemptOutcome, AttemptSpec, Launched, Reason

POLL_INTERVAL = 0.5  # how often the log is stat'ed for stalls while nothing else wakes us


def adopt(launched: Launched, spec: AttemptSpec) -> Attempt:
    """Reattach to an attempt that an earlier engine started, once `identify` has said the pid
    is still its process. Timeout and stall limits still apply, counted from
    `launched.started_at` and the log's last modification."""
    cgroup = cgroups.existing(spec.tag, leader=launched.pid)
    return Attempt(launched, spec, proc=None, cgroup=cgroup)


class Attempt:
    """A running attempt: launched by `start`, or reattached by `adopt` after an engine restart.

    `wait()` is the one place that watches the attempt; call it from a single task (other
    callers queue behind it and get the same outcome). `cancel()` may be called from any task,
    and on many attempts at once: each kill waits only for its own group.
    """

    def __init__(
        self,
        launched: Launched,
        spec: AttemptSpec,
        *,
        proc: subprocess.Popen[bytes] | None,
        started_mono: float | None = None,
        cgroup: Path | None = None,
    ) -> None:
        self.launched = launched
        self.spec = spec
        self._proc = proc
        self._cgroup = cgroup
        self._leftovers: int | None = None
        if started_mono is None:
            # Started by another engine: all we have is the journaled wall clock, translated
            # to the monotonic clock once, here, so a later clock step moves no deadline.
            started_mono = time.monotonic() - (time.time() - launched.started_at)
        self._mono_start = started_mono
        self._last_log: tuple[int, int] | None = None
        self._last_output = self._mono_start
        self._seen_running = False
        self._end_mono: float | None = None
        self._kill_reason: Reason | None = None
        self._kill_done = anyio.Event()
        self._outcome: AttemptOutcome | None = None
        # fast_acquire: a free lock is taken without a trip through the event loop
        self._lock = anyio.Lock(fast_acquire=True)
        self._pidfd: int | None = None
        self._backoff = 0.01
        stat = _stat(launched.log_path) if proc is None else None
        if stat is not None:  # adopted: the log's mtime is the last output we know of
            self._last_log = (stat.st_size, stat.st_mtime_ns)
            self._last_output = max(self._last_output, self._to_mono(stat.st_mtime))

    @property
    def outcome(self) -> AttemptOutcome | None:
        """The outcome once `wait()` has returned it, else None."""
        return self._outcome

    async def cancel(self) -> None:
        """Kill the whole group (SIGTERM, grace, SIGKILL); `wait()` then reports "cancelled".
        Returns when nothing of the group runs any more. Completes even if this task is
        cancelled meanwhile."""
        await self._terminate("cancelled", "cancelled")

    async def forget(self) -> None:
        """Nothing is kept of a local process once it has ended."""

    async def wait(self) -> AttemptOutcome:
        """Until the group leader ends, enforcing timeout and stall. If the awaiting task is
        cancelled, the group is killed first (reason "cancelled")."""
        async with self._lock:
            if self._outcome is not None:
                return self._outcome
            try:
                await self._watch()
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await self._terminate("cancelled", "the engine stopped waiting")
                    if self._ended():
                        await self._end_leftovers()
                        self._outcome = self._make_outcome()
                raise
            finally:
                self._close_pidfd()
            await self._end_leftovers()
            self._outcome = self._make_outcome()
            return self._outcome

    # -- watching ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        spec = self.spec
        deadline = None if spec.timeout is None else self._mono_start + spec.timeout
        while not self._ended():
            self._seen_running = True
            now = time.monotonic()
            self._observe_log(now)
            wake = now + POLL_INTERVAL
            if self._kill_reason is None:
                if deadline is not None:
                    if now >= deadline:
                        await self._terminate("timeout", f"timed out after {human(spec.timeout)}")
                        continue
                    wake = min(wake, deadline)
                if spec.stall_timeout is not None:
                    stall_at = self._last_output + spec.stall_timeout
                    if now >= stall_at:
                        why = f"stalled: no output for {human(spec.stall_timeout)}"
                        await self._terminate("stall", why)
                        continue
                    wake = min(wake, stall_at)
            await self._sleep(wake - now)
        if self._kill_reason is not None:
            # The leader may die before its grandchildren; cancel() may still be reaping them.
            await self._kill_done.wait()

    def _ended(self) -> bool:
        if self._end_mono is not None:
            return True
        if self._proc is not None:
            ended = self._proc.poll() is not None  # also reaps it
        else:
            ended = not alive(self.launched)
        if ended:
            self._end_mono = self._adopted_end() if self._proc is None else time.monotonic()
        return ended

    def _adopted_end(self) -> float:
        """When an adopted attempt ended: now, if we saw it running; else its last log write,
        the last sign of life we have."""
        stat = _stat(self.launched.log_path)
        if not self._seen_running and stat is not None:
            return max(self._mono_start, self._to_mono(stat.st_mtime))
        return time.monotonic()

    async def _sleep(self, delay: float) -> None:
        """Sleep up to `delay`, waking as soon as the leader exits (pidfd on Linux)."""
        delay = max(delay, 0.0)
        fd = self._open_pidfd()
        if fd is None:
            # No pidfd: poll, quickly at first so short jobs do not wait half a second.
            delay = min(delay, self._backoff)
            self._backoff = min(self._backoff * 2, POLL_INTERVAL)
            await anyio.sleep(delay)
            return
        with anyio.move_on_after(delay):
            await anyio.wait_readable(fd)

    def _open_pidfd(self) -> int | None:
        if self._pidfd is not None or not hasattr(os, "pidfd_open"):
            return self._pidfd
        try:
            fd = os.pidfd_open(self.launched.pid)
        except OSError:
            return None
        # Opened first, checked second: if the pid was reused before the open, this catches it.
        if self._proc is None and not alive(self.launched):
            os.close(fd)
            return None
        self._pidfd = fd
        return fd

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def _observe_log(self, now: float) -> None:
        stat = _stat(self.launched.log_path)
        if stat is None:
            return
        seen = (stat.st_size, stat.st_mtime_ns)
        if seen != self._last_log:
            self._last_log = seen
            self._last_output = now

    # -- killing -----------------------------------------------------------------------------

    async def _terminate(self, reason: Reason, why: str) -> None:
        """Kill the group once, whoever asks first; later callers wait for that kill. Shielded:
        a kill abandoned between SIGTERM and SIGKILL would leave work running unaccounted.
        Only this attempt's own event is awaited, so kills of different attempts overlap."""
        with anyio.CancelScope(shield=True):
            if self._kill_reason is not None:
                await self._kill_done.wait()
                return
            if self._ended():
                return
            self._kill_reason = reason
            pgid, grace = self.launched.pgid, self.spec.grace
            try:
                self._note(f"{why}; killing process group {pgid} (SIGKILL after {human(grace)})")
                if await terminate_group(pgid, grace, reap=self._ended):
                    self._note(
                        f"process group {pgid} outlived SIGTERM by {human(grace)}; SIGKILLed"
                    )
            finally:
                self._kill_done.set()

    def _note(self, text: str) -> None:
        note(self.launched.log_path, text)

    async def _end_leftovers(self) -> None:
        """Once the leader has ended: whatever of the attempt still runs. Its group counts only
        if we saw the leader lead it: while a member lives the kernel gives that number to no
        new process, but an adopted leader found dead may have left a group long gone, whose
        number now names a stranger's group."""
        if self._leftovers is None:
            ours = self._proc is not None or self._seen_running
            self._leftovers = await end_leftovers(
                tag=self.spec.tag,
                pgid=self.launched.pgid if ours else None,
                cgroup=self._cgroup,
                grace=self.spec.grace,
                log_path=self.launched.log_path,
                since_ticks=self.launched.start_ticks,
            )

    # -- outcome -----------------------------------------------------------------------------

    def _make_outcome(self) -> AttemptOutcome:
        code: int | None = None
        if self._proc is not None and self._proc.returncode is not None:
            returncode = self._proc.returncode
            code = returncode if returncode >= 0 else 128 - returncode  # -15 -> 143
        reason: Reason = self._kill_reason or (
            "exit" if self._proc is not None or self._seen_running else "interrupted"
        )
        end = self._end_mono if self._end_mono is not None else time.monotonic()
        return AttemptOutcome(
            exit_code=code,
            reason=reason,
            duration=max(0.0, end - self._mono_start),
            tail=read_tail(self.launched.log_path),
            leftovers=self._leftovers or 0,
        )

    def _to_mono(self, wall: float) -> float:
        """A wall-clock time from outside (a log's mtime) on this attempt's monotonic scale."""
        return self._mono_start + (wall - self.launched.started_at)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None
