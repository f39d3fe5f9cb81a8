"""Starting a run, or picking up the one a crashed engine left: plan and journal it in one
transaction, or load it and re-attach to the attempts still running.

The run row and all its items are written in one transaction, so a crash while planning leaves
no cut-down plan for the next engine to trust. After a crash (even `kill -9`) the next engine
with the same request resumes the same run: attempts whose process still lives are watched to
their end (found by pid, or by their tag in /proc when the crash came before the pid was
journaled) and judged by the warehouse; attempts with no process left are re-queued; a cell
that is complete is never run again. A journaled pid counts as the attempt's only if the process
holding it has the journaled start time and the attempt's tag: after a crash the OS may have
given the pid to a stranger, who is left alone while the attempt is re-queued.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import anyio
import anyio.abc

from core import process
from core.config import Config
from core.coverage import Coverage
from core.engine.api import RunRequest
from core.engine.attempts import Attempts
from core.planner import make_plan
from core.state.items import ItemState, ItemStore
from core.state.journal import AttemptRow, ItemRow, Journal


@dataclass
class Loaded:
    store: ItemStore
    #: run_started | run_resumed
    kind: str
    message: str


def load_or_plan(
    journal: Journal,
    config: Config,
    coverage: Coverage,
    request: RunRequest,
    *,
    python: str,
    preflight: dict[str, Any] | None,
) -> Loaded:
    """Blocking (planning a decade takes seconds): run it in a worker thread."""
    previous = journal.unfinished_run()
    if (
        previous is not None
        and (previous.start, previous.end) == (request.start, request.end)
        and previous.request == request.key()
    ):
        store = ItemStore(journal, config, previous.id)
        store.load(journal.items(previous.id), journal.last_attempts(previous.id))
        journal.event("run_resumed", run_id=previous.id)
        left = sum(1 for i in store.items.values() if i.state is not ItemState.DONE)
        return Loaded(
            store,
            "run_resumed",
            f"Resuming run #{previous.id}: {left} of {len(store.items)} items not done",
        )
    failed = (
        () if request.reprocess != "failed" else journal.failed_cells(request.start, request.end)
    )
    plan = make_plan(
        coverage,
        phases=request.phases,
        processors=request.processors,
        reprocess=request.reprocess,
        failed=frozenset(failed),
        python=python,
    )
    works = [(w.processor, w.phase, w.dates) for w in plan.items]
    with journal.transaction():
        if previous is not None:
            journal.end_run(previous.id, "abandoned")
        run_id, ids = journal.start_run_with_items(request.start, request.end, request.key(), works)
        if preflight is not None:
            journal.event("preflight", run_id=run_id, **preflight)
    store = ItemStore(journal, config, run_id)
    store.load(
        [
            ItemRow(
                id=item_id,
                run_id=run_id,
                processor=processor,
                phase=phase,
                dates=tuple(dates),
                state=ItemState.PENDING.value,
                attempts=0,
                not_before=0.0,
                reason=None,
            )
            for item_id, (processor, phase, dates) in zip(ids, works, strict=True)
        ],
        {},
    )
    blocked = f"; {plan.blocked_cells} cells blocked from the start" if plan.blocked_cells else ""
    return Loaded(
        store,
        "run_started",
        f"Run #{run_id}: {len(plan.items)} commands for {plan.target_cells} processor-dates, "
        f"{plan.start} → {plan.end}{blocked}",
    )


async def adopt_open_attempts(attempts: Attempts, tg: anyio.abc.TaskGroup) -> None:
    """Re-attach to the attempts a crashed engine left open: each whose process is still the
    one it started is watched to its end through its pid and log, and judged by the warehouse
    (its exit status went with the engine that started it); so is one whose process has ended
    meanwhile. One whose pid a stranger now holds, or that has no process at all, is re-queued
    (`Attempts.abandon`), using no retry: the interruption was the engine's, not the job's."""
    store = attempts.store
    journal = store.journal
    open_attempts = journal.open_attempts(store.run_id)
    # One stat and environment read per attempt, and a read of every process for those whose
    # pid was never journaled: not on the event loop.
    found = await anyio.to_thread.run_sync(_find_processes, attempts, open_attempts)
    taken: set[int] = set()
    for attempt in open_attempts:
        item = store.items[attempt.item_id]
        taken.add(item.id)
        launched = found[attempt.id]
        if isinstance(launched, process.Unproven):
            journal.event(
                "attempt_not_adopted", run_id=store.run_id, item_id=item.id, why=launched.why
            )
            tg.start_soon(attempts.abandon, item, attempt, launched.why)
            continue
        if attempt.pid is None:  # crashed between spawning and journaling the pid
            attempt = store.launched(
                item, launched.pid, launched.pgid, attempt.started_at, launched.start_ticks
            )
        journal.event(
            "attempt_adopted",
            run_id=store.run_id,
            item_id=item.id,
            pid=attempt.pid,
            alive=process.alive(launched),
        )
        handle = process.adopt(launched, attempts.spec(item, attempt))
        store.set_state(item, ItemState.RUNNING, reason=None)
        tg.start_soon(attempts.watch, item, attempt, handle)
    for item in list(store.items.values()):
        if item.state is ItemState.RUNNING and item.id not in taken:
            store.set_state(item, ItemState.PENDING, reason="interrupted: re-queued")


def _find_processes(
    attempts: Attempts, open_attempts: list[AttemptRow]
) -> dict[int, process.Launched | process.Unproven]:
    """Attempt id -> its process to adopt, or why there is none. Blocking: reads /proc."""
    tags = [attempts.tag(a) for a in open_attempts if a.pid is None]
    untracked = process.find_tagged(tags) if tags else {}
    found: dict[int, process.Launched | process.Unproven] = {}
    for attempt in open_attempts:
        tag = attempts.tag(attempt)
        launched = _launched(attempt)
        if launched is None and tag in untracked:
            pid = untracked[tag]  # the tag is its proof of identity
            launched = _launched(
                replace(attempt, pid=pid, pgid=pid, start_ticks=process.start_ticks(pid))
            )
        if launched is None:
            why = "no pid was journaled and no process carries its tag (never started, or ended)"
            found[attempt.id] = process.Unproven(why, gone=True)
            continue
        unproven = process.identify(launched, tag)
        # A pid nobody holds is safe to watch: the attempt ends at once and the warehouse
        # judges what it did. A stranger holding it is never watched, nor ever signalled.
        found[attempt.id] = launched if unproven is None or unproven.gone else unproven
    return found


def _launched(attempt: AttemptRow) -> process.Launched | None:
    if attempt.pid is None or attempt.pgid is None:
        return None
    return process.Launched(
        pid=attempt.pid,
        pgid=attempt.pgid,
        started_at=attempt.started_at,
        log_path=attempt.log_path,
        start_ticks=attempt.start_ticks,
    )
