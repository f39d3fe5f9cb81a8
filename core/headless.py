"""`backfill run --headless`: the engine with plain-text progress on stdout.

One line per finished item, a summary line every SUMMARY_EVERY seconds, Ctrl-C once to stop
dispatching and let running attempts finish, twice to cancel them. An error the operator can act
on (an unreachable warehouse, say) ends the run with one line and exit 2, never a traceback.

The run is attachable: while it lasts it serves its socket under state_dir, so dashboards and
the CLI's control commands reach it. `backfill run --detach` runs this very program in a session
of its own, its output going to state_dir/engine.log.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import anyio

from core.config import Config
from core.engine.api import (
    HEADER_ONLY,
    CancelAll,
    EngineEvent,
    EngineSnapshot,
    ItemState,
    RunningEngine,
    RunRequest,
    Stop,
    Who,
    local_engine,
)
from core.errors import UserError
from core.notify import (
    Milestones,
    Notice,
    Notifier,
    digest,
    from_engine,
    run_finished,
)
from core.preflight import all_checks, gate_record, run_checks
from core.printable import printable
from core.progress import describe
from core.service.server import EngineServer
from core.state import EngineLock, Journal, statedir
from core.warehouse import open_warehouse

SUMMARY_EVERY = 15.0
#: once the run has ended, how long queued notifications (run_finished above all) may take to
#: go out before the process exits anyway
NOTIFY_FLUSH_S = 15.0
#: how often a failure alarm is looked at for recovery (failures age out of its window) and
#: digests that are due are sent
ALARM_TICK_S = 5.0
#: how long a finished engine still answers attached dashboards before it exits
FINAL_WORD_S = 1.0
EXIT_ERROR = 2

Echo = Callable[[str], None]


def summary_line(snap: EngineSnapshot) -> str:
    if snap.state == "measuring":
        return "[measuring coverage and planning …]"
    rate = (
        f"{snap.forecast.rate_per_hour:.0f} items/h" if snap.forecast.rate_per_hour else "rate --"
    )
    phases = " · ".join(
        f"{name} {running}/{limit}"
        for name, (running, limit) in snap.concurrency.items()
        if running
    )
    return (
        f"[{snap.count(ItemState.DONE)}/{snap.total} done · {snap.count(ItemState.RUNNING)} "
        f"running · {snap.count(ItemState.PENDING)} queued · {snap.count(ItemState.FAILED)} "
        f"failed · {snap.count(ItemState.BLOCKED)} blocked · {rate} · {describe(snap.forecast)}]"
        + (f" {phases}" if phases else "")
    )


def _stamp(text: str) -> str:
    return f"{time.strftime('%H:%M:%S')} {text}"


async def run_headless(
    config: Config,
    request: RunRequest,
    echo: Echo,
    ignore_preflight: bool = False,
    preflight: dict[str, Any] | None = None,
) -> int:
    """`preflight`: the checks' record, when the caller ran them already (the dashboard)."""
    # Restored after: the dashboard's tests and `invoke` run this inside a longer-lived process.
    umask = statedir.engine_umask(config.group)
    try:
        statedir.prepare(config.state_path, group=config.group)
        lock = EngineLock(config.state_path)
        lock.acquire()
        try:
            return await _own(config, request, echo, ignore_preflight, preflight)
        finally:
            lock.release()
    finally:
        os.umask(umask)


async def _own(
    config: Config,
    request: RunRequest,
    echo: Echo,
    ignore_preflight: bool,
    preflight: dict[str, Any] | None,
) -> int:
    """The run, with the state_dir locked."""
    journal = Journal(config.state_path)
    try:
        if preflight is None:
            preflight = await _preflight(config, echo, ignore_preflight, journal)
            if preflight is None:
                return 1
        code = await _run(config, request, echo, preflight, journal)
        return code if _all_journaled(journal, echo) else EXIT_ERROR
    finally:
        journal.close()


def _all_journaled(journal: Journal, echo: Echo) -> bool:
    """The engine ended while the disk was still full: say what the journal lacks."""
    if journal.flush():
        return True
    echo(
        f"backfill: {journal.path}: cannot write ({journal.full}): {journal.waiting} journal "
        "writes of this run are lost; the next run re-checks their cells in the warehouse"
    )
    return False


async def _preflight(
    config: Config, echo: Echo, ignore_preflight: bool, journal: Journal
) -> dict[str, Any] | None:
    """The gate record, or None when a failed check refuses the run."""
    results = await run_checks(all_checks(config))
    failed = [r for r in results if r.status == "fail"]
    for r in results:
        if r.status in ("fail", "warn"):
            echo(_stamp(f"preflight {r.status.upper()}: {r.name}: {r.detail}"))
    gate = gate_record(results, overridden=ignore_preflight, by=Who.me("headless").describe())
    if failed and not ignore_preflight:
        journal.event("run_refused", **gate)
        echo(
            f"Preflight failed ({', '.join(r.name for r in failed)}): not starting. Fix it, or "
            "start anyway with --ignore-preflight (the override is journaled)."
        )
        return None
    return gate


