"""The engine: ties the parts together and runs a plan to the end.

One engine owns a state_dir at a time. It measures coverage and plans (or resumes) in a worker
thread, journals every transition before acting on it (through the item store), dispatches what
the scheduler allows, hands each attempt to `Attempts`, and stops when nothing more can be
dispatched. Clients see it through `snapshot(since)` and change it through `submit(command)`.

It also watches its journal. A full disk holds dispatch (the journal keeps the refused writes
and the engine writes them when there is room again; running attempts go on). A journal file
deleted or replaced under it ends dispatch for good: what it wrote since would be lost to every
reader, and the next engine would run those cells again.
"""

from __future__ import annotations

import gc
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import anyio
import anyio.abc

from core.calendar import days_between
from core.config import Config
from core.coverage import Coverage, Reread, measure, reread
from core.engine.api import (
    CancelAll,
    CancelItem,
    Command,
    EngineEvent,
    EngineSnapshot,
    Exclude,
    KnownEmpty,
    Pause,
    Reply,
    Resume,
    Retry,
    RunRequest,
    RunResult,
    RunState,
    SetConcurrency,
    Stop,
    Who,
)
from core.engine.attempts import Attempts, span
from core.engine.cooldowns import Cooldowns
from core.engine.forecasting import Forecaster
from core.engine.gates import GateShares
from core.engine.recovery import Loaded, adopt_open_attempts, load_or_plan
from core.engine.scheduler import (
    AlreadyDone,
    Block,
    Slots,
    Start,
    dispatch,
    gate_verdicts,
    readiness,
    still_to_do,
)
from core.engine.snapshots import Snapshots
from core.engine.verifier import Verifier
from core.errors import UserError
from core.planner import DONE, chunk_dates, select_processors
from core.progress import Forecast
from core.state.items import EXCLUDED, OPEN, Item, ItemState, ItemStore
from core.state.journal import Journal
from core.warehouse import Warehouse

