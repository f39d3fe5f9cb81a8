"""One attempt from spawn to verdict: start the process, watch it, re-read the warehouse, judge,
and journal the end together with the item's next state (retry, done, failed).

A running item's attempt holds its phase's concurrency slot only while its process runs: once it
ends, the slot goes to the next job while the warehouse is re-read (`verifying`). "Ends" means
nothing of it runs any more: `Attempt.wait()` has ended what it left running, so no leftover
can write the rows that would make a killed or failed attempt look complete.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio

from core.config import Config, Processor
from core.coverage import Coverage
from core.engine.cooldowns import Cooldowns
from core.engine.retry import Short, Throttled, Verdict, classify, decide, judge
from core.engine.verifier import Verifier
from core.errors import UserError, WarehouseError
from core.executors import (
    AttemptOutcome,
    AttemptSpec,
    Executor,
    Handle,
    Remote,
    executors_for,
    human,
    read_recent,
)
from core.planner import DONE, render_argv
from core.progress import Finish
from core.state.items import EXCLUDED, Item, ItemState, ItemStore
from core.state.journal import AttemptRow, ended_leftovers

#: A verification the warehouse could not answer is tried again after 5 s, 10 s, ... 5 min.
VERIFY_RETRY_FIRST_S = 5.0
VERIFY_RETRY_MAX_S = 300.0
#: an attempt its executor never started (`unstarted`) goes again after this long
UNSTARTED_RETRY_S = 60.0
#: successful attempts per processor kept for ETAs
SAMPLES = 50
#: finishes kept for the rate's window (a busy trivial run finishes thousands in it)
FINISHES = 10_000

Emit = Callable[[str, str, Item | None], None]


class Attempts:
    def __init__(
        self,
        config: Config,
        store: ItemStore,
        verifier: Verifier,
        cooldowns: Cooldowns,
        *,
        coverage: Callable[[], Coverage],
        emit: Emit,
        wake: Callable[[], None],
        python: str,
        samples: dict[str, list[tuple[float, int]]],
    ) -> None:
        self.config = config
        self.store = store
        self.verifier = verifier
        self.cooldowns = cooldowns
        self._coverage = coverage
        self._emit = emit
        self._wake = wake
        self.python = python
        #: this run's logs: a folder per processor, a file per attempt
        self._logs = config.state_path / "logs" / f"run-{store.run_id}"
        #: processor -> its folder in `_logs`; the jobs' working directory (paths are built
        #: once, not on each of thousands of attempts)
        self._log_folders: dict[str, Path] = {}
        self._cwd = config.root
        self._journal_path = str(store.journal.path)
        #: executor kind -> what runs the attempts of that kind
        self.executors = executors_for(config)
        #: item id -> its running attempt
        self.handles: dict[int, Handle] = {}
        #: items an operator excluded from the run: their cancelled attempt says so
        self.excluded: set[int] = set()
        #: phase -> running items whose attempt is being verified (their slot is free)
        self.verifying: Counter[str] = Counter()
        #: table -> the same, by the table they wrote (they write no more)
        self.verifying_tables: Counter[str] = Counter()
        #: processor -> (seconds, dates) of its latest successful attempts in earlier runs (the
        #: journal's), and in this engine, newest first: what the ETA is made of
        self.history = {name: rows[:SAMPLES] for name, rows in samples.items()}
        self.own: dict[str, deque[tuple[float, int]]] = {}
        #: this engine's successful attempts, oldest first: the rate and the ETA's calibration
        self.finishes: deque[Finish] = deque(maxlen=FINISHES)

    # -- naming ----------------------------------------------------------------------------

    def tag(self, attempt: AttemptRow) -> str:
        return self._tag(attempt.id)

    def _tag(self, attempt_id: int) -> str:
        """Unique on this machine: the journal's path and the attempt's row."""
        return f"{attempt_id}@{self._journal_path}"

    def spec(self, item: Item, attempt: AttemptRow) -> AttemptSpec:
        proc = item.processor
        return AttemptSpec(
            argv=attempt.argv,
            env=proc.env,
            cwd=self._cwd,
            log_path=attempt.log_path,
            timeout=proc.timeout,
            stall_timeout=proc.stall_timeout,
            grace=proc.kill_grace,
            tag=self.tag(attempt),
            processor=proc.name,
            dates=item.dates,
            remote_ref=attempt.remote_ref,
        )

    def _log_path(self, item: Item, number: int) -> Path:
        first, last = item.dates[0], item.dates[-1]
        dates = first.isoformat() if first == last else f"{first}_{last}"
        name = item.processor.name
        folder = self._log_folders.get(name)
        if folder is None:
            folder = self._log_folders[name] = self._logs / name
        return folder / f"{dates}.attempt-{number}.log"

    def executor(self, kind: str) -> Executor:
        """The executor of an attempt journaled with `kind` (the phase's at the time: after a
        restart an attempt goes on with the executor that started it)."""
        try:
            return self.executors[kind]
        except KeyError:
            # Only a journal written by another version holds one: the config refuses them.
            raise UserError(
                f"{self.store.journal.path}: an open attempt ran on executor {kind}, which is "
                "not available in this version; resume the run with the version that started it"
            ) from None

    # -- the lifecycle ---------------------------------------------------------------------

    def begin(self, item: Item) -> AttemptRow:
        """The item goes running and its next attempt is journaled (one commit); spawn it with
        `execute` in a task."""
        argv = render_argv(item.processor.command or (), item.dates, self.python, self.config.path)
        number = item.last.number + 1 if item.last else 1
        kind = self.config.executor_of(item.phase).kind
        executor = self.executor(kind)
        return self.store.begin_attempt(
            item,
            argv,
            self._log_path(item, number),
            executor=kind,
            reference=lambda attempt_id: executor.reference(self._tag(attempt_id)),
        )

    async def execute(self, item: Item, attempt: AttemptRow) -> None:
        try:
            handle = await self.executor(attempt.executor).start(self.spec(item, attempt))
        except OSError as exc:
            with self.store.transaction():
                self.store.end_attempt(
                    item,
                    attempt,
                    exit_code=None,
                    reason="exit",
                    outcome="failed",
                    duration=0.0,
                    tail=(f"could not start: {exc}",),
                )
                self._after_failure(item, f"could not start: {exc}")
            return
        await self.watch(item, self.journal_launch(item, handle), handle)

    def journal_launch(self, item: Item, handle: Handle) -> AttemptRow:
        """What the next engine needs to find the running attempt again (a pid, a job's name)."""
        launched = handle.launched
        if isinstance(launched, Remote):
            return self.store.launched_remote(item, launched.ref, launched.started_at)
        return self.store.launched(
            item, launched.pid, launched.pgid, launched.started_at, launched.start_ticks
        )

    async def watch(self, item: Item, attempt: AttemptRow, handle: Handle) -> None:
        """Until the attempt ends and its verdict is journaled (also for adopted attempts)."""
        self.handles[item.id] = handle
        try:
            outcome = await handle.wait()
        finally:
            del self.handles[item.id]
        if outcome.reason == "unstarted":
            self._requeue_unstarted(item, attempt, outcome, handle)
            await handle.forget()
            return
        phase, table = item.phase.name, item.processor.table
        # Its slot is free, and it writes the table no more: the next item may start meanwhile.
        self.verifying[phase] += 1
        self.verifying_tables[table] += 1
        self._wake()
        try:
            problem = await self._verify(item)
        finally:
            self.verifying[phase] -= 1
            self.verifying_tables[table] -= 1
        throttled: Throttled | None = None
        if problem is not None:
            verdict = Verdict("failed", f"verification failed: {problem}")
        else:
            coverage = self._coverage()
            cells = [(d, coverage.cell(item.processor, d)) for d in item.dates]
            short = [Short(d, c.rows, c.required) for d, c in cells if c.state not in DONE]
            verdict = judge(outcome, short)
            if verdict.label in ("failed", "incomplete"):
                # The error may sit far above the last lines (a traceback, a summary follow
                # it); the log can be large, so it is read off the event loop.
                recent = await anyio.to_thread.run_sync(read_recent, attempt.log_path)
                throttled = classify(item.processor, recent)
        with self.store.transaction():  # the attempt's end and the item's next state: one commit
            self.store.end_attempt(
                item,
                attempt,
                exit_code=outcome.exit_code,
                reason=outcome.reason,
                outcome=verdict.label,
                duration=outcome.duration,
                tail=outcome.tail,
                leftovers=outcome.leftovers,
            )
            self._settle(item, outcome, verdict, permanent=problem is not None, throttled=throttled)
        await handle.forget()  # the verdict is on disk: the executor's record may go
        self._wake()

    def _requeue_unstarted(
        self, item: Item, attempt: AttemptRow, outcome: AttemptOutcome, handle: Handle
    ) -> None:
        """The executor never ran the command (a cluster kept it pending past its limit): not
        the job's failure, so no retry is spent; the item waits a while and goes again."""
        why = outcome.tail[-1] if outcome.tail else "the executor never started it"
        with self.store.transaction():
            self.store.end_attempt(
                item,
                attempt,
                exit_code=None,
                reason="unstarted",
                outcome="interrupted",
                duration=outcome.duration,
                tail=outcome.tail,
            )
            self.store.retry_later(
                item,
                attempts=item.attempts,
                delay=UNSTARTED_RETRY_S,
                reason=f"not started by {attempt.executor}: {why}; again in "
                f"{UNSTARTED_RETRY_S:.0f}s, no retry spent",
            )
        self._emit(
            "item_retry",
            f"{item.processor.name} {span(item)} was not started by {attempt.executor}; "
            f"queued again in {UNSTARTED_RETRY_S:.0f}s",
            item,
        )
        self._wake()

    async def abandon(self, item: Item, attempt: AttemptRow, why: str) -> None:
        """An attempt a crashed engine left open whose process is not there to adopt (`why`):
        whatever still carries its tag is ended, then the item is re-queued, using no retry (the
        interruption was the engine's, not the job's). The pid is never signalled: it may be a
        stranger's now, and so may the group it led."""
        executor = self.executor(attempt.executor)
        leftovers = await executor.end_remains(self.spec(item, attempt))
        with self.store.transaction():
            self.store.end_attempt(
                item,
                attempt,
                exit_code=None,
                reason="interrupted",
                outcome="interrupted",
                duration=0.0,
                tail=(f"[backfill] not adopted after a restart: {why}",),
                leftovers=leftovers,
            )
            reason = f"interrupted: {why}{ended_leftovers(leftovers)}; re-queued"
            self.store.set_state(item, ItemState.PENDING, reason=reason)
        self._wake()

    def _settle(
        self,
        item: Item,
        outcome: AttemptOutcome,
        verdict: Verdict,
        *,
        permanent: bool,
        throttled: Throttled | None,
    ) -> None:
        attempt = item.last
        assert attempt is not None
        name = item.processor.name
        if verdict.label == "ok":
            self.own.setdefault(name, deque(maxlen=SAMPLES)).appendleft(
                (outcome.duration, len(item.dates))
            )
            self.finishes.append(Finish(time.monotonic(), item.phase.name, outcome.duration))
            self.cooldowns.succeeded(item.phase.name)
            self.store.set_state(item, ItemState.DONE, reason=None)
            self._emit(
                "item_done",
                f"done {name} {span(item)} in {outcome.duration:.1f}s (attempt {attempt.number})"
                f"{ended_leftovers(outcome.leftovers)}",
                item,
            )
        elif verdict.label == "cancelled":
            excluded = item.id in self.excluded
            reason = EXCLUDED if excluded else "cancelled by operator"
            self.store.set_state(item, ItemState.CANCELLED, reason=reason)
            why = "excluded" if excluded else "cancelled"
            self._emit("item_cancelled", f"{why} {name} {span(item)}", item)
        elif permanent:
            why = verdict.why or "failed"
            self.store.give_up(item, attempts=item.attempts + 1, reason=why)
            self._emit("item_failed", f"FAILED {name} {span(item)}: {why}", item)
        else:
            self._after_failure(
                item, verdict.why or "failed", throttled=throttled, started_at=attempt.started_at
            )

    def _after_failure(
        self,
        item: Item,
        why: str,
        *,
        throttled: Throttled | None = None,
        started_at: float | None = None,
    ) -> None:
        tier = throttled.tier if throttled else None
        decision = decide(
            item.processor, item.phase, item.attempts, tier=tier, jitter=random.uniform(0.75, 1.25)
        )
        if throttled is not None and decision.pause is not None:
            self._pause(item, throttled, decision.pause)
            return
        if throttled is not None:
            kind = "throttled" if throttled.tier == "rate" else "never transient"
            why = f"{kind}: {throttled.line}"
        if decision.cooldown is not None:
            seconds = self.cooldowns.throttled(
                item.phase, started_at=started_at, reason=why, item_id=item.id
            )
            self._emit(
                "cooldown",
                f"{item.phase.label}: {why}; no new work for {seconds:.0f}s, then fewer at "
                "a time until attempts succeed again",
                item,
            )
        name = item.processor.name
        if decision.retry_in is not None:
            delay = decision.retry_in
            self.store.retry_later(
                item,
                attempts=decision.attempts,
                delay=delay,
                reason=f"{why}; retry in {delay:.0f}s",
            )
            self._emit(
                "item_retry",
                f"failed {name} {span(item)}: {why} (attempt {decision.attempts} of "
                f"{item.processor.retries + 1}, retry in {delay:.0f}s)",
                item,
            )
        else:
            left = "not retried" if tier == "fatal" else "no retries left"
            self.store.give_up(item, attempts=decision.attempts, reason=why)
            self._emit("item_failed", f"FAILED {name} {span(item)}: {why} ({left})", item)
        self._wake()

    def _pause(self, item: Item, throttled: Throttled, seconds: float) -> None:
        """A daily quota: the table's writers start nothing for `seconds`, and the item waits
        as long without spending a retry."""
        until = time.strftime("%H:%M", time.localtime(time.time() + seconds))
        pause = self.cooldowns.pause(
            item.processor, item.phase, seconds, reason=throttled.line, item_id=item.id
        )
        self.store.retry_later(
            item,
            attempts=item.attempts,
            delay=seconds,
            reason=f"paused: daily quota until {until} ({throttled.line}); no retry spent",
        )
        if pause is not None:
            self._emit(
                "quota_paused",
                f"{item.phase.label}: daily quota ({throttled.line}): "
                f"{', '.join(pause.processors)} paused for {human(seconds)}, until {until}; "
                "no retries spent",
                item,
            )
        self._wake()

    async def _verify(self, item: Item) -> str | None:
        """Re-read the item's dates into the run's coverage. A warehouse that cannot answer for
        now (network, throttling past the client's retries) delays the verdict; it never ends
        a day-long run. A permanent error (permission denied, bad SQL) is returned: waiting will
        not mend it."""
        delay = VERIFY_RETRY_FIRST_S
        while True:
            try:
                await self.verifier.verify(
                    item.dates[0], item.dates[-1], rule_inputs(item.processor)
                )
                return None
            except WarehouseError as exc:
                if not exc.transient:
                    return str(exc)
                self._emit(
                    "verify_failed",
                    f"re-reading {item.processor.name} {span(item)} failed: {exc}; "
                    f"trying again in {delay:.0f}s",
                    item,
                )
            except UserError as exc:
                return str(exc)
            await anyio.sleep(delay)
            delay = min(delay * 2, VERIFY_RETRY_MAX_S)

    async def cancel(self, item_ids: Iterable[int]) -> None:
        """Kill these items' attempts all at once: each waits only its own `kill_grace`."""
        handles = [self.handles[i] for i in item_ids if i in self.handles]
        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(handle.cancel)


def rule_inputs(processor: Processor) -> frozenset[str]:
    """The processors whose rows decide whether `processor`'s cells are complete."""
    share = processor.min_share_of
    return frozenset({processor.name, *([share.processor] if share else [])})


def span(item: Item) -> str:
    first, last = item.dates[0], item.dates[-1]
    return first.isoformat() if first == last else f"{first}..{last} ({len(item.dates)} dates)"