async def _run(
    config: Config, request: RunRequest, echo: Echo, gate: dict[str, Any], journal: Journal
) -> int:
    """The run with its notifications: they belong to the engine process, so they go out with
    no dashboard open. The notifier outlives the engine's task group by a bounded flush, so the
    run's end is told even when the run ended with an error."""
    engine: RunningEngine | None = None

    def run_id() -> int | None:
        return engine.snapshot(HEADER_ONLY).run_id if engine is not None else None

    def journal_event(kind: str, **detail: Any) -> None:
        journal.event(kind, run_id=run_id(), **detail)

    notifier = Notifier(config.notify, journal_event=journal_event)

    def made(built: RunningEngine) -> None:
        nonlocal engine
        engine = built

    async with anyio.create_task_group() as tg:
        await tg.start(notifier.run)
        try:
            code = await _engine_run(config, request, echo, gate, journal, notifier, made)
        finally:
            if notifier:
                await notifier.close(NOTIFY_FLUSH_S)
            tg.cancel_scope.cancel()
    return code


async def _engine_run(
    config: Config,
    request: RunRequest,
    echo: Echo,
    gate: dict[str, Any],
    journal: Journal,
    notifier: Notifier,
    made: Callable[[RunningEngine], None],
) -> int:
    warehouse = open_warehouse(config)

    milestones = Milestones()

    def on_event(event: EngineEvent) -> None:
        echo(_stamp(printable(event.message)))  # it may quote a job's output
        if not notifier:
            return
        snap = engine.snapshot(HEADER_ONLY)
        for notice in from_engine(event, snap.run_id):
            notifier.notify(notice)
        if event.kind == "item_done":
            news = milestones(snap.run_id, snap.count(ItemState.DONE), snap.total)
            if news is not None:
                notifier.notify(news)
        elif event.kind in ("item_failed", "item_retry"):
            notifier.failed(snap.run_id)  # each channel's alarm, by its failure_alarm

    def progress() -> Notice:
        snap = engine.snapshot(HEADER_ONLY)
        done, forecast = snap.count(ItemState.DONE), snap.forecast
        return digest(snap.run_id, done, snap.total, forecast.rate_per_hour, forecast.eta_seconds)

    async def notify_ticks() -> None:
        """Time-driven news: an alarm whose failures aged out, a digest that is due (or the
        one that ends quiet hours)."""
        while True:
            await anyio.sleep(ALARM_TICK_S)
            notifier.tick(engine.snapshot(HEADER_ONLY).run_id)
            notifier.digest(progress)

    engine = local_engine(
        config, warehouse, request, journal=journal, on_event=on_event, preflight=gate
    )
    made(engine)
    try:
        async with anyio.create_task_group() as tg:
            server = EngineServer(engine, config.state_path, group=config.group)
            await tg.start(server.serve)
            tg.start_soon(_summaries, engine, echo)
            tg.start_soon(_signals, engine, echo)
            if notifier:
                tg.start_soon(notify_ticks)
            result = await engine.run()
            if server.info.viewers:
                # Attached dashboards poll 4 times a second: let them see how it ended.
                await anyio.sleep(FINAL_WORD_S)
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        problem = _user_error(group)
        if problem is None:
            raise
        echo(f"backfill: {problem}")
        notifier.notify(
            run_finished(engine.snapshot(HEADER_ONLY).run_id, False, [], why=str(problem))
        )
        return EXIT_ERROR
    finally:
        warehouse.close()
    notifier.notify(run_finished(result.run_id, result.complete, result.incomplete))
    echo(_stamp(summary_line(engine.snapshot(HEADER_ONLY))))
    if result.complete:
        echo(f"Run #{result.run_id} complete: every targeted cell is complete or skipped.")
        return 0
    shown = ", ".join(f"{name} {day}" for name, day in result.incomplete[:8])
    more = f" (+{len(result.incomplete) - 8} more)" if len(result.incomplete) > 8 else ""
    echo(
        f"Run #{result.run_id} ended with {len(result.incomplete)} cells not complete: "
        f"{shown}{more}. See `backfill status`, `backfill logs PROCESSOR DATE`; "
        "run again to resume."
    )
    if result.excluded:
        named = ", ".join(f"{name} {day}" for name, day in result.excluded[:8])
        rest = len(result.excluded) - 8
        echo(
            f"Excluded by an operator: {len(result.excluded)} of them: {named}"
            + (f" (+{rest} more)" if rest > 0 else "")
        )
    return 1


def _user_error(group: BaseExceptionGroup[BaseException]) -> UserError | None:
    """The error an operator can act on, if that is what ended the run."""
    matched, rest = group.split(UserError)
    if matched is None or rest is not None:
        return None
    exc: BaseException = matched
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc if isinstance(exc, UserError) else None


async def _summaries(engine: RunningEngine, echo: Echo) -> None:
    while True:
        await anyio.sleep(SUMMARY_EVERY)
        echo(_stamp(summary_line(engine.snapshot(HEADER_ONLY))))


async def _signals(engine: RunningEngine, echo: Echo) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for _ in signals:
            count += 1
            running = engine.snapshot(HEADER_ONLY).count(ItemState.RUNNING)
            if count == 1:
                echo(
                    _stamp(
                        f"Stopping: no new work; waiting for {running} running attempts "
                        "(Ctrl-C again cancels them)."
                    )
                )
                await engine.submit(Stop(), by=Who.me("headless"))
            else:
                echo(_stamp(f"Cancelling {running} running attempts."))
                await engine.submit(CancelAll(), by=Who.me("headless"))
