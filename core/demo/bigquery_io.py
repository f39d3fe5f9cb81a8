"""The demo tables on BigQuery: schemas, idempotent date writes, seeding and a local read mirror.

Demo derivations are SQLite SQL, so a job on BigQuery first mirrors the upstream rows it reads
(the season so far, for rolling windows) into a scratch SQLite folder, derives there, and writes
each date back with DELETE + INSERT DML statements. DML, not streaming inserts: BigQuery refuses
to DELETE rows still in a streaming buffer, which would break the re-run of a date.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.demo import tables as t
from core.demo.analytics import Row
from core.demo.schedule import season_for
from core.errors import WarehouseError
from core.warehouse import sqlite_layout
from core.warehouse.bigquery import BigQueryWarehouse, quote

if TYPE_CHECKING:
    from google.cloud import bigquery

BIGQUERY_TYPES = {t.TEXT: "STRING", t.INT: "INT64", t.REAL: "FLOAT64"}
#: rows per INSERT statement: well inside BigQuery's request size and parameter limits
INSERT_BATCH = 2_000
#: rows per streaming insert request (BigQuery takes up to 50,000 and 10 MB)
STREAM_BATCH = 10_000

#: what a demo column holds, as a query parameter: SQLite's values, dates as dates
ScalarValue = str | int | float | date | None


def _type(table: t.Table, column: str, kind: str) -> str:
    return "DATE" if column == table.date_column else BIGQUERY_TYPES[kind]


def schema(table: t.Table) -> list[bigquery.SchemaField]:
    from google.cloud import bigquery

    return [bigquery.SchemaField(name, _type(table, name, kind)) for name, kind in table.columns]


def create_tables(warehouse: BigQueryWarehouse, tables: Iterable[t.Table]) -> None:
    """Datasets and tables (partitioned by day on their date column), created if absent."""
    from google.cloud import bigquery

    client = warehouse.client()
    for table in tables:
        dataset = bigquery.Dataset(f"{warehouse.project}.{table.dataset}")

        def create(dataset: bigquery.Dataset = dataset, table: t.Table = table) -> None:
            client.create_dataset(dataset, exists_ok=True)
            made = bigquery.Table(f"{warehouse.project}.{table.qualified}", schema=schema(table))
            # As the seed's tables are: one partition per date, so a refresh reads metadata.
            made.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=table.date_column
            )
            client.create_table(made, exists_ok=True)

        warehouse.call(f"creating {table.qualified}", create)


def _value(table: t.Table, column: str, value: ScalarValue) -> ScalarValue:
    return date.fromisoformat(str(value)) if column == table.date_column else value


def insert(warehouse: BigQueryWarehouse, table: t.Table, rows: Sequence[Row]) -> None:
    """INSERT the rows (tuples in column order) in a few DML statements."""
    from google.cloud import bigquery

    names = table.column_names
    kinds = [_type(table, name, kind) for name, kind in table.columns]
    columns = ", ".join(names)
    sql = (
        f"INSERT INTO {quote(warehouse.project, table.qualified)} ({columns}) "
        f"SELECT {', '.join(f'r.{n}' for n in names)} FROM UNNEST(@rows) AS r"
    )
    for first in range(0, len(rows), INSERT_BATCH):
        structs = [
            bigquery.StructQueryParameter(
                None,
                *(
                    bigquery.ScalarQueryParameter(name, kind, _value(table, name, value))
                    for name, kind, value in zip(names, kinds, row, strict=True)
                ),
            )
            for row in rows[first : first + INSERT_BATCH]
        ]
        param = bigquery.ArrayQueryParameter("rows", "STRUCT", structs)
        warehouse.query(sql, [param], doing=f"writing {table.qualified}")


def replace_date(
    warehouse: BigQueryWarehouse, table: t.Table, day: str, rows: Sequence[Row]
) -> None:
    """The date's rows replaced: a re-run never duplicates a date. A crash between the two
    statements leaves the date empty, which coverage shows as missing and a re-run fills."""
    from google.cloud import bigquery

    warehouse.query(
        f"DELETE FROM {quote(warehouse.project, table.qualified)} WHERE {table.date_column} = @day",
        [bigquery.ScalarQueryParameter("day", "DATE", date.fromisoformat(day))],
        doing=f"clearing {table.qualified} for {day}",
    )
    insert(warehouse, table, rows)


def copy_from_sqlite(
    warehouse: BigQueryWarehouse,
    folder: Path,
    *,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, int]:
    """Every demo table of a SQLite demo warehouse copied to BigQuery (rows of [start, end]
    only, when given); tables are created even when no row falls in the range.

    Rows are streamed (insertAll), fifty times faster than DML on an emulator. Real BigQuery
    refuses to DELETE streamed rows for up to 90 minutes, which is why only emulators are
    seeded (`backfill demo init` checks) and why jobs write with DML."""
    create_tables(warehouse, t.ALL_TABLES)
    client = warehouse.client()
    conn = sqlite_layout.connect(folder, t.DATASETS, readonly=True)
    copied: dict[str, int] = {}
    lo, hi = (start or date.min).isoformat(), (end or date.max).isoformat()
    try:
        for table in t.ALL_TABLES:
            names = table.column_names
            rows = [
                dict(zip(names, row, strict=True))
                for row in conn.execute(
                    f"SELECT {', '.join(names)} FROM {table.qualified} "
                    f"WHERE {table.date_column} BETWEEN ? AND ?",
                    (lo, hi),
                )
            ]
            ref = f"{warehouse.project}.{table.qualified}"
            for first in range(0, len(rows), STREAM_BATCH):
                batch = rows[first : first + STREAM_BATCH]

                def stream(
                    batch: list[dict[str, Any]] = batch, ref: str = ref
                ) -> Sequence[dict[str, Any]]:
                    return client.insert_rows_json(ref, batch)

                errors = warehouse.call(f"copying rows into {table.qualified}", stream)
                if errors:
                    # BigQuery refused rows (their values): sending them again would not help.
                    raise WarehouseError(
                        f"copying rows into {table.qualified}: {errors[:3]}", transient=False
                    )
            copied[table.qualified] = len(rows)
    finally:
        conn.close()
    return copied


def seed_demo(warehouse: BigQueryWarehouse, *, force: bool) -> dict[str, int]:
    """The whole simulated warehouse (as `backfill demo init` seeds SQLite) copied into the
    project; existing demo datasets are refused, or replaced with `force`."""
    from core.demo.seed import seed_demo_warehouse

    client = warehouse.client()
    present = warehouse.call(
        f"listing the datasets of {warehouse.project}",
        lambda: {d.dataset_id for d in client.list_datasets()} & set(t.DATASETS),
    )
    if present and not force:
        raise WarehouseError(
            f"datasets {', '.join(sorted(present))} already exist in {warehouse.project}; "
            "`backfill demo init --force` replaces them",
            transient=False,
        )
    for dataset in sorted(present):
        ref = f"{warehouse.project}.{dataset}"

        def delete(ref: str = ref) -> None:
            client.delete_dataset(ref, delete_contents=True)

        warehouse.call(f"deleting {ref}", delete)
    with tempfile.TemporaryDirectory(prefix="backfill-demo-seed-") as scratch:
        summary = seed_demo_warehouse(Path(scratch) / "warehouse")
        return copy_from_sqlite(warehouse, summary.folder)


def mirror(
    warehouse: BigQueryWarehouse,
    tables: Iterable[t.Table],
    days: Sequence[date],
    folder: Path,
    *,
    season: bool,
    say: Callable[[str], None],
) -> sqlite3.Connection:
    """A SQLite connection (on `folder`) holding the BigQuery rows of `tables` for `days` (from
    the start of the season of the first day, with `season`): what the demo derivations read.
    Each table read is announced, so a slow read never looks like a hung job."""
    from google.cloud import bigquery

    first = days[0]
    opened = season_for(first)
    lo = opened.start if season and opened is not None and opened.start < first else first
    conn = sqlite_layout.connect(folder, t.DATASETS, readonly=False)
    wanted = list(dict.fromkeys(tables))
    present = warehouse.existing_tables({table.qualified for table in wanted})
    for table in wanted:
        for statement in table.ddl():
            conn.execute(statement)
        if table.qualified not in present:
            continue
        say(f"Reading {table.qualified} {lo} .. {days[-1]} from BigQuery ...")
        rows = warehouse.query(
            f"SELECT {', '.join(table.column_names)} "
            f"FROM {quote(warehouse.project, table.qualified)} "
            f"WHERE {table.date_column} BETWEEN @lo AND @hi",
            [
                bigquery.ScalarQueryParameter("lo", "DATE", lo),
                bigquery.ScalarQueryParameter("hi", "DATE", days[-1]),
            ],
            doing=f"reading {table.qualified}",
        )
        conn.executemany(table.insert_sql(), [_local(row) for row in rows])
    return conn


def _local(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.isoformat() if isinstance(v, date) else v for v in row)
