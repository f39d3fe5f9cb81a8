"""Run one attempt of a job as a real subprocess, and get its result even across an engine crash.

Output goes to a file, not through the engine. The log file is opened here (append, binary)
and handed to the child as stdout and stderr, so the kernel writes it straight to disk. A job
that prints a gigabyte does not grow the engine's memory, and the log keeps filling while the
engine is down. Stall detection only needs the file's size (`os.stat`), and the tail is read by
seeking from the end of the file.

Each attempt gets its own process group (`start_new_session=True`). Timeouts, stalls and
cancellation signal the whole group, so grandchildren die too: SIGTERM, `grace` seconds, then
SIGKILL.

The engine may be `kill -9`ed while attempts run. They keep running (they are in their own
session), but the next engine is not their parent: it cannot `waitpid` them, so how such an
attempt ended (its exit status) is lost with the engine that started it. `adopt()` reattaches a
new engine to the process through its pid and its log file: it checks the pid is alive and still
leads the same group (a reused pid does not), watches it to its end, and enforces the limits.
The warehouse, not the exit status, then says whether the attempt did its work.

The engine journals the pid right after spawning, but a `kill -9` can land in between. Every
attempt therefore carries a tag in its environment (`BACKFILL_ATTEMPT`), and `find_tagged()`
finds the still-running leaders by it (Linux, through /proc), so the next engine adopts such an
attempt instead of running it a second time.

There is deliberately no wrapper process (an earlier version ran each job under a /bin/sh shim
that wrote the exit status to a file): it cost a second exec per attempt, as much as the job itself
for short jobs (benchmarks/dispatch_overhead.py), to learn an exit status the warehouse already
answers.

Zombies count as dead everywhere here. When the engine dies, orphans are re-parented to PID 1,
and many container inits never reap them: `kill(pid, 0)` keeps succeeding for a process that
ended long ago.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import anyio

Reason = Literal["exit", "timeout", "stall", "cancelled", "interrupted"]

TAG_VAR = "BACKFILL_ATTEMPT"  # in every attempt's environment: see find_tagged()

POLL_INTERVAL = 0.5  # how often the log is stat'ed for stalls while nothing else wakes us
TAIL_LINES = 20
TAIL_WINDOW = 64 * 1024  # a tail never reads more than this from the end of the log
TAIL_LINE_MAX = 1000  # chars kept of one line, so a runaway line cannot bloat the journal
KILL_SETTLE = 5.0  # after SIGKILL, how long to wait for the kernel to take the group down

_PROC = Path("/proc")
_HAVE_PROC = (_PROC / "self" / "stat").exists()
_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")  # \r too: progress bars redraw a line with it


@dataclass(frozen=True)
class AttemptSpec:
    argv: tuple[str, ...]
    env: Mapping[str, str]  # merged over os.environ by the runner
    cwd: Path
    log_path: Path  # parent dirs created by the runner
    timeout: float | None  # seconds of wall clock, None = no limit
    stall_timeout: float | None  # seconds with no growth of the log file, None = off
    grace: float = 10.0  # SIGTERM -> wait this long -> SIGKILL (whole group)
    tag: str = ""  # unique per attempt, set as $BACKFILL_ATTEMPT: how find_tagged() knows it

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("AttemptSpec.argv must name a program")


@dataclass(frozen=True)
class Launched:
    """What the engine journals before awaiting the end: enough for `adopt` after a restart."""

    pid: int
    pgid: int
    started_at: float  # time.time()
    log_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pgid": self.pgid,
            "started_at": self.started_at,
            "log_path": str(self.log_path),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Launched:
        return cls(
            pid=int(data["pid"]),
            pgid=int(data["pgid"]),
            started_at=float(data["started_at"]),
            log_path=Path(data["log_path"]),
        )


@dataclass(frozen=True)
class AttemptOutcome:
    #: 128 + N for a job killed by signal N, as shells report it (143: SIGTERM, 137: SIGKILL);
    #: None for an adopted attempt, whose status went with the engine that started it
    exit_code: int | None
    # "exit" = ended on its own (any code); timeout/stall/cancelled = we killed it;
    # "interrupted" = an adopted attempt whose process was already gone when we looked
    reason: Reason
    duration: float  # seconds
    tail: tuple[str, ...]  # last non-empty lines of the log

    @property
    def ok(self) -> bool:
        return self.reason == "exit" and self.exit_code == 0

    @property
    def status_unknown(self) -> bool:
        """Ended on its own while no engine was its parent: only the warehouse can judge it."""
        return self.exit_code is None and self.reason in ("exit", "interrupted")


class LaunchError(OSError):
    """The attempt could not start: nothing ran. Says why in operator's words."""


