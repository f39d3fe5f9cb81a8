"""How long does the coverage heatmap take to draw one full frame?

Builds a grid of 2,000 dates x 20 processors in 4 phases (plus their 4 summary rows), hosts the
widget in a Pilot-driven app at 200 x 60, and times `render_line` for every line of the
viewport, as Textual does for a full repaint:
  - cold: straight after `set_grid` (every cache empty: columns, bucket aggregation, strips);
  - warm: the same frame again (what a scroll back, a cursor move or a refresh mostly costs);
at day zoom and at week zoom (where each visible column aggregates 7 days). The data is shaped
like a real backfill (long complete runs, a missing tail, scattered failures, a running front);
a worst case where no two neighbouring cells match (no runs to join) is printed for context.

Run: `uv run python benchmarks/heatmap_frame.py` (a few seconds). Target: cold frame < 16 ms.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import date, timedelta

from textual.app import App, ComposeResult

from core.coverage import CellState, worst
from core.grid import CODE, CODES, Grid, GridRow
from tui.widgets.coverage_heatmap import CoverageHeatmap

DAYS = 2000
PHASES = 4
PROCESSORS_PER_PHASE = 5
SIZE = (200, 60)
RUNS = 30
TARGET_MS = 16.0


def realistic_row(rng: random.Random) -> list[CellState]:
    """Complete up to a front, running/queued at the front, missing after; off-days,
    a few failures and partials in the done part."""
    front = rng.randint(DAYS // 3, DAYS - 100)
    row = []
    for i in range(DAYS):
        if i % 7 == 3 or 250 <= i % 365 <= 365 - 60:  # weekly off-day, off-season
            state = CellState.NOT_EXPECTED
        elif i < front:
            roll = rng.random()
            state = (
                CellState.FAILED
                if roll < 0.01
                else CellState.PARTIAL
                if roll < 0.03
                else CellState.COMPLETE
            )
        elif i < front + 5:
            state = CellState.RUNNING
        elif i < front + 40:
            state = CellState.QUEUED
        else:
            state = CellState.MISSING
        row.append(state)
    return row


def worst_case_row(offset: int) -> list[CellState]:
    return [CODES[(i + offset) % len(CODES)] for i in range(DAYS)]


def build(realistic: bool) -> Grid:
    rng = random.Random(3)
    start = date(2019, 10, 1)
    rows: list[GridRow] = []
    codes: list[bytearray] = []
    for p in range(PHASES):
        members = [
            realistic_row(rng) if realistic else worst_case_row(p * 5 + i)
            for i in range(PROCESSORS_PER_PHASE)
        ]
        rows.append(GridRow(f"phase:p{p}", f"Phase {p + 1}", f"p{p}", True))
        codes.append(bytearray(CODE[worst(list(states))] for states in zip(*members, strict=True)))
        for i, states in enumerate(members):
            rows.append(GridRow(f"p{p}_{i}", f"processor_{p}_{i}", f"p{p}", False))
            codes.append(bytearray(CODE[s] for s in states))
    days = tuple(start + timedelta(days=i) for i in range(DAYS))
    return Grid(days, tuple(rows), codes)


class BenchApp(App[None]):
    def compose(self) -> ComposeResult:
        yield CoverageHeatmap()


def frame_ms(heatmap: CoverageHeatmap) -> float:
    started = time.perf_counter()
    for y in range(heatmap.size.height):
        heatmap.render_line(y)
    return (time.perf_counter() - started) * 1000


def measure(heatmap: CoverageHeatmap, grid: Grid, zoom: str) -> tuple[float, float]:
    """Median cold and warm frame, in ms."""
    heatmap.zoom = zoom  # type: ignore[assignment]
    cold, warm = [], []
    for _ in range(RUNS):
        heatmap.set_grid(grid, [("season", grid.days[0], grid.days[300])])
        assert heatmap.zoom == zoom
        cold.append(frame_ms(heatmap))
        warm.append(frame_ms(heatmap))
    return statistics.median(cold), statistics.median(warm)


async def run() -> bool:
    app = BenchApp()
    ok = True
    async with app.run_test(size=SIZE) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        await pilot.pause()
        rows = PHASES * (PROCESSORS_PER_PHASE + 1)
        print(
            f"{DAYS} dates x {PHASES * PROCESSORS_PER_PHASE} processors (+{PHASES} phase rows), "
            f"viewport {heatmap.size.width} x {heatmap.size.height} "
            f"({rows} rows shown), median of {RUNS}"
        )
        for label, realistic in (("backfill-shaped", True), ("worst case, no runs", False)):
            grid = build(realistic)
            for zoom in ("day", "week"):
                cold, warm = measure(heatmap, grid, zoom)
                target = f"   target < {TARGET_MS:.0f} ms" if realistic else ""
                print(
                    f"  {label:20} {zoom:>4} zoom: cold {cold:6.2f} ms   warm {warm:6.2f} ms"
                    f"{target}"
                )
                if realistic:
                    ok = ok and cold < TARGET_MS
    return ok


def main() -> None:
    ok = asyncio.run(run())
    verdict = "PASS" if ok else "MISS"
    print(f"\n{verdict}: cold full frame under {TARGET_MS:.0f} ms at day and week zoom")


if __name__ == "__main__":
    main()
