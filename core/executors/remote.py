"""Attempts that run elsewhere: what every remote executor (Ray, Cloud Run) shares.

A backend says how to submit a job, find one again, and what a job is (`RemoteJob`: its status,
its output, how to stop and delete it). The rest of the engine's promises are the same wherever
the command runs, and live here once (`RemoteAttempt`, `RemoteExecutor`):

- The job's output is mirrored into the per-attempt log file, so the dashboard, `backfill logs`,
  the tail and stall detection read one file wherever the job ran. How much of the output is
  already there is kept beside the log (`<log>.mirrored`), so an engine that adopts the job after
  a crash goes on where the dead one stopped instead of writing it twice (a crash between a write
  and its count repeats at most that one chunk).
- A broken log stream is reconnected, and the time it is broken never counts as a stall: the
  stall clock measures silence of a job we can hear, not of our connection to it.
- Timeout, stall and cancel stop the job; `wait()` returns only once the backend says it has
  ended, so nothing of it writes when the warehouse is re-read.
- A job the backend never ran (pending past its cluster's limit) ends "unstarted": re-queued, no
  retry spent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import anyio

from core.executors.base import Adopted, Remote
from core.process import AttemptOutcome, AttemptSpec, Reason, Unproven, read_tail
from core.process.logfile import human, note
from core.state.journal import AttemptRow

#: a stream that broke is opened again after this long (then longer, up to 30 s)
RECONNECT_FIRST_S = 1.0
RECONNECT_MAX_S = 30.0
#: once a job has ended, its last output is waited for this long before the log is closed
DRAIN_S = 10.0
#: a stopped job that has not ended after its grace and this much more is asked again
STOP_AGAIN_S = 30.0


@dataclass(frozen=True)
class JobStatus:
    #: pending: accepted, not running yet; running; ended; unknown: the backend has no such job
    state: Literal["pending", "running", "ended", "unknown"]
    #: the command's exit status, where the backend knows it
    exit_code: int | None = None
    #: the backend's own words on how it ended (noted in the log when they say something)
    message: str = ""
    #: ended without ever running the command (pending past the cluster's limit)
    unstarted: bool = False


class RemoteJob(Protocol):
    """One job on a backend, as the backend's client sees it."""

    #: the backend's name for it (journaled as the attempt's `remote_ref`)
    @property
    def ref(self) -> str: ...

    async def status(self) -> JobStatus:
        """Raises `OSError` when the backend cannot be asked (a transient failure)."""
        ...

    def follow(self, offset: int) -> AsyncIterator[bytes]:
        """The job's output from byte `offset` on, as it comes, until the output ends (the job
        ended). Raises `OSError` when the stream breaks: it is opened again from where it
        stopped."""
        ...

    async def stop(self) -> None:
        """Ask the backend to end the job (and everything it started). Raises `OSError`."""
        ...

    async def delete(self) -> None:
        """Remove what the backend keeps of the ended job. Raises `OSError`."""
        ...