#: how long the loop sleeps when no timer is due (commands and attempt ends wake it earlier); it
#: looks at its journal file then (a stat), and writes what a full disk held back
IDLE_WAKE_S = 2.0


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
        """`linger`: once nothing is left to do, wait for commands (retry, ...) until a Stop,
        as the dashboard wants; headless runs end instead."""
        self.config = config
        self.warehouse = warehouse
        self.request = request
        self.journal = journal
        self.on_event = on_event
        self.python = python
        self.linger = linger
        self.preflight = preflight
        self.limits = {ph.name: ph.max_parallel for ph in config.phases}
        self.cooldowns = Cooldowns(config, self.limits, self._journal_event)
        self.coverage: Coverage | None = None
        self.store: ItemStore | None = None
        self.attempts: Attempts | None = None
        self.paused = False
        self.stopping = False
        self.finished = False
        self.error: str | None = None
        #: what holds dispatch up for now (a full disk), shown to clients as the error
        self.held: str | None = None
        #: the journal file was deleted or replaced: why (dispatch is over)
        self._journal_gone: str | None = None
        #: cells an operator took out of this run (`Exclude`): never queued again by a retry
        self.excluded: set[tuple[str, date]] = set()
        self._started = time.monotonic()
        self._wake = anyio.Event()
        self._gates: GateShares | None = None
        self._snapshots = Snapshots()
        self._forecaster: Forecaster | None = None
        self._verifier = Verifier(self._reread, self._take_reread)
        self._tg: anyio.abc.TaskGroup | None = None
        self._max_writers = {p.name: config.max_writers(p) for p in config.processors}
        self._tables = {p.table for p in config.processors if self._max_writers[p.name]}

    @property
    def run_id(self) -> int | None:
        return self.store.run_id if self.store else None

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> RunResult:
        try:
            return await self._run()
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                self.error = _one_line(exc)
            raise
        finally:
            self.finished = True

    async def _run(self) -> RunResult:
        start, end = self.request.start, self.request.end
        coverage = await anyio.to_thread.run_sync(
            lambda: measure(self.config, self.warehouse, start, end).with_known_empty(
                self.journal.known_empty_cells(start, end)
            )
        )
        self.coverage = coverage
        loaded = await anyio.to_thread.run_sync(self._load, coverage)
        # A plan of 30,000 items is long-lived: keep the collector from walking it again and
        # again (full collections paused the dashboard for a second under load).
        gc.freeze()
        store = loaded.store
        self.warehouse.run_id = store.run_id  # every warehouse job from here on names the run
        self.attempts = Attempts(
            self.config,
            store,
            self._verifier,
            self.cooldowns,
            coverage=self._coverage,
            emit=self._emit,
            wake=self._wake_up,
            python=self.python,
            samples={p.name: self.journal.durations(p.name) for p in self.config.processors},
        )
        self.store = store
        # An exclusion outlives the engine that made it: a resumed run keeps those cells out.
        self.excluded = {
            (item.processor.name, day)
            for item in store.items.values()
            if item.state is ItemState.CANCELLED and item.reason == EXCLUDED
            for day in item.dates
        }
        self._started = time.monotonic()
        self._forecaster = Forecaster(self.attempts, self.limits, self._started)
        self._emit(loaded.kind, loaded.message)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._verifier.run)
            await adopt_open_attempts(self.attempts, tg)
            while True:
                self._watch_journal()
                self._end_pauses()
                self._dispatch(tg)
                if self._done():
                    break
                with anyio.move_on_after(self._next_timer()):
                    await self._wake.wait()
                self._wake = anyio.Event()
            tg.cancel_scope.cancel()  # nothing runs, so nothing awaits a verification
        self._tg = None
        if self._journal_gone is not None:
            raise UserError(self._journal_gone)
        return self._finish()

    def _load(self, coverage: Coverage) -> Loaded:
        """Blocking, in a worker thread: everything a big run costs before its first dispatch
        (planning, journaling the plan, indexes, gate shares, item views)."""
        loaded = load_or_plan(
            self.journal,
            self.config,
            coverage,
            self.request,
            python=self.python,
            preflight=self.preflight,
        )
        self._gates = GateShares(coverage)
        self._snapshots.warm(loaded.store)
        return loaded

    # -- the journal ----------------------------------------------------------------------

    def _watch_journal(self) -> None:
        """Each turn of the loop (at least every IDLE_WAKE_S): a stat and, while the disk is
        full, one try at writing what waits. Both fail fast: nothing here blocks the loop."""
        journal = self.journal
        if journal.waiting:
            count = journal.waiting
            if journal.flush():
                if self.held is not None:
                    self.held = None
                    self._journal_event("journal_writable", kept=count)
                    self._emit(
                        "journal_writable",
                        f"{journal.path} can be written again ({count} writes kept meanwhile "
                        "are in it): dispatch resumes",
                    )
            elif self.held is None:
                self.held = (
                    f"{journal.path}: cannot write ({journal.full}): no new attempts start "
                    "until there is room; running ones go on and their ends are kept"
                )
                self._journal_event("journal_full", problem=journal.full)  # kept, too
                self._emit("journal_full", self.held)
        if self._journal_gone is None:
            gone = journal.vanished()
            if gone is not None:
                self._lose_journal(gone)

    def _lose_journal(self, why: str) -> None:
        """Start nothing more; let the running attempts end (their cells are then complete in
        the warehouse, which the next engine reads), then stop with the reason."""
        assert self.store is not None
        running = self.store.count(ItemState.RUNNING)
        self._journal_gone = (
            f"{why} while this engine ran: what it journals now is lost to every reader, so it "
            f"starts nothing more and exits once {running} running attempts end; start the run "
            "again to go on"
        )
        self.error = self._journal_gone
        self._emit("journal_vanished", self._journal_gone)

    def _wake_up(self) -> None:
        self._wake.set()  # the current event: the loop makes a new one after each wake-up

    def _coverage(self) -> Coverage:
        assert self.coverage is not None
        return self.coverage

    def _done(self) -> bool:
        store = self.store
        assert store is not None
        if store.count(ItemState.RUNNING):
            return False
        if self.stopping or self._journal_gone is not None:
            return True
        # Pending work with nothing running waits on a backoff timer, a cooldown or a resume.
        return not self.linger and not store.count(ItemState.PENDING)

    def _next_timer(self) -> float:
        """Seconds until the next retry backoff or cooldown ends (the loop re-checks then)."""
        assert self.store is not None
        now = time.monotonic()
        times = [*self.store.retry_times(), *self.cooldowns.timers()]
        future = [t - now for t in times if t > now]
        return min([*future, IDLE_WAKE_S]) + 0.05

    # -- dispatch -------------------------------------------------------------------------

    def _end_pauses(self) -> None:
        for pause in self.cooldowns.expire():
            self._emit(
                "quota_resumed",
                f"{self.config.phase(pause.phase).label}: daily-quota pause over: "
                f"{', '.join(pause.processors)} may start again",
            )

    def _writers(self, table: str) -> int:
        """Attempts whose process writes `table` now (one being verified writes no more)."""
        assert self.store is not None and self.attempts is not None
        return self.store.running_on(table) - self.attempts.verifying_tables[table]

    def _busy(self, phase: str) -> int:
        """Attempts holding a slot: running items whose process has not ended (one being
        verified has given its slot back; the limits are about jobs, not reads)."""
        assert self.store is not None and self.attempts is not None
        return self.store.count(ItemState.RUNNING, phase) - self.attempts.verifying[phase]

    def _dispatch(self, tg: anyio.abc.TaskGroup) -> None:
        # A pass that blocks or settles items can unblock or block others: repeat until stable.
        while self._dispatch_pass(tg):
            pass

    def _dispatch_pass(self, tg: anyio.abc.TaskGroup) -> bool:
        """Start what may start; True if some item settled without running."""
        store, attempts, coverage, gates = self.store, self.attempts, self.coverage, self._gates
        assert store and attempts and coverage and gates
        if self.paused or self.stopping or self.held or self._journal_gone:
            return False
        slots = Slots(
            busy=Counter({name: self._busy(name) for name in self.limits}),
            limits={name: self.cooldowns.limit(name, n) for name, n in self.limits.items()},
            total_limit=self.request.max_parallel or sum(self.limits.values()),
            cooling=self.cooldowns.cooling(),
            paused=self.cooldowns.paused(),
            writers=Counter({t: self._writers(t) for t in self._tables}),
            max_writers=self._max_writers,
        )
        if sum(slots.busy.values()) >= slots.total_limit:
            return False
        verdicts = gate_verdicts(
            self.config.phases,
            gates.share,
            lambda phase: any(store.count(s, phase) for s in OPEN),
        )
        settled = False
        for decision in dispatch(
            list(store.pending()),
            time.monotonic(),
            slots,
            waiting={name for name in self.limits if store.count(ItemState.PENDING, name)},
            gates=verdicts,
            readiness=lambda item: readiness(item, coverage, store.is_open),
            todo=lambda item: still_to_do(item, coverage, self.request.reprocess),
        ):
            item = decision.item
            if isinstance(decision, Block):
                settled = True
                store.set_state(item, ItemState.BLOCKED, reason=decision.why)
                self._emit(
                    "item_blocked",
                    f"blocked {item.processor.name} {span(item)}: {decision.why}",
                    item,
                )
            elif isinstance(decision, AlreadyDone):
                settled = True
                store.set_state(item, ItemState.DONE, reason="already complete")
            elif isinstance(decision, Start):
                if self.journal.waiting:
                    break  # the disk just filled: an attempt's start needs its row written
                if decision.dates != item.dates:
                    # Some dates were done meanwhile: the rest may no longer share a command.
                    groups = chunk_dates(item.processor, item.phase, coverage, decision.dates)
                    store.narrow(item, groups)
                tg.start_soon(attempts.execute, item, attempts.begin(item))
        return settled

    # -- commands -------------------------------------------------------------------------

    async def submit(self, command: Command, by: Who | None = None) -> Reply:
        """Apply a client's command (from the engine's event loop). Journaled as an operator
        action with who sent it; the reply says what happened."""
        reply = await self._apply(command, by)
        who = {"who": by.describe()} if by is not None else {}
        self._journal_event(
            f"operator_{type(command).__name__.lower()}", **_fields(command), **who, ok=reply.ok
        )
        self._wake.set()
        return reply

    async def _apply(self, command: Command, by: Who | None = None) -> Reply:
        store, attempts = self.store, self.attempts
        match command:
            case Pause():
                self.paused = True
                return Reply(True, "Paused: no new attempts start; running ones continue.")
            case Resume():
                self.paused = False
                return Reply(True, "Resumed.")
            case Stop(cancel_running=cancel):
                self.stopping = True
                if cancel and attempts is not None:
                    running = list(attempts.handles)
                    await attempts.cancel(running)
                    return Reply(
                        True, f"Stopping: {len(running)} attempts cancelled.", len(running)
                    )
                return Reply(True, "Stopping: no new work; running attempts finish.")
            case CancelItem(item_id=item_id):
                if store is None or attempts is None or item_id not in store.items:
                    return Reply(False, f"No item {item_id} in this run.")
                item = store.items[item_id]
                if item.state is ItemState.RUNNING and item_id in attempts.handles:
                    await attempts.cancel([item_id])
                elif item.state is ItemState.PENDING:
                    store.set_state(item, ItemState.CANCELLED, reason="cancelled by operator")
                else:
                    return Reply(False, f"That item is {item.state.value}; nothing to cancel.")
                return Reply(True, f"Cancelled {item.processor.name} {span(item)}.", 1)
            case CancelAll():
                self.stopping = True
                if store is None or attempts is None:
                    return Reply(True, "Stopping.")
                pending = [i for i in store.pending() if i.state is ItemState.PENDING]
                for item in pending:
                    store.set_state(item, ItemState.CANCELLED, reason="cancelled by operator")
                running = list(attempts.handles)
                await attempts.cancel(running)
                count = len(pending) + len(running)
                return Reply(True, f"Cancelled {count} items.", count)
            case Retry(processor=processor, dates=dates):
                count = self._retry(processor, dates)
                self.stopping = False
                where = f" on {min(dates)}…{max(dates)}" if dates else ""
                return Reply(
                    True,
                    f"{count} failed items queued again{where}"
                    if count
                    else f"No failed items{where} in this run.",
                    count,
                )
            case SetConcurrency(phase=phase, limit=limit):
                if phase not in self.limits:
                    return Reply(False, f"No phase {phase!r}.")
                if all(p.is_source for p in self.config.phase(phase).processors):
                    return Reply(False, f"{phase} runs nothing (its processors are sources).")
                self.limits[phase] = max(1, limit)
                return Reply(True, f"{phase}: up to {self.limits[phase]} at once.")
            case KnownEmpty():
                return self._known_empty(command, by)
            case Exclude(processor=processor, dates=dates):
                return await self._exclude(processor, dates)
        raise AssertionError(f"unknown command {command!r}")

    def _known_empty(self, command: KnownEmpty, by: Who | None) -> Reply:
        """Journal the cells (or undo), then judge the run by them at once: pending items whose
        every date is now known empty settle as done, the rest run only their other dates.
        A running attempt goes on: it counts as done when it ends, rows or not."""
        name, days = command.processor, sorted(command.dates)
        if not self.config.has_processor(name):
            return Reply(False, f"No processor {name!r}.")
        if not days:
            return Reply(False, "No dates given.")
        if not command.undo and not command.reason.strip():
            return Reply(False, "A known-empty mark needs a reason.")
        who = by.describe() if by is not None else "engine"
        if command.undo:
            count = self.journal.unmark_known_empty(name, days, who, run_id=self.run_id)
        else:
            count = self.journal.mark_known_empty(
                name, days, command.reason.strip(), who, run_id=self.run_id
            )
        span_text = f"{days[0]}" if len(days) == 1 else f"{days[0]}…{days[-1]}"
        settled = 0
        if self.coverage is not None:
            cov = self.coverage
            marked = set(cov.known_empty)
            cells = {(name, d) for d in days}
            marked = marked - cells if command.undo else marked | cells
            self.coverage = cov.with_known_empty(marked)
            if self._gates is not None:
                self._gates.update(self.coverage, days)
            if self.store is not None:
                self._snapshots.known_empty_changed(self.store)
                if not command.undo:
                    settled = self._settle_known_empty(name, set(days))
        if command.undo:
            return Reply(
                True,
                f"{name} {span_text}: {count} known-empty marks undone; judged by rows again.",
                count,
            )
        more = f"; {settled} pending items settled" if settled else ""
        noun = "cell" if count == 1 else "cells"
        return Reply(True, f"{name} {span_text}: {count} {noun} marked known empty{more}.", count)

    async def _exclude(self, processor: str, dates: frozenset[date]) -> Reply:
        """The run goes on without these items: it can end, incomplete, naming them."""
        store, attempts = self.store, self.attempts
        if store is None or attempts is None:
            return Reply(False, "No items yet: the run is still being planned.")
        if not self.config.has_processor(processor):
            return Reply(False, f"No processor {processor!r}.")
        chosen = [
            item
            for item in store.items.values()
            if item.processor.name == processor
            and dates & set(item.dates)
            and item.state is not ItemState.DONE
        ]
        if not chosen:
            return Reply(False, f"No open or failed items of {processor} on those dates.")
        running = [
            i.id for i in chosen if i.state is ItemState.RUNNING and i.id in attempts.handles
        ]
        for item in chosen:
            # An item is a chunk of dates: all of it leaves the run, as a cancel stops all of it.
            self.excluded |= {(processor, d) for d in item.dates}
        if running:
            attempts.excluded.update(running)
            await attempts.cancel(running)
        for item in chosen:
            if item.state is not ItemState.RUNNING:
                store.set_state(item, ItemState.CANCELLED, reason=EXCLUDED)
        cells = sum(len(i.dates) for i in chosen)
        return Reply(
            True,
            f"Excluded {len(chosen)} items ({cells} cells) of {processor} from this run"
            + (f"; {len(running)} running ones cancelled." if running else "."),
            len(chosen),
        )

    def _settle_known_empty(self, name: str, days: set[date]) -> int:
        # With `--reprocess all` dispatch would run every date of an item, known empty or not:
        # an item made only of cells just marked is settled here, whatever the request.
        assert self.store is not None
        settled = 0
        for item in list(self.store.pending()):
            if item.state is not ItemState.PENDING or item.processor.name != name:
                continue
            if set(item.dates) <= days:
                self.store.set_state(item, ItemState.DONE, reason="known empty")
                settled += 1
        return settled

    def _retry(self, processor: str | None, dates: frozenset[date] | None) -> int:
        """Queue failed (and hence blocked) items again, only for the failed cells: healthy
        siblings are never re-run because dispatch skips complete dates."""
        if self.store is None:
            return 0
        count = 0
        for item in list(self.store.items.values()):
            if item.state not in (ItemState.FAILED, ItemState.BLOCKED, ItemState.CANCELLED):
                continue
            if processor and item.processor.name != processor:
                continue
            if dates and not dates & set(item.dates):
                continue
            if any((item.processor.name, d) in self.excluded for d in item.dates):
                continue  # taken out of this run by an operator: a retry does not undo that
            self.store.reset(item, reason="retry requested")
            count += 1
        return count

    # -- the warehouse --------------------------------------------------------------------

    def _reread(self, start: date, end: date, processors: frozenset[str]) -> Reread:
        return reread(self.config, self.warehouse, start, end, processors)

    def _take_reread(self, fresh: Reread) -> None:
        assert self.coverage is not None and self._gates is not None and self.store is not None
        self.coverage = self.coverage.merged(fresh)
        self._gates.update(self.coverage, days_between(fresh.start, fresh.end))
        self._snapshots.reread(self.store, fresh)

    # -- what clients see -----------------------------------------------------------------

    def _emit(self, kind: str, message: str, item: Item | None = None) -> None:
        view = self._snapshots.view(self.store, item) if item and self.store else None
        self.on_event(EngineEvent(kind, message, view))

    def _journal_event(self, kind: str, **detail: Any) -> None:
        self.journal.event(kind, run_id=self.run_id, **detail)

    def state(self) -> RunState:
        if self.error is not None:
            return "failed"
        if self.finished:
            return "finished"
        if self.store is None:
            return "measuring"
        if self.stopping:
            return "stopping"
        return "paused" if self.paused else "running"

    def snapshot(self, since: int = 0, limit: int | None = None) -> EngineSnapshot:
        store = self.store
        attempts = self.attempts
        return self._snapshots.snapshot(
            since,
            limit,
            state=self.state(),
            request=self.request,
            store=store,
            coverage=self.coverage,
            concurrency={
                name: (self._busy(name) if store and attempts else 0, limit)
                for name, limit in self.limits.items()
            },
            forecast=self._forecast,
            error=self.error or self.held,
            pauses=self.cooldowns.views(),
        )

    def _forecast(self) -> Forecast:
        if self._forecaster is None:
            return Forecast("measuring")
        return self._forecaster(paused=self.paused)

    def _finish(self) -> RunResult:
        store, coverage = self.store, self.coverage
        assert store is not None and coverage is not None
        # Judged over everything the request targets, not over the items: a resumed run loads
        # its items, and a processor whose every cell was blocked from the start has none.
        targeted = select_processors(self.config, self.request.phases, self.request.processors)
        incomplete = [
            (proc.name, day)
            for proc in sorted(targeted, key=lambda p: p.name)
            for day in coverage.calendar.expected_dates
            if coverage.cell(proc, day).state not in DONE
        ]
        status = (
            "stopped"
            if self.stopping and incomplete
            else "incomplete"
            if incomplete
            else "finished"
        )
        self.journal.end_run(store.run_id, status)
        excluded = [cell for cell in incomplete if cell in self.excluded]
        return RunResult(store.run_id, not incomplete, incomplete, excluded)


def _fields(command: Command) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in vars(command).items()}


def _one_line(exc: BaseException) -> str:
    """What went wrong, in the words of the innermost error an operator can act on."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__
