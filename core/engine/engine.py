"""The scheduler: runs work items as real processes, in dependency order, to the end.

One engine owns a state_dir at a time. It plans from coverage, journals every transition before
acting on it, dispatches an item only when its upstreams are complete for its dates and earlier
phase gates hold, verifies each attempt against the warehouse (exit 0 with rows missing is a
failure), retries with backoff, cools a phase down on throttling errors, and stops when nothing
more can be dispatched. After a crash the next engine resumes the same run: it adopts attempts
whose process still lives and never re-runs a cell that is complete.
"""

from __future__ import annotations

import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio

from core import runner
from core.config import Config, Phase, Processor
from core.coverage import Coverage, Reread, measure, reread
from core.dateranges import runs
from core.errors import UserError
from core.journal import AttemptRow, ItemRow, Journal
from core.planner import DONE, Reprocess, make_plan, render_argv
from core.progress import Remaining, eta_seconds, seconds_per_date
from core.verifier import Verifier
from core.warehouse import Warehouse

BACKOFF_CAP = 600.0
#: A verification the warehouse could not answer is tried again after 5 s, 10 s, ... 5 min.
VERIFY_RETRY_FIRST_S = 5.0
VERIFY_RETRY_MAX_S = 300.0
#: characters of a failed job's last log line quoted in its reason
LAST_WORDS = 100
ERROR_LINE = re.compile(r"(?i)error|exception|fail|fatal|denied|exceeded|refused|✗")


@dataclass(frozen=True)
class RunRequest:
    start: date
    end: date
    phases: tuple[str, ...] = ()
    processors: tuple[str, ...] = ()
    reprocess: Reprocess = "missing"
    #: cap on attempts running at once across phases (None: the sum of the phases' limits)
    max_parallel: int | None = None

    def key(self) -> dict[str, Any]:
        """What makes two requests the same run (journaled; a resume must match it)."""
        return {
            "phases": sorted(self.phases),
            "processors": sorted(self.processors),
            "reprocess": self.reprocess,
        }

    @classmethod
    def from_key(cls, start: date, end: date, key: dict[str, Any]) -> RunRequest:
        """The request a journaled run was started with: resuming it matches its key."""
        return cls(
            start,
            end,
            phases=tuple(key["phases"]),
            processors=tuple(key["processors"]),
            reprocess=key["reprocess"],
        )


class ItemState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # retries exhausted
    BLOCKED = "blocked"  # an upstream or gate can no longer be satisfied
    CANCELLED = "cancelled"


OPEN = (ItemState.PENDING, ItemState.RUNNING)


@dataclass
class Item:
    id: int
    processor: Processor
    phase: Phase
    dates: tuple[date, ...]
    state: ItemState = ItemState.PENDING
    attempts: int = 0
    not_before: float = 0.0
    priority: int = 0
    reason: str | None = None
    last: AttemptRow | None = None
    handle: runner.Attempt | None = None
    started_at: float | None = None


@dataclass(frozen=True)
class ItemView:
    id: int
    processor: str
    phase: str
    dates: tuple[date, ...]
    state: ItemState
    attempt: int
    started_at: float | None
    duration: float | None
    exit_code: int | None
    reason: str | None
    log_path: Path | None


@dataclass(frozen=True)
class EngineSnapshot:
    state: str  # idle | running | paused | stopping | finished
    run_id: int | None
    items: tuple[ItemView, ...]
    concurrency: dict[str, tuple[int, int]]  # phase -> (running, limit)
    coverage: Coverage | None
    rate_per_hour: float | None
    eta_seconds: float | None

    def count(self, state: ItemState) -> int:
        return sum(1 for i in self.items if i.state is state)


@dataclass(frozen=True)
class EngineEvent:
    kind: (
        str  # item_done | item_failed | item_retry | item_blocked | item_cancelled | cooldown | ...
    )
    message: str
    item: ItemView | None = None


@dataclass
class RunResult:
    run_id: int
    complete: bool
    #: targeted (processor, date) cells that did not end complete or skipped
    incomplete: list[tuple[str, date]] = field(default_factory=list)