class Mirror:
    """The job's output appended to the attempt's log, counting what is there (see above)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._count = log_path.with_name(log_path.name + ".mirrored")
        try:
            self.offset = int(self._count.read_text())
        except (OSError, ValueError):
            self.offset = 0

    def write(self, chunk: bytes) -> None:
        with open(self.log_path, "ab") as log:
            log.write(chunk)
        self.offset += len(chunk)
        with contextlib.suppress(OSError):
            self._count.write_text(str(self.offset))

    def close(self) -> None:
        """The attempt is over: its count is of no use any more."""
        self._count.unlink(missing_ok=True)


class RemoteAttempt:
    """A remote job watched to its end: the `Handle` of every remote executor."""

    def __init__(
        self,
        job: RemoteJob,
        spec: AttemptSpec,
        *,
        started_at: float,
        poll: float,
        stall_slack: float = 0.0,
    ) -> None:
        self.job = job
        self.spec = spec
        self.launched = Remote(job.ref, started_at, spec.log_path)
        self._poll = poll
        # Output reaches some backends' logs late (Cloud Logging's ingestion): silence that
        # short is not a stall.
        self._stall_slack = stall_slack
        # The journaled wall clock, on the monotonic scale once, here: a clock step later moves
        # no deadline.
        self._mono_start = time.monotonic() - (time.time() - started_at)
        self._last_output = time.monotonic()
        self._stream_up = False
        self._status: JobStatus | None = None
        self._kill_reason: Reason | None = None
        self._killed = anyio.Event()  # wakes the watching loop to ask for the stop
        self._drained = anyio.Event()  # the job's output has ended
        self._watched = anyio.Event()  # wait() is over: the end is seen (or it was cancelled)
        self._outcome: AttemptOutcome | None = None
        self._lock = anyio.Lock()
        self._end_mono: float | None = None

    async def wait(self) -> AttemptOutcome:
        async with self._lock:
            if self._outcome is not None:
                return self._outcome
            try:
                await self._watch()
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    self._kill("cancelled", "the engine stopped waiting")
                    await self._until_ended()
                raise
            finally:
                self._watched.set()
            self._outcome = self._make_outcome()
            return self._outcome

    async def cancel(self) -> None:
        with anyio.CancelScope(shield=True):
            self._kill("cancelled", "cancelled")
            if self._lock.locked():
                await self._watched.wait()  # the watcher asks for the stop and sees the end
            elif self._outcome is None:
                await self._until_ended()

    async def forget(self) -> None:
        try:
            await self.job.delete()
        except OSError as exc:
            note(self.spec.log_path, f"could not delete job {self.job.ref}: {exc}")

    # -- watching ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        mirror = Mirror(self.spec.log_path)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._mirror, mirror)
            await self._until_ended()
            # The job is over; its last output may still be on the way.
            with anyio.move_on_after(DRAIN_S):
                await self._drained.wait()
            tg.cancel_scope.cancel()
        mirror.close()

    async def _until_ended(self) -> None:
        """Polls the job until the backend says it has ended, enforcing timeout and stall, and
        asking for the stop (again, past its grace) once one is due."""
        spec = self.spec
        deadline = None if spec.timeout is None else self._mono_start + spec.timeout
        asked_at: float | None = None
        while self._end_mono is None:
            status = await self._ask()
            now = time.monotonic()
            if status is not None and status.state in ("ended", "unknown"):
                self._status = status
                self._end_mono = now
                return
            if not self._stream_up or status is None or status.state == "pending":
                # Silence we cannot hear is not the job's, nor is a job's that has not begun
                # (a cold start, an image pull, a queue for resources).
                self._last_output = now
            if self._kill_reason is None:
                if deadline is not None and now >= deadline:
                    self._kill("timeout", f"timed out after {human(spec.timeout)}")
                elif spec.stall_timeout is not None and status is not None:
                    limit = spec.stall_timeout + self._stall_slack
                    if status.state == "running" and now >= self._last_output + limit:
                        self._kill("stall", f"stalled: no output for {human(limit)}")
            if self._kill_reason is not None and (
                asked_at is None or now - asked_at >= spec.grace + STOP_AGAIN_S
            ):
                # Asked again while the job runs past its grace: a lost request, a slow node.
                asked_at = now
                try:
                    await self.job.stop()
                except OSError as exc:
                    note(self.spec.log_path, f"could not stop job {self.job.ref}: {exc}")
                continue  # at once: a stopped job may be over already
            if self._kill_reason is None:
                with anyio.move_on_after(self._poll):
                    await self._killed.wait()  # a cancel is asked for at once
            else:
                await anyio.sleep(self._poll)

    async def _ask(self) -> JobStatus | None:
        try:
            return await self.job.status()
        except OSError as exc:
            note(self.spec.log_path, f"could not ask for job {self.job.ref}: {exc}; asking again")
            return None

    async def _mirror(self, mirror: Mirror) -> None:
        delay = RECONNECT_FIRST_S
        while True:
            try:
                async for chunk in self.job.follow(mirror.offset):
                    self._stream_up = True
                    if chunk:
                        mirror.write(chunk)
                        self._last_output = time.monotonic()
                        delay = RECONNECT_FIRST_S
                self._drained.set()  # the output ended with the job
                return
            except OSError as exc:
                self._stream_up = False
                if self._end_mono is not None:
                    self._drained.set()  # the job is over: what it said is what we have
                    return
                note(self.spec.log_path, f"log stream broke ({exc}); reconnecting")
            await anyio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _kill(self, reason: Reason, why: str) -> None:
        """The first reason to stop the job wins; the watching loop asks the backend."""
        if self._kill_reason is not None or self._end_mono is not None:
            return
        self._kill_reason = reason
        note(self.spec.log_path, f"{why}; stopping job {self.job.ref}")
        self._killed.set()

    # -- outcome -----------------------------------------------------------------------------

    def _make_outcome(self) -> AttemptOutcome:
        status = self._status or JobStatus("unknown")
        reason: Reason
        if self._kill_reason is not None:
            reason = self._kill_reason
        elif status.unstarted:
            reason = "unstarted"
        elif status.state == "unknown":
            reason = "interrupted"
        else:
            reason = "exit"
        if status.message and (reason != "exit" or status.exit_code not in (0, None)):
            note(self.spec.log_path, f"job {self.job.ref}: {status.message}")
        end = self._end_mono if self._end_mono is not None else time.monotonic()
        return AttemptOutcome(
            exit_code=status.exit_code,
            reason=reason,
            duration=max(0.0, end - self._mono_start),
            tail=read_tail(self.spec.log_path),
        )


class RemoteExecutor:
    """What a remote executor does the same whatever its backend: starting, adopting and
    clearing up after attempts, in terms of the backend's `submit` and `find`."""

    kind: str
    #: seconds between two questions to the backend about a running job
    poll: float = 1.0
    #: seconds of silence the backend's log delivery may add (see `RemoteAttempt`)
    stall_slack: float = 0.0

    def reference(self, tag: str) -> str | None:
        return None

    async def submit(self, spec: AttemptSpec) -> RemoteJob:
        """Start the attempt's job; raises `OSError` saying why when the backend refused it."""
        raise NotImplementedError

    async def find(self, spec: AttemptSpec) -> RemoteJob | None:
        """The job of an attempt a dead engine left open (by its journaled `spec.remote_ref`,
        or by `spec.tag` where the engine died before journaling it), or None: the backend has
        none. Raises `OSError` when the backend cannot be asked."""
        raise NotImplementedError

    async def start(self, spec: AttemptSpec) -> RemoteAttempt:
        started_at = time.time()
        try:  # as for a local process: the log's folder is made at the start
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot make the attempt's log folder: {exc}") from exc
        job = await self.submit(spec)
        return self._handle(job, spec, started_at)

    async def recover(
        self, attempts: Sequence[tuple[AttemptRow, AttemptSpec]]
    ) -> dict[int, Adopted | Unproven]:
        found: dict[int, Adopted | Unproven] = {}
        for attempt, spec in attempts:
            try:
                job = await self.find(spec)
                status = None if job is None else await job.status()
            except OSError as exc:
                # Not knowing is not "gone": the job may run on. It is re-queued, and whatever
                # of it runs is stopped first (`end_remains`).
                found[attempt.id] = Unproven(
                    f"the {self.kind} backend did not answer: {exc}", gone=False
                )
                continue
            if job is None or status is None or status.state == "unknown":
                ref = attempt.remote_ref or "its job"
                found[attempt.id] = Unproven(f"{self.kind} no longer knows {ref}", gone=True)
                continue
            handle = self._handle(job, spec, attempt.started_at)
            found[attempt.id] = Adopted(handle, alive=status.state != "ended")
        return found

    async def end_remains(self, spec: AttemptSpec) -> int:
        """The job of an attempt that is about to be re-queued is stopped if it still runs (the
        backend's name for it is the attempt's own: no stranger's can carry it), and waited
        for, so the next attempt never runs beside it. Returns 1 if there was one to stop."""
        try:
            job = await self.find(spec)
            status = None if job is None else await job.status()
        except OSError as exc:
            note(spec.log_path, f"could not ask {self.kind} about the attempt's job: {exc}")
            return 0
        if job is None or status is None or status.state in ("ended", "unknown"):
            return 0
        handle = self._handle(job, spec, time.time())
        await handle.cancel()
        return 1

    def _handle(self, job: RemoteJob, spec: AttemptSpec, started_at: float) -> RemoteAttempt:
        return RemoteAttempt(
            job, spec, started_at=started_at, poll=self.poll, stall_slack=self.stall_slack
        )
