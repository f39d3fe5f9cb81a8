"""`backfill run --headless`: the engine with plain-text progress on stdout.

One line per finished item, a summary line every SUMMARY_EVERY seconds, Ctrl-C once to stop
dispatching and let running attempts finish, twice to cancel them.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import anyio

from core.config import Config
from core.engine import Engine, EngineEvent, EngineSnapshot, ItemState, RunRequest
from core.journal import EngineLock, Journal
from core.preflight import all_checks, gate_record, run_checks
from core.progress import format_duration
from core.warehouse import open_warehouse

SUMMARY_EVERY = 15.0

Echo = Callable[[str], None]


def summary_line(snap: EngineSnapshot) -> str:
    total = len(snap.items)
    rate = f"{snap.rate_per_hour:.0f} items/h" if snap.rate_per_hour else "rate --"
    phases = " · ".join(
        f"{name} {running}/{limit}"
        for name, (running, limit) in snap.concurrency.items()
        if running
    )
    return (
        f"[{snap.count(ItemState.DONE)}/{total} done · {snap.count(ItemState.RUNNING)} running · "
        f"{snap.count(ItemState.PENDING)} queued · {snap.count(ItemState.FAILED)} failed · "
        f"{snap.count(ItemState.BLOCKED)} blocked · {rate} · ETA "
        f"{format_duration(snap.eta_seconds)}]" + (f" {phases}" if phases else "")
    )


def _stamp(text: str) -> str:
    return f"{time.strftime('%H:%M:%S')} {text}"


async def run_headless(
    config: Config, request: RunRequest, echo: Echo, ignore_preflight: bool = False
) -> int:
    lock = EngineLock(config.state_path)
    lock.acquire()
    journal = Journal(config.state_path)
    results = await run_checks(all_checks(config))
    failed = [r for r in results if r.status == "fail"]
    for r in results:
        if r.status in ("fail", "warn"):
            echo(_stamp(f"preflight {r.status.upper()}: {r.name}: {r.detail}"))
    gate = gate_record(results, overridden=ignore_preflight)
    if failed and not ignore_preflight:
        journal.event("run_refused", **gate)
        journal.close()
        lock.release()
        echo(
            f"Preflight failed ({', '.join(r.name for r in failed)}): not starting. Fix it, or "
            "start anyway with --ignore-preflight (the override is journaled)."
        )
        return 1
    warehouse = open_warehouse(config)

    def on_event(event: EngineEvent) -> None:
        echo(_stamp(event.message))

    engine = Engine(config, warehouse, request, journal=journal, on_event=on_event, preflight=gate)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_summaries, engine, echo)
            tg.start_soon(_signals, engine, echo)
            result = await engine.run()
            tg.cancel_scope.cancel()
    finally:
        warehouse.close()
        journal.close()
        lock.release()
    echo(_stamp(summary_line(engine.snapshot())))
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
    return 1


async def _summaries(engine: Engine, echo: Echo) -> None:
    while True:
        await anyio.sleep(SUMMARY_EVERY)
        echo(_stamp(summary_line(engine.snapshot())))


async def _signals(engine: Engine, echo: Echo) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for _ in signals:
            count += 1
            running = engine.snapshot().count(ItemState.RUNNING)
            if count == 1:
                echo(
                    _stamp(
                        f"Stopping: no new work; waiting for {running} running attempts "
                        "(Ctrl-C again cancels them)."
                    )
                )
                engine.stop()
            else:
                echo(_stamp(f"Cancelling {running} running attempts."))
                await engine.cancel_all()