class Engine:
    def __init__(
        self,
        config: Config,
        warehouse: Warehouse,
        request: RunRequest,
        *,
        journal: Journal,
        on_event: Callable[[EngineEvent], None] = lambda event: None,
        python: str = sys.executable,
        linger: bool = False,
        preflight: dict[str, Any] | None = None,
    ) -> None:
        """`linger`: once nothing is left to do, wait for commands (retry, ...) until `stop()`,
        as the dashboard wants; headless runs end instead."""
        self.config = config
        self.warehouse = warehouse
        self.request = request
        self.journal = journal
        self.on_event = on_event
        self.python = python
        self.linger = linger
        self.preflight = preflight
        self.items: dict[int, Item] = {}
        self.coverage: Coverage | None = None
        self.run_id: int | None = None
        self.limits = {ph.name: ph.max_parallel for ph in config.phases}
        self.cooling: dict[str, float] = {}  # phase -> cooldown ends at
        self.paused = False
        self.stopping = False
        self.finished = False
        self._started = time.time()
        self._wake = anyio.Event()
        self._samples: dict[str, list[tuple[float, int]]] = {
            p.name: journal.durations(p.name) for p in config.processors
        }
        self._phase_index = {ph.name: i for i, ph in enumerate(config.phases)}
        #: cells the plan could not target (source gaps, unreachable gates): never complete
        self.planned_blocked: set[tuple[str, date]] = set()
        # Indexes kept by _track, so a dispatch pass over thousands of items costs no scans:
        self._count: Counter[tuple[str, ItemState]] = Counter()  # (phase, state) -> items
        self._verifying: Counter[str] = Counter()  # phase -> running items being verified
        self._open_cells: Counter[tuple[str, date]] = Counter()  # cells of pending/running items
        #: pending items in dispatch order (None: to be sorted); items that have left PENDING
        #: stay until `_stale` says half the list has, so a dispatch never re-sorts everything
        self._order: list[Item] | None = None
        self._stale = 0
        #: items told to wait (retry backoff): the only ones the wake-up timer looks at
        self._delayed: dict[int, Item] = {}
        self._verifier = Verifier(self._reread, self._take_reread)

    # -- controls (call from the engine's event loop) -------------------------------------

    def pause(self) -> None:
        self.paused = True
        self._operator("pause")

    def resume(self) -> None:
        self.paused = False
        self._operator("resume")

    def stop(self) -> None:
        """No new dispatch; running attempts finish; then the run ends."""
        self.stopping = True
        self._operator("stop")

    async def cancel_item(self, item_id: int) -> None:
        item = self.items[item_id]
        self._operator("cancel", item_id=item_id)
        if item.state is ItemState.RUNNING and item.handle is not None:
            await item.handle.cancel()
        elif item.state is ItemState.PENDING:
            self._set(item, ItemState.CANCELLED, reason="cancelled by operator")

    async def cancel_all(self) -> None:
        self.stopping = True
        self._operator("cancel_all")
        for item in list(self.items.values()):
            if item.state in (ItemState.PENDING, ItemState.RUNNING):
                await self.cancel_item(item.id)

    def detach_all(self) -> int:
        """Let running attempts outlive this engine (the operator quits the dashboard but keeps
        the work going): they stay open in the journal and the next start adopts them."""
        handles = [i.handle for i in self.items.values() if i.handle is not None]
        for handle in handles:
            handle.detach()
        self.journal.event("operator_detach", run_id=self.run_id, attempts=len(handles))
        return len(handles)

    def retry_failed(self, processor: str | None = None, dates: set[date] | None = None) -> int:
        """Queue failed (and hence blocked) items again, only for the failed cells: healthy
        siblings are never re-run because dispatch skips complete dates."""
        count = 0
        for item in self.items.values():
            if item.state not in (ItemState.FAILED, ItemState.BLOCKED, ItemState.CANCELLED):
                continue
            if processor and item.processor.name != processor:
                continue
            if dates and not dates & set(item.dates):
                continue
            item.attempts = 0
            item.not_before = 0.0
            self._set(item, ItemState.PENDING, reason="retry requested")
            count += 1
        self.stopping = False
        self._operator("retry_failed", processor=processor, count=count)
        return count

    def set_concurrency(self, phase: str, limit: int) -> None:
        self.limits[phase] = max(1, limit)
        self._operator("set_concurrency", phase=phase, limit=self.limits[phase])

    def prioritize(self, start: date, end: date) -> None:
        top = 1 + max((i.priority for i in self.items.values()), default=0)
        for item in self.items.values():
            if item.state is ItemState.PENDING and any(start <= d <= end for d in item.dates):
                item.priority = top
                self.journal.update_item(item.id, priority=top)
        self._order = None
        self._operator("prioritize", start=start.isoformat(), end=end.isoformat())

    def _operator(self, action: str, **detail: Any) -> None:
        self.journal.event(f"operator_{action}", run_id=self.run_id, **detail)
        self._wake.set()

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> RunResult:
        start, end = self.request.start, self.request.end
        self.coverage = await anyio.to_thread.run_sync(
            lambda: measure(self.config, self.warehouse, start, end)
        )
        self._load_or_plan()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._verifier.run)
            self._adopt_open_attempts(tg)
            while True:
                self._dispatch(tg)
                if self._done():
                    break
                with anyio.move_on_after(self._next_timer()):
                    await self._wake.wait()
                self._wake = anyio.Event()
            tg.cancel_scope.cancel()  # nothing runs, so nothing awaits a verification
        self.finished = True
        return self._finish()

    def _load_or_plan(self) -> None:
        previous = self.journal.unfinished_run()
        same = (
            previous is not None
            and (previous.start, previous.end) == (self.request.start, self.request.end)
            and previous.request == self.request.key()
        )
        if previous is not None and same:
            self.run_id = previous.id
            self.journal.event("run_resumed", run_id=self.run_id)
            for row in self.journal.items(self.run_id):
                self._remember(row)
            left = sum(1 for i in self.items.values() if i.state is not ItemState.DONE)
            self._emit(
                "run_resumed",
                f"Resuming run #{self.run_id}: {left} of {len(self.items)} items not done",
            )
            return
        if previous is not None:
            self.journal.end_run(previous.id, "abandoned")
        assert self.coverage is not None
        plan = make_plan(
            self.coverage,
            phases=self.request.phases,
            processors=self.request.processors,
            reprocess=self.request.reprocess,
            python=self.python,
        )
        self.run_id = self.journal.start_run(
            self.request.start, self.request.end, self.request.key()
        )
        if self.preflight is not None:
            self.journal.event("preflight", run_id=self.run_id, **self.preflight)
        for work in plan.items:
            item_id = self.journal.add_item(self.run_id, work.processor, work.phase, work.dates)
            self._remember(self.journal.item(item_id))
        self.planned_blocked = {(p.processor.name, d) for p in plan.processors for d in p.blocked}
        self._emit(
            "run_started",
            f"Run #{self.run_id}: {len(plan.items)} commands for {plan.target_cells} "
            f"processor-dates, {plan.start} → {plan.end}"
            + (
                f"; {plan.blocked_cells} cells blocked from the start" if plan.blocked_cells else ""
            ),
        )

    def _remember(self, row: ItemRow) -> None:
        processor = self.config.processor(row.processor)
        attempts = self.journal.attempts_of_item(row.id)
        item = Item(
            id=row.id,
            processor=processor,
            phase=self.config.phase_of(row.processor),
            dates=row.dates,
            state=ItemState(row.state),
            attempts=row.attempts,
            not_before=row.not_before,
            priority=row.priority,
            reason=row.reason,
            last=attempts[-1] if attempts else None,
        )
        self.items[item.id] = item
        if item.not_before:
            self._delayed[item.id] = item
        self._track(item, +1)

    def _adopt_open_attempts(self, tg: anyio.abc.TaskGroup) -> None:
        """Re-attach to the attempts a crashed engine left open: each is watched to its end
        through its pid and log, and judged by the warehouse (its exit status went with the
        engine that started it). One with no process is re-queued; a cell it completed is not
        run again."""
        assert self.run_id is not None
        open_attempts = self.journal.open_attempts(self.run_id)
        # Crashed between spawning and journaling the pid: find such attempts by their tag.
        untracked = runner.find_tagged(self._tag(a) for a in open_attempts if a.pid is None)
        for attempt in open_attempts:
            item = self.items[attempt.item_id]
            pid = untracked.get(self._tag(attempt))
            if pid is not None:
                self.journal.attempt_launched(attempt.id, pid, pid, attempt.started_at)
                attempt = replace(attempt, pid=pid, pgid=pid)
            launched = _launched(attempt)
            if launched is None:  # nothing runs for it (never started, or already ended)
                self.journal.end_attempt(
                    attempt,
                    exit_code=None,
                    reason="interrupted",
                    outcome="interrupted",
                    duration=0.0,
                    tail=(),
                )
                continue
            self.journal.event(
                "attempt_adopted",
                run_id=self.run_id,
                item_id=item.id,
                pid=attempt.pid,
                alive=runner.alive(launched),
            )
            item.handle = runner.adopt(launched, self._spec(item, attempt))
            item.last = attempt
            item.started_at = attempt.started_at
            self._set(item, ItemState.RUNNING, reason=None)
            tg.start_soon(self._await_attempt, item, attempt)
        for item in self.items.values():
            if item.state is ItemState.RUNNING and item.handle is None:
                # An interruption is the engine's fault, not the job's: it uses no retry.
                self._set(item, ItemState.PENDING, reason="interrupted: re-queued")

    # -- dispatch -------------------------------------------------------------------------

    def _track(self, item: Item, sign: int) -> None:
        self._count[item.phase.name, item.state] += sign
        if item.state in OPEN:
            for day in item.dates:
                self._open_cells[item.processor.name, day] += sign
        if item.state is ItemState.PENDING:
            if sign > 0:
                self._order = None  # a newcomer (a retry, say) must be sorted into place
            else:
                self._stale += 1

    def _running(self) -> int:
        """Items running, including those whose attempt is being verified."""
        return sum(self._count[name, ItemState.RUNNING] for name in self.limits)

    def _busy(self, phase: str | None = None) -> int:
        """Attempts holding a concurrency slot: running items whose process has not ended. One
        being verified has given its slot back (the limits are about jobs, not reads)."""
        phases = [phase] if phase else list(self.limits)
        return sum(self._count[name, ItemState.RUNNING] - self._verifying[name] for name in phases)

    def _open_in_phase(self, phase: str) -> bool:
        return any(self._count[phase, state] for state in OPEN)

    def _pending(self) -> list[Item]:
        """Pending items in dispatch order, possibly with a few that no longer are: callers
        check `state`."""
        if self._order is None:
            self._order = sorted(
                (i for i in self.items.values() if i.state is ItemState.PENDING),
                key=lambda i: (-i.priority, self._phase_index[i.phase.name], i.dates[0], i.id),
            )
            self._stale = 0
        elif self._stale > len(self._order) // 2:
            self._order = [i for i in self._order if i.state is ItemState.PENDING]
            self._stale = 0
        else:
            # Items leave from the front (oldest dates go first): drop that prefix at once.
            order = self._order
            head = 0
            while head < len(order) and order[head].state is not ItemState.PENDING:
                head += 1
            if head:
                del order[:head]
                self._stale -= head
        return self._order

    def _pending_count(self) -> int:
        return sum(self._count[name, ItemState.PENDING] for name in self.limits)

    def _global_limit(self) -> int:
        return self.request.max_parallel or sum(self.limits.values())

    def _dispatch(self, tg: anyio.abc.TaskGroup) -> None:
        # A pass that blocks or settles items can unblock or block others: repeat until stable.
        while self._dispatch_pass(tg):
            pass

    def _dispatch_pass(self, tg: anyio.abc.TaskGroup) -> bool:
        """Start what may start; True if some item settled without running."""
        if self.paused or self.stopping or self._busy() >= self._global_limit():
            return False
        settled = False
        now = time.time()
        gates = self._gate_verdicts()
        waiting = {name for name in self.limits if self._count[name, ItemState.PENDING]}
        full: set[str] = set()
        for item in list(self._pending()):
            if self._busy() >= self._global_limit() or full >= waiting:
                return settled  # no slot left for anything pending: the rest need not be seen
            if item.state is not ItemState.PENDING or item.not_before > now:
                continue
            phase = item.phase.name
            limit = self._effective_limit(phase)
            if self.cooling.get(phase, 0) > now or self._busy(phase) >= limit:
                full.add(phase)
                continue
            verdict = gates.get(phase) or self._readiness(item)
            if verdict == "wait":
                continue
            if verdict != "ready":
                settled = True
                self._set(item, ItemState.BLOCKED, reason=verdict)
                self._emit(
                    "item_blocked", f"blocked {item.processor.name} {_span(item)}: {verdict}", item
                )
                continue
            if not self._still_to_do(item):
                settled = True
                self._set(item, ItemState.DONE, reason="already complete")
                continue
            tg.start_soon(self._execute, item, self._begin(item))
        return settled

    def _effective_limit(self, phase: str) -> int:
        limit = self.limits[phase]
        # After a cooldown the phase runs one fewer at a time until the next clean success.
        return max(1, limit - 1) if phase in self.cooling else limit

    def _gate_verdicts(self) -> dict[str, str]:
        """Per phase held back by an earlier phase's gate: 'wait' while that phase still has
        work queued or running, else why it can never start. Computed once per pass."""
        assert self.coverage is not None
        verdicts: dict[str, str] = {}
        held: str | None = None
        for phase in self.config.phases:
            if held is not None:
                verdicts[phase.name] = held
            if phase.gate is None or held is not None:
                continue
            share = self.coverage.phase_coverage(phase)
            if share is not None and share < phase.gate.min_coverage:
                held = (
                    "wait"
                    if self._open_in_phase(phase.name)
                    else f"{phase.label} gate: {share:.0%} complete, needs "
                    f"{phase.gate.min_coverage:.0%}"
                )
        return verdicts

    def _readiness(self, item: Item) -> str:
        """'ready', 'wait' (upstream work still queued or running) or why it can never run."""
        assert self.coverage is not None
        cov = self.coverage
        for dep in item.processor.depends_on:
            upstream = self.config.processor(dep)
            for day in item.dates:
                if cov.cell(upstream, day).state in DONE:
                    continue
                if self._open_cells[dep, day]:
                    return "wait"
                kind = "source " if upstream.is_source else ""
                return f"{kind}{dep} is not complete on {day}"
        return "ready"

    def _still_to_do(self, item: Item) -> list[date]:
        """The item's dates that are not complete: a cell finished before a crash, or by a
        sibling, is never run again. Split off what cannot share one command."""
        assert self.coverage is not None
        todo = [d for d in item.dates if self.coverage.cell(item.processor, d).state not in DONE]
        if not todo or todo == list(item.dates):
            return todo
        if any("{dates}" in a for a in item.processor.command or ()):
            groups = [todo]
        else:
            skipped = self.coverage.skipped[item.phase.name]
            sequence = [d for d in self.coverage.calendar.expected_dates if d not in skipped]
            groups = runs(todo, sequence)
        self._track(item, -1)
        item.dates = tuple(groups[0])
        self._track(item, +1)
        self.journal.update_item(item.id, dates=item.dates)
        for group in groups[1:]:
            assert self.run_id is not None
            new_id = self.journal.add_item(self.run_id, item.processor.name, item.phase.name, group)
            self._remember(self.journal.item(new_id))
        return list(item.dates)

    def _done(self) -> bool:
        if self._running():
            return False
        if self.stopping:
            return True
        # Pending work with nothing running waits on a backoff timer, a cooldown or a resume.
        return not self.linger and not self._pending_count()

    def _next_timer(self) -> float:
        now = time.time()
        self._delayed = {
            i.id: i
            for i in self._delayed.values()
            if i.state is ItemState.PENDING and i.not_before > now
        }
        times = [i.not_before for i in self._delayed.values()]
        times += list(self.cooling.values())
        future = [t - now for t in times if t > now]
        return min(future, default=5.0) + 0.05

    # -- one item -------------------------------------------------------------------------

    def _spec(self, item: Item, attempt: AttemptRow) -> runner.AttemptSpec:
        proc = item.processor
        return runner.AttemptSpec(
            argv=attempt.argv,
            env=proc.env,
            cwd=self.config.root,
            log_path=attempt.log_path,
            timeout=proc.timeout,
            stall_timeout=proc.stall_timeout,
            tag=self._tag(attempt),
        )

    def _tag(self, attempt: AttemptRow) -> str:
        """Unique on this machine: the journal's path and the attempt's row."""
        return f"{attempt.id}@{self.journal.path}"

    def _log_path(self, item: Item, number: int) -> Path:
        first, last = item.dates[0], item.dates[-1]
        span = first.isoformat() if first == last else f"{first}_{last}"
        return (
            self.config.state_path
            / "logs"
            / f"run-{self.run_id}"
            / item.processor.name
            / f"{span}.attempt-{number}.log"
        )

    def _begin(self, item: Item) -> AttemptRow:
        """The item goes running and its next attempt is journaled, in one commit."""
        argv = render_argv(item.processor.command or (), item.dates, self.python, self.config.path)
        # The item's attempts are numbered here only: its last one is always in `item.last`.
        number = item.last.number + 1 if item.last else 1
        with self.journal.transaction():
            self._set(item, ItemState.RUNNING, reason=None)
            item.last = self.journal.start_attempt(
                item.id, number, argv, self._log_path(item, number)
            )
        item.started_at = time.time()
        return item.last

    async def _execute(self, item: Item, attempt: AttemptRow) -> None:
        try:
            handle = await runner.start(self._spec(item, attempt))
        except OSError as exc:
            with self.journal.transaction():
                item.last = self.journal.end_attempt(
                    attempt,
                    exit_code=None,
                    reason="exit",
                    outcome="failed",
                    duration=0.0,
                    tail=(f"could not start: {exc}",),
                )
                self._after_failure(item, f"could not start: {exc}", transient=False)
            return
        item.handle = handle
        launched = handle.launched
        self.journal.attempt_launched(attempt.id, launched.pid, launched.pgid, launched.started_at)
        attempt = replace(
            attempt, pid=launched.pid, pgid=launched.pgid, started_at=launched.started_at
        )
        item.last = attempt
        await self._await_attempt(item, attempt)

    async def _await_attempt(self, item: Item, attempt: AttemptRow) -> None:
        assert item.handle is not None
        outcome = await item.handle.wait()
        item.handle = None
        phase = item.phase.name
        self._verifying[phase] += 1  # its slot is free: the next item may start meanwhile
        self._wake.set()
        try:
            await self._verify(item)
        finally:
            self._verifying[phase] -= 1
        assert self.coverage is not None
        short = [d for d in item.dates if self.coverage.cell(item.processor, d).state not in DONE]
        if outcome.reason == "cancelled":
            label, why = "cancelled", "cancelled"
        elif (outcome.ok or outcome.status_unknown) and not short:
            label, why = "ok", None
        elif outcome.ok or outcome.status_unknown:
            label = "incomplete"
            how = "exit 0" if outcome.ok else "ended while no engine watched it"
            why = f"{how} but incomplete on {', '.join(d.isoformat() for d in short)}"
        else:
            label = "failed"
            why = _describe(outcome)
        with self.journal.transaction():  # the attempt's end and the item's next state: one commit
            item.last = self.journal.end_attempt(
                attempt,
                exit_code=outcome.exit_code,
                reason=outcome.reason,
                outcome=label,
                duration=outcome.duration,
                tail=outcome.tail,
            )
            self._settle(item, outcome, label, why)
        self._wake.set()

    def _settle(
        self, item: Item, outcome: runner.AttemptOutcome, label: str, why: str | None
    ) -> None:
        attempt = item.last
        assert attempt is not None
        if label == "ok":
            self._samples[item.processor.name].insert(0, (outcome.duration, len(item.dates)))
            if self.cooling.get(item.phase.name, math.inf) <= time.time():
                del self.cooling[item.phase.name]  # clean success after a cooldown: full speed
            self._set(item, ItemState.DONE, reason=None)
            self._emit(
                "item_done",
                f"done {item.processor.name} {_span(item)} "
                f"in {outcome.duration:.1f}s (attempt {attempt.number})",
                item,
            )
        elif label == "cancelled":
            self._set(item, ItemState.CANCELLED, reason="cancelled by operator")
            self._emit("item_cancelled", f"cancelled {item.processor.name} {_span(item)}", item)
        else:
            transient = any(
                re.search(p, line)
                for p in item.processor.transient_patterns
                for line in outcome.tail
            )
            self._after_failure(item, why or "failed", transient=transient)

    def _after_failure(self, item: Item, why: str, *, transient: bool) -> None:
        item.attempts += 1
        if transient:
            until = time.time() + item.phase.cooldown
            self.cooling[item.phase.name] = until
            self._emit(
                "cooldown",
                f"{item.phase.label}: throttled ({why}); no new work for "
                f"{item.phase.cooldown:.0f}s, then one fewer at a time",
                item,
            )
            self.journal.event(
                "cooldown", run_id=self.run_id, item_id=item.id, phase=item.phase.name, until=until
            )
        if item.attempts <= item.processor.retries:
            delay = min(BACKOFF_CAP, item.processor.retry_backoff * 2 ** (item.attempts - 1))
            delay *= random.uniform(0.75, 1.25)  # jitter: retries of one outage do not align
            item.not_before = time.time() + delay
            self._delayed[item.id] = item
            self.journal.update_item(item.id, not_before=item.not_before, attempts=item.attempts)
            self._set(item, ItemState.PENDING, reason=f"{why}; retry in {delay:.0f}s")
            self._emit(
                "item_retry",
                f"failed {item.processor.name} {_span(item)}: {why} "
                f"(attempt {item.attempts} of {item.processor.retries + 1}, retry in "
                f"{delay:.0f}s)",
                item,
            )
        else:
            self.journal.update_item(item.id, attempts=item.attempts)
            self._set(item, ItemState.FAILED, reason=why)
            self._emit(
                "item_failed",
                f"FAILED {item.processor.name} {_span(item)}: {why} (no retries left)",
                item,
            )
        self._wake.set()

    def _set(self, item: Item, state: ItemState, *, reason: str | None) -> None:
        self.journal.set_item_state(self.run_id, item.id, state.value, reason)
        self._track(item, -1)
        item.state = state
        item.reason = reason
        self._track(item, +1)

    def _reread(self, start: date, end: date, processors: frozenset[str]) -> Reread:
        return reread(self.config, self.warehouse, start, end, processors)

    def _take_reread(self, fresh: Reread) -> None:
        assert self.coverage is not None
        self.coverage = self.coverage.merged(fresh)

    async def _verify(self, item: Item) -> None:
        """The item's dates re-read into `self.coverage`. A warehouse that cannot answer
        (network, throttling past the client's retries) delays the verdict; it never ends a
        day-long run."""
        delay = VERIFY_RETRY_FIRST_S
        while True:
            try:
                await self._verifier.verify(
                    item.dates[0], item.dates[-1], _rule_inputs(item.processor)
                )
                return
            except UserError as exc:
                self._emit(
                    "verify_failed",
                    f"re-reading {item.processor.name} {_span(item)} failed: {exc}; "
                    f"trying again in {delay:.0f}s",
                    item,
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, VERIFY_RETRY_MAX_S)

    def _emit(self, kind: str, message: str, item: Item | None = None) -> None:
        self.on_event(EngineEvent(kind, message, self._view(item) if item else None))

    # -- results --------------------------------------------------------------------------

    def _finish(self) -> RunResult:
        assert self.run_id is not None and self.coverage is not None
        incomplete = []
        targeted = {p.name for p in self.config.processors if not p.is_source} & {
            i.processor.name for i in self.items.values()
        } | {name for name, _ in self.planned_blocked}
        for name in sorted(targeted):
            proc = self.config.processor(name)
            for day in self.coverage.calendar.expected_dates:
                if self.coverage.cell(proc, day).state not in DONE:
                    incomplete.append((name, day))
        status = (
            "stopped"
            if self.stopping and incomplete
            else ("incomplete" if incomplete else "finished")
        )
        self.journal.end_run(self.run_id, status)
        return RunResult(self.run_id, not incomplete, incomplete)

    def _view(self, item: Item) -> ItemView:
        last = item.last
        running = item.state is ItemState.RUNNING
        duration = (
            time.time() - item.started_at
            if running and item.started_at
            else (last.duration if last else None)
        )
        return ItemView(
            id=item.id,
            processor=item.processor.name,
            phase=item.phase.name,
            dates=item.dates,
            state=item.state,
            attempt=last.number if last else 0,
            started_at=last.started_at if last else None,
            duration=duration,
            exit_code=last.exit_code if last else None,
            # the engine's own words; a raw runner reason only when it says more than "exit"
            reason=item.reason or (last.reason if last and last.reason != "exit" else None),
            log_path=last.log_path if last else None,
        )

    def snapshot(self) -> EngineSnapshot:
        if self.finished:
            state = "finished"
        elif self.stopping:
            state = "stopping"
        elif self.paused:
            state = "paused"
        else:
            state = "running" if self.run_id is not None else "idle"
        items = tuple(self._view(i) for i in self.items.values())
        done = sum(1 for i in items if i.state is ItemState.DONE)
        elapsed = max(1.0, time.time() - self._started)
        remaining = [
            Remaining(i.processor, i.phase, len(i.dates))
            for i in items
            if i.state in (ItemState.PENDING, ItemState.RUNNING)
        ]
        per_date = {name: seconds_per_date(s) for name, s in self._samples.items()}
        return EngineSnapshot(
            state=state,
            run_id=self.run_id,
            items=items,
            concurrency={
                ph.name: (self._busy(ph.name), self.limits[ph.name]) for ph in self.config.phases
            },
            coverage=self.coverage,
            rate_per_hour=done * 3600 / elapsed if done else None,
            eta_seconds=eta_seconds(remaining, per_date, self.limits) if remaining else 0.0,
        )


