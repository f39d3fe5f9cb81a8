"""Does the execution queue cost what the screen costs, not what the queue holds?

Hosts a QueueTable in a Pilot-driven app at 200 x 60 and fills it with a backfill-shaped queue
(finished work, 8 running items, a few failed, the rest pending) of 300, 3,000 and 30,000 items.
One tick is what the dashboard does twice a second during a run: `apply` a delta of 8 changed
items (4 running items end, 4 pending ones start: every tick moves rows on screen) plus the
repaint it causes, measured as the time of `apply()` plus `render_line` for every line of the
viewport, as Textual does for a full repaint. Median over the ticks, per queue size, and the
ratio 30,000 : 300. For context: a tick through `update_items` instead (the whole queue as fresh
view objects, diffed by value: one comparison per item; every 10th tick), a cold frame (every
strip cache empty) and the first `apply`, of every item (as a run's first snapshot).

The widget's clock is frozen so running rows do not change text between ticks.

Run: `uv run python benchmarks/queue_view.py` (a few seconds). Target: 30,000 : 300 <= 3x.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from textual.app import App, ComposeResult
from textual.pilot import Pilot

from core.engine.api import ItemState, ItemView
from tui.widgets.queue_table import QueueTable

SIZES = (300, 3_000, 30_000)
SIZE = (200, 60)
TICKS = 200
RUNNING = 8
CHANGED = 8
TARGET_RATIO = 3.0
NOW = 1_700_000_000.0
START = date(2019, 10, 1)
PROCESSORS = ("player_stats", "box", "team_daily", "odds_snapshot", "player_daily_cache")


def item(item_id: int, state: ItemState, attempt: int = 0) -> ItemView:
    ended = state not in (ItemState.PENDING, ItemState.RUNNING)
    return ItemView(
        id=item_id,
        processor=PROCESSORS[item_id % len(PROCESSORS)],
        phase=f"phase{item_id % 4}",
        dates=(START + timedelta(days=item_id // len(PROCESSORS)),),
        state=state,
        attempt=attempt,
        started_at=NOW - 30 if attempt else None,
        duration=12.0 if ended else None,
        exit_code=(1 if state is ItemState.FAILED else 0) if ended else None,
        reason="exit 1; no retries left" if state is ItemState.FAILED else None,
        log_path=Path(f"/logs/{item_id}.log") if attempt else None,
    )


class Queue:
    """A backfill in progress: items end in id order, the next pending ones start."""

    def __init__(self, n: int) -> None:
        front = n // 3
        self.items: dict[int, ItemView] = {}
        for i in range(n):
            if i < front:
                state = ItemState.FAILED if i % 97 == 0 else ItemState.DONE
                self.items[i] = item(i, state, attempt=1)
            elif i < front + RUNNING:
                self.items[i] = item(i, ItemState.RUNNING, attempt=1)
            else:
                self.items[i] = item(i, ItemState.PENDING)
        self.running = list(range(front, front + RUNNING))
        self.next_pending = front + RUNNING

    def tick(self) -> list[ItemView]:
        """8 changed items: the 4 oldest running end, the 4 next pending start."""
        changed = []
        for _ in range(CHANGED // 2):
            ended = self.running.pop(0)
            state = ItemState.FAILED if ended % 53 == 0 else ItemState.DONE
            changed.append(item(ended, state, attempt=1))
            if self.next_pending >= len(self.items):  # the run is over: start it again
                self.next_pending = 0
            started = self.next_pending
            self.next_pending += 1
            changed.append(item(started, ItemState.RUNNING, attempt=1))
            self.running.append(started)
        self.items.update((i.id, i) for i in changed)
        return changed


class BenchApp(App[None]):
    def compose(self) -> ComposeResult:
        yield QueueTable()


def frame(table: QueueTable) -> None:
    for y in range(table.size.height):
        table.render_line(y)


def timed_ms(*actions: Callable[[], None]) -> float:
    """How long the actions take, one after the other, in ms."""
    started = time.perf_counter()
    for action in actions:
        action()
    return (time.perf_counter() - started) * 1000


async def measure(
    pilot: Pilot[None], table: QueueTable, n: int
) -> tuple[float, float, float, float]:
    """The first `apply` (every item, as a run's first snapshot), median tick via `apply`,
    median tick via `update_items`, median cold frame; in ms."""
    queue = Queue(n)
    table.update_items([])
    await pilot.pause()
    fill = timed_ms(lambda: table.apply(queue.items.values()), lambda: frame(table))
    table.move_cursor(row=0)
    await pilot.pause()
    frame(table)
    ticks, whole, cold = [], [], []
    for round_ in range(TICKS):
        changed = queue.tick()
        if round_ % 10:
            ticks.append(timed_ms(functools.partial(table.apply, changed), lambda: frame(table)))
        else:
            # A snapshot of the whole queue holds new view objects, equal but not identical.
            items = [dataclasses.replace(i) for i in queue.items.values()]
            whole.append(
                timed_ms(functools.partial(table.update_items, items), lambda: frame(table))
            )
        if round_ % 20 == 0:
            await pilot.pause()  # let Textual draw now and then, as it would between ticks
            table._rows.clear()
            cold.append(timed_ms(lambda: frame(table)))
    await pilot.pause()
    return fill, statistics.median(ticks), statistics.median(whole), statistics.median(cold)


async def run() -> bool:
    app = BenchApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.clock = lambda: NOW
        table.focus()
        await pilot.pause()
        print(
            f"QueueTable {table.size.width} x {table.size.height}, "
            f"{table.size.height - 1} rows on screen; a tick = {CHANGED} changed items, "
            f"median of {TICKS - TICKS // 10} (update_items: {TICKS // 10})"
        )
        results = {}
        for n in SIZES:
            fill, tick, whole, cold = await measure(pilot, table, n)
            results[n] = tick
            print(
                f"  {n:>6,} items: tick (apply + frame) {tick:5.2f} ms   "
                f"update_items + frame {whole:6.2f} ms   cold frame {cold:5.2f} ms   "
                f"first apply {fill:6.1f} ms"
            )
    ratio = results[SIZES[-1]] / results[SIZES[0]]
    print(
        f"\n  {SIZES[-1]:,} : {SIZES[0]:,} tick ratio {ratio:.2f}x   target <= {TARGET_RATIO:.0f}x"
    )
    return ratio <= TARGET_RATIO


def main() -> None:
    ok = asyncio.run(run())
    verdict = "PASS" if ok else "MISS"
    print(f"{verdict}: a tick at {SIZES[-1]:,} items costs at most {TARGET_RATIO:.0f}x one at 300")


if __name__ == "__main__":
    main()
