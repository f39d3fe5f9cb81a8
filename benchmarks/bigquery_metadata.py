"""Bytes billed per coverage refresh of the example pipeline: grouped COUNTs against partition
metadata, full and incremental, both measured in the same run.

Starts the BigQuery emulator, creates the tables of `examples/nba-props-bigquery.yaml` (4
datasets, 16 tables partitioned by day on their date column, as the seed's are, and the
schedule as calendar with its `where`) holding ROWS_PER_DATE rows per game date over one season,
then prices a refresh the way `status --verbose` does: free dry runs of each job, raised to
BigQuery's on-demand minimum of 10 MiB per table referenced (per query for INFORMATION_SCHEMA).
The emulator processes 0 bytes, so these figures are the minimums; real tables bill
max(scanned, minimum) for a COUNT and the minimum for metadata.

  - baseline (the design before): every table counted, one UNION ALL job per location;
  - metadata: one INFORMATION_SCHEMA.PARTITIONS query per dataset, the calendar counted.

An incremental refresh runs the same jobs (the minimum, not the rows returned, sets the price):
what it saves is the partitions returned, printed after one table changes.

Run: `uv run python benchmarks/bigquery_metadata.py` (about a minute).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from google.cloud import bigquery

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.status_scan import game_dates
from core.calendar import expected_scan
from core.config import load_config
from core.coverage import measure, refresh_scans
from core.warehouse.bigquery import EMULATOR_VARIABLE, BigQueryWarehouse
from tests.bigquery.emulator import bqemulator

EXAMPLE = Path(__file__).parents[1] / "examples" / "nba-props-bigquery.yaml"
ROWS_PER_DATE = 3  # the bill is the minimum either way; fewer rows seed faster
SEASON_DATES = 215
MiB = 2**20


def seed(client: bigquery.Client, project: str, tables: dict[str, str], dates: list[date]) -> int:
    rows = 0
    for table, column in sorted(tables.items()):
        client.create_dataset(f"{project}.{table.split('.')[0]}", exists_ok=True)
        made = bigquery.Table(
            f"{project}.{table}",
            schema=[
                bigquery.SchemaField(column, "DATE"),
                bigquery.SchemaField("entity", "INT64"),
                bigquery.SchemaField("game_status", "INT64"),
            ],
        )
        made.time_partitioning = bigquery.TimePartitioning(field=column)
        client.create_table(made)
        batch = [
            {column: d.isoformat(), "entity": e, "game_status": 3}
            for d in dates
            for e in range(ROWS_PER_DATE)
        ]
        for first in range(0, len(batch), 10_000):
            assert not client.insert_rows_json(f"{project}.{table}", batch[first : first + 10_000])
        rows += len(batch)
    return rows


def main() -> None:
    config = load_config(EXAMPLE)
    project = config.warehouse.project
    assert project is not None
    # One season: the emulator builds its PARTITIONS view as an inline VALUES list of every
    # partition of the dataset, which passes the API timeout past a few thousand partitions.
    dates = game_dates()[:SEASON_DATES]
    start, end = dates[0], dates[-1]
    tables = {p.table: p.date_column for p in config.processors}
    with bqemulator(project) as url:
        os.environ[EMULATOR_VARIABLE] = url.removeprefix("http://")
        warehouse = BigQueryWarehouse(project, api_endpoint=url)
        warehouse.partitions.overlap = timedelta(0)  # the emulator's clock is ours
        client = warehouse.client()
        started = time.perf_counter()
        rows = seed(client, project, tables, dates)
        datasets = {t.split(".")[0] for t in tables}
        print(
            f"{len(dates)} game dates, {len(tables)} tables in {len(datasets)} datasets, "
            f"{rows:,} rows (seeded in {time.perf_counter() - started:.1f} s)"
        )
        calendar = expected_scan(config)
        assert calendar is not None
        scans = [*refresh_scans(config).values(), calendar]
        counted = [replace(scan, exact=True) for scan in scans]  # the design before
        before = warehouse.scan_bytes(counted, start, end) or 0
        after = warehouse.scan_bytes(scans, start, end) or 0

        measure(config, warehouse, start, end)
        full = sum(warehouse.partitions.returned.values())
        table = "nba_analytics.player_game_summary"
        got = client.get_table(f"{project}.{table}")
        got.description = "changed"  # what moves partition times on the emulator
        client.update_table(got, ["description"])
        measure(config, warehouse, start, end)
        incremental = sum(warehouse.partitions.returned.values())
        warehouse.close()

    print("\nbytes billed per refresh (dry runs + BigQuery's minimums)")
    print("                              full refresh   incremental refresh")
    print(f"  grouped COUNT (baseline):  {before / MiB:9.1f} MiB  {before / MiB:12.1f} MiB")
    print(f"  partition metadata:        {after / MiB:9.1f} MiB  {after / MiB:12.1f} MiB")
    print(f"  ratio baseline / metadata: {before / after:9.1f}x    {before / after:12.1f}x")
    print(
        f"\npartitions returned: full refresh {full:,}, incremental after {table} changed "
        f"{incremental:,} ({full / max(incremental, 1):.0f}x fewer)"
    )


if __name__ == "__main__":
    main()
