"""How fast is a coverage refresh? One grouped scan per table against one COUNT per table per date.

Generates a warehouse of 5 seasons x 15 tables x ~400 rows per game date (about 6.5M rows), then
in the same run times:
  - `backfill status` (measure + counts) through the real code path;
  - the naive approach the seed's tools took: one COUNT(*) per table per date;
and prints both and their ratio, for tables without an index on the date column (every per-date
query scans the table, as on a warehouse table without partition pruning: the case the target is
about) and, for context, with one (SQLite then answers a per-date COUNT from the index at almost no
per-query cost, so both approaches do the same work; on BigQuery each of those queries is a job
of its own, see the BigQuery benchmark). Also times a full status of the bundled demo.

Run: `uv run python benchmarks/status_scan.py` (about a minute).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from core.config import load_config
from core.coverage import measure
from core.demo.seed import seed_demo_warehouse
from core.status import status_report
from core.warehouse import open_warehouse, sqlite_layout
from core.warehouse.sqlite import SqliteWarehouse

SEASONS = 5
TABLES = 15
ROWS_PER_DATE = 400
TARGET_RATIO = 50
TARGET_DEMO_SECONDS = 1.0


def game_dates() -> list[date]:
    rng = random.Random(7)
    dates: list[date] = []
    for season in range(SEASONS):
        day = date(2019 + season, 10, 22)
        while len(dates) < (season + 1) * 215:
            if rng.random() < 0.85:
                dates.append(day)
            day += timedelta(days=1)
    return dates


def build(folder: Path, dates: list[date], *, indexed: bool) -> None:
    rng = random.Random(11)
    conn = sqlite_layout.connect(folder, ["bench"], readonly=False)
    conn.execute("CREATE TABLE bench.schedule (game_date TEXT, game_status INT)")
    conn.executemany(
        "INSERT INTO bench.schedule VALUES (?, 3)",
        [(d.isoformat(),) for d in dates for _ in range(rng.randint(5, 15))],
    )
    for t in range(TABLES):
        conn.execute(f"CREATE TABLE bench.t{t} (game_date TEXT, entity INT, value REAL)")
        if indexed:
            conn.execute(f"CREATE INDEX bench.t{t}_date ON t{t} (game_date)")
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO bench.t{t} VALUES (?, ?, ?)",
            (
                (d.isoformat(), e, 1.0)
                for d in dates
                for e in range(rng.randint(ROWS_PER_DATE - 100, ROWS_PER_DATE + 100))
            ),
        )
        conn.execute("COMMIT")
    conn.close()


def config_text(dates: list[date], warehouse: str = "{kind: sqlite, path: wh}") -> str:
    procs = "\n".join(
        f"      - {{name: t{t}, table: bench.t{t}, date_column: game_date}}" for t in range(TABLES)
    )
    return f"""
name: bench
warehouse: {warehouse}
calendar:
  start: {dates[0]}
  end: {dates[-1]}
  expected_dates: {{table: bench.schedule, date_column: game_date, where: "game_status = 3"}}
phases:
  - name: all
    processors:
{procs}
"""


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def naive(folder: Path, dates: list[date]) -> None:
    conn = sqlite_layout.connect(folder, ["bench"], readonly=True)
    for t in range(TABLES):
        for d in dates:
            conn.execute(
                f"SELECT COUNT(*) FROM bench.t{t} WHERE game_date = ?", (d.isoformat(),)
            ).fetchone()
    conn.close()


def compare(root: Path, dates: list[date], *, indexed: bool) -> float:
    folder = root / ("indexed" if indexed else "plain") / "wh"
    started = time.perf_counter()
    build(folder, dates, indexed=indexed)
    built = time.perf_counter() - started
    (folder.parent / "backfill.yaml").write_text(config_text(dates))
    config = load_config(folder.parent / "backfill.yaml")
    warehouse = open_warehouse(config)

    def grouped() -> None:
        status_report(measure(config, warehouse, dates[0], dates[-1]))

    grouped_s = best_of(3, grouped)
    # The naive scan without an index is ~1000x slower; time a slice of dates and scale it.
    sample = dates if indexed else dates[:: max(1, len(dates) // 40)]
    naive_s = best_of(1 if not indexed else 2, lambda: naive(folder, sample))
    naive_s *= len(dates) / len(sample)
    ratio = naive_s / grouped_s
    label = "indexed date column" if indexed else "no index"
    print(f"\n{label} (built in {built:.1f} s)")
    print(f"  grouped status (1 query per table): {grouped_s * 1000:8.1f} ms")
    estimate = "" if sample is dates else f"  (timed {len(sample)} dates, scaled)"
    print(f"  naive (1 query per table per date): {naive_s * 1000:8.1f} ms{estimate}")
    target = "" if indexed else f"   target >= {TARGET_RATIO}x"
    print(f"  ratio naive / grouped:              {ratio:8.1f}x{target}")
    return ratio


def demo_status(root: Path) -> float:
    config = load_config(Path(__file__).parents[1] / "backfill.yaml")
    folder = root / "demo"
    seed_demo_warehouse(folder)
    warehouse = SqliteWarehouse(folder)
    end = config.calendar.end_date(date.today())
    seconds = statistics.median(
        best_of(1, lambda: status_report(measure(config, warehouse, config.calendar.start, end)))
        for _ in range(5)
    )
    print(f"\nfull status of the bundled demo: {seconds * 1000:.1f} ms   target < 1000 ms")
    return seconds


def main() -> None:
    dates = game_dates()
    print(
        f"{SEASONS} seasons, {len(dates)} game dates, {TABLES} tables, "
        f"~{ROWS_PER_DATE} rows per table per date"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ratio = compare(root, dates, indexed=False)
        compare(root, dates, indexed=True)
        demo = demo_status(root)
    ok = ratio >= TARGET_RATIO and demo < TARGET_DEMO_SECONDS
    verdict = "PASS" if ok else "MISS"
    print(f"\n{verdict}: ratio {ratio:.0f}x (no index), demo status {demo * 1000:.0f} ms")


if __name__ == "__main__":
    main()