def _rule_inputs(processor: Processor) -> frozenset[str]:
    """The processors whose rows decide whether `processor`'s cells are complete."""
    share = processor.min_share_of
    return frozenset({processor.name, *([share.processor] if share else [])})


def _span(item: Item) -> str:
    first, last = item.dates[0], item.dates[-1]
    return first.isoformat() if first == last else f"{first}..{last} ({len(item.dates)} dates)"


def _describe(outcome: runner.AttemptOutcome) -> str:
    if outcome.reason == "exit":
        # The job's last error line says why ("403 Quota exceeded ..."): no log to open for the
        # gist. Jobs often end with a summary or a retry hint, so error-like lines come first.
        lines = [line.strip() for line in outcome.tail if line.strip()]
        last = next((line for line in reversed(lines) if ERROR_LINE.search(line)), None)
        last = last or (lines[-1] if lines else "")
        if len(last) > LAST_WORDS:
            last = last[: LAST_WORDS - 1] + "…"
        return f"exit {outcome.exit_code}: {last}" if last else f"exit {outcome.exit_code}"
    if outcome.reason in ("timeout", "stall"):
        return f"killed: {outcome.reason}"
    return outcome.reason


def _launched(attempt: AttemptRow) -> runner.Launched | None:
    if attempt.pid is None or attempt.pgid is None:
        return None
    return runner.Launched(
        pid=attempt.pid,
        pgid=attempt.pgid,
        started_at=attempt.started_at,
        log_path=attempt.log_path,
    )
