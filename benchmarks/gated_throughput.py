"""Does a phase gate cost dispatch throughput? The same trivial items, gated and ungated.

Builds a SQLite warehouse in a temp folder (tmpfs where there is one): a source table with a row
on every day, phase A (2 runnable processors, its tables already complete on every day but 3
each, so its gate `min_coverage: 0.95` holds from the start and A has 6 trivial items to run),
and phase B (16 processors depending on A, `chunk_days: 1`, empty tables): ITEMS / 16 days, one
item per processor and day. Every job is trivial: the `sqlite3` CLI inserts the row for its date
(as in dispatch_overhead.py). Then, on a fresh warehouse each, headless (`local_engine(...,
linger=False)`, `await engine.run()`) at max_parallel 8:
  - ungated: the pipeline without the `gate:` key;
  - gated:   the same pipeline with `gate: {min_coverage: 0.95}` on phase A.
Throughput is phase B's items per second, from the run's start (`run_started`: planning done)
to its last B item done; the wall time from Engine construction to return is printed too.

Run: `uv run python benchmarks/gated_throughput.py [--items N]`. The target is stated for
32,640 items (`--items 32640`), but that takes over 3 minutes per side on 2 busy cores
(~180 items/s), so the default is 8,000 items (about 2 x 45 s). Target: gated >= 80 % of
ungated items/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.synthetic import config_text, create_source, trivial_job
from core.config import Config, load_config
from core.engine.api import EngineEvent, RunRequest, local_engine
from core.state import Journal
from core.warehouse import open_warehouse, sqlite_layout

ITEMS = 8_000  # default: the full 32,640 takes > 3 min per side here
FULL = 32_640
PARALLEL = 8
A_PROCESSORS = 2
A_MISSING = 3  # days per phase-A processor not yet complete: its items
B_PROCESSORS = 16
FIRST = date(2015, 1, 1)
TARGET_SHARE = 0.80


def build(folder: Path, days: list[date], *, gated: bool) -> Config:
    wh = folder / "wh"
    conn = sqlite_layout.connect(wh, ["src", "a", "b"], readonly=False)
    try:
        create_source(conn, days)
        for n in range(A_PROCESSORS):
            conn.execute(f"CREATE TABLE a.prep{n} (d TEXT)")
            # complete but for A_MISSING days spread over the range
            missing = {days[(k + 1) * len(days) // (A_MISSING + 1)] for k in range(A_MISSING)}
            rows = [(d.isoformat(),) for d in days if d not in missing]
            conn.executemany(f"INSERT INTO a.prep{n} VALUES (?)", rows)
        for n in range(B_PROCESSORS):
            conn.execute(f"CREATE TABLE b.work{n} (d TEXT)")
        conn.commit()
    finally:
        conn.close()

    def processor(name: str, table: str, db: str, depends: list[str]) -> str:
        argv = trivial_job(wh / f"{db}.sqlite", table.split(".", 1)[1])
        return f"""
      - name: {name}
        table: {table}
        date_column: d
        depends_on: {json.dumps(depends)}
        chunk_days: 1
        retries: 0
        command: {json.dumps(argv)}"""

    a_names = [f"prep{n}" for n in range(A_PROCESSORS)]
    a_procs = "".join(processor(n, f"a.{n}", "a", ["base"]) for n in a_names)
    b_procs = "".join(
        processor(f"work{n}", f"b.work{n}", "b", a_names) for n in range(B_PROCESSORS)
    )
    gate = "\n    gate: {min_coverage: 0.95}" if gated else ""
    phases = f"""  - name: a
    max_parallel: {PARALLEL}{gate}
    processors:{a_procs}
  - name: b
    max_parallel: {PARALLEL}
    processors:{b_procs}
