"""Query jobs and time per coverage refresh on BigQuery: ONE UNION ALL job against a job per table.

Starts the BigQuery emulator (bqemulator, a dev dependency), streams in 5 seasons x 15 tables
(plus the schedule) at ROWS_PER_DATE rows per game date, then in the same run:
  - refreshes coverage through the real code path (`measure` on the BigQuery warehouse);
  - refreshes it the per-table way the seed's monitor did: one grouped query job per table;
counts the query jobs each made through the emulator's job list, times both (best of RUNS), and
prints both and their ratio. Job count is what BigQuery bills and throttles by (concurrent query
quotas, per-job latency of 1-2 s on the real service); the emulator's per-job latency is a few
milliseconds, so the time ratio here understates the gain on real BigQuery.

Run: `uv run python benchmarks/bigquery_refresh.py` (about a minute).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from google.cloud import bigquery

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.status_scan import SEASONS, TABLES, config_text, game_dates
from core.config import load_config
from core.coverage import measure
from core.warehouse.bigquery import BigQueryWarehouse, quote
from tests.bigquery.emulator import bqemulator

PROJECT = "bench-refresh"
ROWS_PER_DATE = 40  # fewer than the SQLite benchmark's 400: rows are streamed in over HTTP
RUNS = 3
TARGET_JOBS = 1


def seed(client: bigquery.Client, dates: list[date]) -> int:
    rng = random.Random(11)
    client.create_dataset(f"{PROJECT}.bench", exists_ok=True)
    schema = [
        bigquery.SchemaField("game_date", "DATE"),
        bigquery.SchemaField("entity", "INT64"),
        bigquery.SchemaField("game_status", "INT64"),
    ]
    rows = 0
    for name in ["schedule", *(f"t{t}" for t in range(TABLES))]:
        table = client.create_table(bigquery.Table(f"{PROJECT}.bench.{name}", schema=schema))
        per_date = (5, 15) if name == "schedule" else (ROWS_PER_DATE - 10, ROWS_PER_DATE + 10)
        batch = [
            {"game_date": d.isoformat(), "entity": e, "game_status": 3}
            for d in dates
            for e in range(rng.randint(*per_date))
        ]
        for first in range(0, len(batch), 10_000):
            errors = client.insert_rows_json(table, batch[first : first + 10_000])
            assert not errors, errors[:3]
        rows += len(batch)
    return rows


def config_file(folder: Path, url: str, dates: list[date]) -> Path:
    path = folder / "backfill.yaml"
    warehouse = f'{{kind: bigquery, project: {PROJECT}, api_endpoint: "{url}"}}'
    path.write_text(config_text(dates, warehouse))
    return path


def per_table(warehouse: BigQueryWarehouse, start: date, end: date) -> None:
    """The seed monitor's shape: one grouped query job per table, the calendar included."""
    params = [
        bigquery.ScalarQueryParameter("start", "DATE", start),
        bigquery.ScalarQueryParameter("end", "DATE", end),
    ]
    for name in ["schedule", *(f"t{t}" for t in range(TABLES))]:
        where = " AND game_status = 3" if name == "schedule" else ""
        warehouse.query(
            f"SELECT game_date, COUNT(*) AS n FROM {quote(PROJECT, f'bench.{name}')} "
            f"WHERE game_date BETWEEN @start AND @end{where} GROUP BY game_date",
            params,
            doing=f"counting {name}",
        )


def measured(client: bigquery.Client, fn: Callable[[], object]) -> tuple[float, int]:
    """Best time over RUNS, and the query jobs one run makes (counted by the emulator)."""
    best = float("inf")
    jobs = 0
    for _ in range(RUNS):
        before = sum(1 for _ in client.list_jobs(max_results=1_000_000))
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
        jobs = sum(1 for _ in client.list_jobs(max_results=1_000_000)) - before
    return best, jobs


def main() -> None:
    dates = game_dates()
    with bqemulator(PROJECT) as url, tempfile.TemporaryDirectory() as tmp:
        config = load_config(config_file(Path(tmp), url, dates))
        warehouse = BigQueryWarehouse(PROJECT, api_endpoint=url)
        client = warehouse.client()
        started = time.perf_counter()
        rows = seed(client, dates)
        print(
            f"{SEASONS} seasons, {len(dates)} game dates, {TABLES} tables + schedule, "
            f"{rows:,} rows (seeded in {time.perf_counter() - started:.1f} s)"
        )
        start, end = dates[0], dates[-1]
        ours_s, ours_jobs = measured(client, lambda: measure(config, warehouse, start, end))
        base_s, base_jobs = measured(client, lambda: per_table(warehouse, start, end))
        print(
            f"\n  one UNION ALL job (backfill):  {ours_jobs:3d} query jobs  {ours_s * 1000:8.1f} ms"
        )
        print(
            f"  one job per table (baseline):  {base_jobs:3d} query jobs  {base_s * 1000:8.1f} ms"
        )
        print(
            f"  ratio baseline / backfill:     {base_jobs / max(ours_jobs, 1):5.1f}x jobs "
            f"{base_s / ours_s:6.1f}x time"
        )
        verdict = "PASS" if ours_jobs == TARGET_JOBS else "MISS"
        print(f"\n{verdict}: {ours_jobs} query job per refresh (target {TARGET_JOBS})")
        warehouse.close()


if __name__ == "__main__":
    main()
