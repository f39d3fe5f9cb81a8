"""Starting a run, or picking up the one a crashed engine left: plan and journal it in one
transaction, or load it and re-attach to the attempts still running.

The run row and all its items are written in one transaction, so a crash while planning leaves
no cut-down plan for the next engine to trust. After a crash (even `kill -9`) the next engine
with the same request resumes the same run: attempts the executor still finds running are
watched to their end and judged by the warehouse; attempts with nothing left are re-queued; a
cell that is complete is never run again. How an attempt is found, and proven to be the
attempt's and not a stranger's, is the executor's (`core.executors.local`: by pid, start time and
tag, or by the tag in /proc when the crash came before the pid was journaled).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from core.config import Config
from core.coverage import Coverage
from core.engine.api import RunRequest
from core.engine.attempts import Attempts
from core.executors import Adopted, AttemptSpec, Unproven
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
    """Re-attach to the attempts a crashed engine left open: each the executor proves is still
    the one it started is watched to its end and judged by the warehouse (its exit status went
    with the engine that started it, for a local process); so is one that has ended meanwhile.
    One the executor cannot prove, or that is not there at all, is re-queued
    (`Attempts.abandon`), using no retry: the interruption was the engine's, not the job's."""
    store = attempts.store
    journal = store.journal
    open_attempts = journal.open_attempts(store.run_id)
    by_kind: defaultdict[str, list[tuple[AttemptRow, AttemptSpec]]] = defaultdict(list)
    for attempt in open_attempts:
        by_kind[attempt.executor].append(
            (attempt, attempts.spec(store.items[attempt.item_id], attempt))
        )
    found: dict[int, Adopted | Unproven] = {}
    for kind, started in by_kind.items():  # each attempt with the executor that started it
        found |= await attempts.executor(kind).recover(started)
    taken: set[int] = set()
    for attempt in open_attempts:
        item = store.items[attempt.item_id]
        taken.add(item.id)
        adopted = found[attempt.id]
        if isinstance(adopted, Unproven):
            journal.event(
                "attempt_not_adopted", run_id=store.run_id, item_id=item.id, why=adopted.why
            )
            tg.start_soon(attempts.abandon, item, attempt, adopted.why)
            continue
        if attempt.pid is None and attempt.remote_ref is None:
            # It crashed between the start and journaling what it started (the pid, the job's
            # name): the executor found it by its tag.
            attempt = attempts.journal_launch(item, adopted.handle)
        journal.event(
            "attempt_adopted",
            run_id=store.run_id,
            item_id=item.id,
            pid=attempt.pid,
            ref=attempt.remote_ref,
            alive=adopted.alive,
        )
        store.set_state(item, ItemState.RUNNING, reason=None)
        tg.start_soon(attempts.watch, item, attempt, adopted.handle)
    for item in list(store.items.values()):
        if item.state is ItemState.RUNNING and item.id not in taken:
            store.set_state(item, ItemState.PENDING, reason="interrupted: re-queued")