"""
    text = config_text("gated-throughput-bench", days, phases)
    (folder / "backfill.yaml").write_text(text)
    return load_config(folder / "backfill.yaml")


@dataclass(frozen=True)
class Measured:
    wall: float  # Engine construction to run() returning
    planning: float  # construction to run_started
    b_seconds: float  # run_started to the last phase-B item done
    b_items: int

    @property
    def rate(self) -> float:
        return self.b_items / self.b_seconds


async def run_engine(config: Config, days: list[date]) -> tuple[Measured, bool]:
    journal = Journal(config.state_path)
    warehouse = open_warehouse(config)
    marks: dict[str, float] = {}
    b_done = 0

    def on_event(event: EngineEvent) -> None:
        nonlocal b_done
        if event.kind in ("run_started", "run_resumed"):
            marks["started"] = time.perf_counter()
        elif event.kind == "item_done" and event.item is not None and event.item.phase == "b":
            b_done += 1
            marks["b_last"] = time.perf_counter()

    request = RunRequest(days[0], days[-1], max_parallel=PARALLEL)
    started = time.perf_counter()
    engine = local_engine(config, warehouse, request, journal=journal, on_event=on_event)
    result = await engine.run()
    wall = time.perf_counter() - started
    journal.close()
    warehouse.close()
    planned = marks.get("started", started)
    measured = Measured(wall, planned - started, marks.get("b_last", planned) - planned, b_done)
    return measured, result.complete


def rows_written(folder: Path) -> int:
    conn = sqlite3.connect(folder / "wh" / "b.sqlite")
    try:
        return sum(
            conn.execute(f"SELECT COUNT(DISTINCT d) FROM work{n}").fetchone()[0]
            for n in range(B_PROCESSORS)
        )
    finally:
        conn.close()


def one(root: Path, days: list[date], *, gated: bool) -> Measured:
    folder = root / ("gated" if gated else "ungated")
    folder.mkdir(parents=True)
    config = build(folder, days, gated=gated)
    measured, complete = anyio.run(run_engine, config, days, backend="asyncio")
    expected = len(days) * B_PROCESSORS
    written = rows_written(folder)
    if not (complete and measured.b_items == expected and written == expected):
        raise SystemExit(
            f"MISS: the {folder.name} run was wrong: complete={complete} "
            f"B items done={measured.b_items} rows={written}, expected {expected}"
        )
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--items", type=int, default=ITEMS, help=f"phase-B items ({ITEMS:,}; the target: 32640)"
    )
    args = parser.parse_args()
    n_days = max(1, args.items // B_PROCESSORS)
    days = [FIRST + timedelta(days=i) for i in range(n_days)]
    items = n_days * B_PROCESSORS
    print(
        f"phase B: {items:,} items ({B_PROCESSORS} processors x {n_days:,} days) after phase A "
        f"({A_PROCESSORS} processors, {A_PROCESSORS * A_MISSING} items); max_parallel "
        f"{PARALLEL}, {os.cpu_count()} CPUs"
    )
    memory = Path("/dev/shm")
    where = str(memory) if memory.is_dir() and os.access(memory, os.W_OK) else None
    print(f"files in {where or tempfile.gettempdir()}")
    if items < FULL:
        print(f"(the target is stated for {FULL:,} items: pass --items {FULL} for the full run)")
    results: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        for gated in (False, True):
            label = "gated" if gated else "ungated"
            results[label] = one(Path(tmp), days, gated=gated)
            m = results[label]
            print(f"  {label}: {m.wall:.1f} s, {m.rate:.0f} B items/s")

    print(f"\n{'':10s} {'wall':>9s} {'planning':>10s} {'B dispatch':>11s} {'B items/s':>10s}")
    for label, m in results.items():
        print(
            f"{label:10s} {m.wall:7.1f} s {m.planning:8.2f} s {m.b_seconds:9.1f} s {m.rate:10.0f}"
        )
    share = results["gated"].rate / results["ungated"].rate
    print(f"\ngated / ungated items/s: {share:6.1%}   target >= {TARGET_SHARE:.0%}")
    verdict = "PASS" if share >= TARGET_SHARE else "MISS"
    print(
        f"\n{verdict}: gated {results['gated'].rate:.0f} items/s vs ungated "
        f"{results['ungated'].rate:.0f} items/s = {share:.1%} (target >= {TARGET_SHARE:.0%}; "
        f"{items:,} items)"
    )


if __name__ == "__main__":
    main()