async def start(spec: AttemptSpec) -> Attempt:
    """Spawn the attempt. Returns as soon as it runs; await `Attempt.wait()` for the end.

    There is no checkpoint after the spawn, so a cancelled caller either gets no process or gets
    the Attempt (and with it the duty to journal or kill it).
    """
    await anyio.lowlevel.checkpoint()
    env = {**os.environ, **spec.env}
    if spec.tag:
        env[TAG_VAR] = spec.tag
    log_path = spec.log_path
    with _open_log(log_path) as log:
        started_at = time.time()
        # No shell: argv runs as given, PATH searched in the job's own environment.
        try:
            proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            why = _launch_problem(spec, exc)
            _note(log_path, f"could not start: {why}")
            raise LaunchError(why) from exc
    # setsid() made the job the leader of a new group whose id is its pid.
    launched = Launched(proc.pid, proc.pid, started_at, log_path)
    return Attempt(launched, spec, proc=proc)


def find_tagged(tags: Iterable[str]) -> dict[str, int]:
    """The pids of running attempts started with these tags (their group leaders), for an engine
    that died between spawning an attempt and journaling its pid. Reads /proc; where there is
    none, finds nothing (then such an attempt is re-queued, as if it never started)."""
    wanted = {f"{TAG_VAR}={tag}".encode(): tag for tag in tags}
    if not wanted or not _HAVE_PROC:
        return {}
    found: dict[str, int] = {}
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        try:
            environ = (_PROC / entry.name / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours
        tag = next((wanted[v] for v in environ.split(b"\0") if v in wanted), None)
        if tag is None:
            continue
        pid = int(entry.name)
        stat = _proc_stat(pid)
        # Children inherit the tag; the attempt is the one leading its own group.
        if stat is not None and stat[1] == pid and not _is_dead_state(stat[0]):
            found[tag] = pid
    return found


def adopt(launched: Launched, spec: AttemptSpec) -> Attempt:
    """Reattach to an attempt that an earlier engine started. Timeout and stall limits still
    apply, counted from `launched.started_at` and the log's last modification."""
    return Attempt(launched, spec, proc=None)


def alive(launched: Launched) -> bool:
    """The process still runs and still leads the group we started (so it is not a reused pid)."""
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
    stat = _proc_stat(launched.pid)
    return stat is None or (stat[1] == launched.pgid and not _is_dead_state(stat[0]))


async def kill_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, wait up to `grace` seconds, then SIGKILL whatever survived."""
    await _kill_group(pgid, grace)


def read_tail(path: Path, lines: int = TAIL_LINES) -> tuple[str, ...]:
    """The last `lines` non-empty lines of a file, read from its end (at most TAIL_WINDOW bytes),
    so a multi-gigabyte log costs the same as a small one."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            pos, data, found = end, b"", []
            while pos > 0 and end - pos < TAIL_WINDOW:
                step = min(8192, pos, TAIL_WINDOW - (end - pos))
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
                found = _split_lines(data, partial_head=pos > 0)
                if len(found) >= lines:
                    break
    except OSError:
        return ()
    return tuple(found[-lines:])


class Attempt:
    """A running attempt: launched by `start`, or reattached by `adopt` after an engine restart.

    `wait()` is the one place that watches the attempt; call it from a single task (other
    callers queue behind it and get the same outcome). `cancel()` may be called from any task.
    """

    def __init__(
        self, launched: Launched, spec: AttemptSpec, *, proc: subprocess.Popen[bytes] | None
    ) -> None:
        self.launched = launched
        self.spec = spec
        self._proc = proc
        now_wall, now_mono = time.time(), time.monotonic()
        # Monotonic clock for deadlines; wall clock only at the edges (journal, mtimes).
        self._mono_start = now_mono - (now_wall - launched.started_at)
        self._last_log: tuple[int, int] | None = None
        self._last_output = self._mono_start
        self._seen_running = False
        self._end_wall: float | None = None
        self._kill_reason: Reason | None = None
        self._kill_done = anyio.Event()
        self._detached = False
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
    def adopted(self) -> bool:
        return self._proc is None

    @property
    def outcome(self) -> AttemptOutcome | None:
        """The outcome once `wait()` has returned it, else None."""
        return self._outcome

    def last_output_at(self) -> float:
        """time.time() of the last growth of the log (the start, before any output)."""
        self._observe_log(time.monotonic())
        return self._to_wall(self._last_output)

    def detach(self) -> None:
        """Leave the process running if the task awaiting `wait()` gets cancelled: for an engine
        that quits with "leave attempts running" and lets the next engine `adopt` them."""
        self._detached = True

    async def cancel(self) -> None:
        """Kill the whole group (SIGTERM, grace, SIGKILL); `wait()` then reports "cancelled".
        Returns when nothing of the group runs any more. Completes even if this task is
        cancelled meanwhile."""
        await self._terminate("cancelled", "cancelled")

    async def wait(self) -> AttemptOutcome:
        """Until the group leader ends, enforcing timeout and stall. If the awaiting task is
        cancelled, the group is killed first (reason "cancelled") unless `detach()` was called."""
        async with self._lock:
            if self._outcome is not None:
                return self._outcome
            try:
                await self._watch()
            except anyio.get_cancelled_exc_class():
                if not self._detached:
                    with anyio.CancelScope(shield=True):
                        await self._terminate("cancelled", "the engine stopped waiting")
                        if self._ended():
                            self._outcome = self._make_outcome()
                raise
            finally:
                self._close_pidfd()
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
                        await self._terminate("timeout", f"timed out after {_human(spec.timeout)}")
                        continue
                    wake = min(wake, deadline)
                if spec.stall_timeout is not None:
                    stall_at = self._last_output + spec.stall_timeout
                    if now >= stall_at:
                        why = f"stalled: no output for {_human(spec.stall_timeout)}"
                        await self._terminate("stall", why)
                        continue
                    wake = min(wake, stall_at)
            await self._sleep(wake - now)
        if self._kill_reason is not None:
            # The leader may die before its grandchildren; cancel() may still be reaping them.
            await self._kill_done.wait()

    def _ended(self) -> bool:
        if self._end_wall is not None:
            return True
        if self._proc is not None:
            ended = self._proc.poll() is not None  # also reaps it
        else:
            ended = not alive(self.launched)
        if ended:
            self._end_wall = self._adopted_end() if self._proc is None else time.time()
        return ended

    def _adopted_end(self) -> float:
        """When an adopted attempt ended: now, if we saw it running; else its last log write,
        the last sign of life we have."""
        stat = _stat(self.launched.log_path)
        if not self._seen_running and stat is not None:
            return max(self.launched.started_at, stat.st_mtime)
        return time.time()

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
        a kill abandoned between SIGTERM and SIGKILL would leave work running unaccounted."""
        with anyio.CancelScope(shield=True):
            if self._kill_reason is not None:
                await self._kill_done.wait()
                return
            if self._ended():
                return
            self._kill_reason = reason
            pgid, grace = self.launched.pgid, self.spec.grace
            try:
                self._note(f"{why}; killing process group {pgid} (SIGKILL after {_human(grace)})")
                if await _kill_group(pgid, grace, reap=self._ended):
                    self._note(
                        f"process group {pgid} outlived SIGTERM by {_human(grace)}; SIGKILLed"
                    )
            finally:
                self._kill_done.set()

    def _note(self, text: str) -> None:
        _note(self.launched.log_path, text)

    # -- outcome -----------------------------------------------------------------------------

    def _make_outcome(self) -> AttemptOutcome:
        code: int | None = None
        if self._proc is not None and self._proc.returncode is not None:
            returncode = self._proc.returncode
            code = returncode if returncode >= 0 else 128 - returncode  # -15 -> 143
        reason: Reason = self._kill_reason or (
            "exit" if self._proc is not None or self._seen_running else "interrupted"
        )
        end = self._end_wall if self._end_wall is not None else time.time()
        return AttemptOutcome(
            exit_code=code,
            reason=reason,
            duration=max(0.0, end - self.launched.started_at),
            tail=read_tail(self.launched.log_path),
        )

    def _to_mono(self, wall: float) -> float:
        return self._mono_start + (wall - self.launched.started_at)

    def _to_wall(self, mono: float) -> float:
        return self.launched.started_at + (mono - self._mono_start)


# -- process groups ------------------------------------------------------------------------------


async def _kill_group(pgid: int, grace: float, reap: Callable[[], object] | None = None) -> bool:
    """TERM, wait up to `grace`, KILL. `reap` collects our own dead child, whose zombie would
    otherwise keep the group looking alive. Returns whether SIGKILL was needed."""
    if not _signal_group(pgid, signal.SIGTERM):
        return False
    if await _wait_group_gone(pgid, grace, reap):
        return False
    _signal_group(pgid, signal.SIGKILL)
    await _wait_group_gone(pgid, KILL_SETTLE, reap)
    return True


async def _wait_group_gone(pgid: int, limit: float, reap: Callable[[], object] | None) -> bool:
    deadline = time.monotonic() + limit
    delay = 0.01
    while True:
        if reap is not None:
            reap()
        if not _group_running(pgid):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await anyio.sleep(min(delay, left))
        delay = min(delay * 2, 0.1)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _group_running(pgid: int) -> bool:
    """Some member of the group still runs (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not _HAVE_PROC:
        return True
    # killpg() also succeeds for a group of zombies nobody reaps, so ask /proc.
    for entry in os.scandir(_PROC):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and not _is_dead_state(stat[0]):
                return True
    return False


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, pgrp) from /proc/<pid>/stat, or None where there is no /proc or no such pid."""
    if not _HAVE_PROC:
        return None
    try:
        data = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name is in parentheses and may contain anything, so split after the last ")".
    fields = data.rpartition(b")")[2].split()
    return fields[0].decode(), int(fields[2])


def _is_dead_state(state: str) -> bool:
    return state in ("Z", "X", "x")


# -- files ---------------------------------------------------------------------------------------


def _open_log(log_path: Path) -> BinaryIO:
    """Append, creating the folders on first use (the common case costs one open, no mkdir)."""
    try:
        return open(log_path, "ab", buffering=0)
    except FileNotFoundError:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return open(log_path, "ab", buffering=0)


def _note(log_path: Path, text: str) -> None:
    """One line in the job's log, so an operator reading it sees why it stopped."""
    with contextlib.suppress(OSError), open(log_path, "ab+") as log:
        size = log.seek(0, os.SEEK_END)
        lead = b""
        if size:
            log.seek(size - 1)
            lead = b"" if log.read(1) == b"\n" else b"\n"
        log.write(lead + f"[backfill] {text}\n".encode())


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _split_lines(data: bytes, *, partial_head: bool) -> list[str]:
    parts = _LINE_BREAKS.split(data)
    if partial_head and len(parts) > 1:
        parts = parts[1:]  # starts mid-line (maybe mid-character): not a line of its own
    lines = []
    for part in parts:
        line = part.decode("utf-8", errors="replace").rstrip()
        if line:
            lines.append(line if len(line) <= TAIL_LINE_MAX else line[:TAIL_LINE_MAX] + "…")
    return lines


def _launch_problem(spec: AttemptSpec, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) and not spec.cwd.is_dir():
        return f"working directory {spec.cwd} does not exist"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {spec.argv[0]}"
    if isinstance(exc, PermissionError):
        return f"not executable: {spec.argv[0]}"
    return f"{spec.argv[0]}: {exc.strerror or exc}"


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
