"""The demo processor program, one CLI for the ten runnable processors of backfill.yaml.

    python -m core.demo.job PROCESSOR (--warehouse DIR | --config BACKFILL_YAML)
        (--start-date D [--end-date D] | --dates D1,D2,...) [--delay SECONDS] [--dry-run]

It behaves like the seed system's backfill scripts: one date at a time over the schedule's Final
game dates, one flushed progress line per date, continue on failure, a summary at the end, and
exit 1 if any date failed. Writes are idempotent (the date's rows are replaced in one
transaction). The sleep per date (--delay, default $BACKFILL_DEMO_DELAY or 0.3 s) makes a run
watchable; `faults` injects the seed's failure modes on first attempts.

`--config` takes the warehouse of a backfill.yaml (the bundled demo passes `{config}`), so switching
the demo to BigQuery is a change of its `warehouse:` block. On BigQuery the job reads its upstream
rows into a scratch SQLite mirror, derives there with the same code, and replaces each date's rows
in BigQuery (see `bigquery_io`).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from core.config import load_config
from core.demo import faults
from core.demo import tables as t
from core.demo.analytics import Row, first_game_only
from core.demo.processors import PROCESSORS, Processor, upstream_counts, write_date
from core.demo.schedule import STATUS_FINAL
from core.errors import UserError
from core.warehouse import open_warehouse
from core.warehouse.bigquery import BigQueryWarehouse
from core.warehouse.sqlite_layout import connect, dataset_file, table_exists

DEFAULT_DELAY = 0.3
DELAY_VARIABLE = "BACKFILL_DEMO_DELAY"
EXIT_OK, EXIT_FAILED = 0, 1


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _date_list(text: str) -> list[date]:
    days = [_iso_date(part) for part in text.split(",") if part.strip()]
    if not days:
        raise argparse.ArgumentTypeError("--dates needs at least one date")
    return sorted(set(days))


def _delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the delay cannot be negative")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.demo.job",
        description="Backfill one demo processor over the Final game dates of a range.",
    )
    parser.add_argument("processor", choices=list(PROCESSORS))
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--warehouse", type=Path, help="demo warehouse folder (SQLite)")
    where.add_argument("--config", type=Path, help="a backfill.yaml: its warehouse (either kind)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--start-date", type=_iso_date)
    which.add_argument("--dates", type=_date_list, help="comma-separated dates")
    parser.add_argument("--end-date", type=_iso_date, help="defaults to --start-date")
    parser.add_argument("--delay", type=_delay, default=None, help="seconds to sleep per date")
    parser.add_argument("--dry-run", action="store_true", help="show upstream rows, write nothing")
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.end_date is not None and args.start_date is None:
        parser.error("--end-date needs --start-date")
    if args.start_date is not None:
        end = args.end_date or args.start_date
        if end < args.start_date:
            parser.error(f"--end-date {end} is before --start-date {args.start_date}")
        args.requested = [
            args.start_date + timedelta(i) for i in range((end - args.start_date).days + 1)
        ]
    else:
        args.requested = args.dates
    if args.delay is None:
        try:
            args.delay = _delay(os.environ.get(DELAY_VARIABLE, str(DEFAULT_DELAY)))
        except argparse.ArgumentTypeError as exc:
            parser.error(f"${DELAY_VARIABLE}: {exc}")
    args.bigquery = None
    if args.config is not None:
        try:
            config = load_config(args.config)
        except UserError as exc:
            parser.error(str(exc))
        if config.warehouse.kind == "bigquery":
            args.bigquery = config
            args.markers = config.state_path  # where injected faults note that they fired
        else:
            args.warehouse = config.warehouse_path
    if args.warehouse is not None:
        if not dataset_file(args.warehouse, t.RAW).is_file():
            parser.error(f"{args.warehouse} is not a demo warehouse (no {t.RAW}.sqlite in it)")
        args.markers = args.warehouse
    return args


def _say(line: str) -> None:
    print(line, flush=True)


def _game_dates(conn: sqlite3.Connection, requested: list[date]) -> list[str]:
    lo, hi = requested[0].isoformat(), requested[-1].isoformat()
    found = {
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT game_date FROM {t.SCHEDULE.qualified} "
            f"WHERE game_status = {STATUS_FINAL} AND game_date BETWEEN ? AND ?",
            (lo, hi),
        )
    }
    return [d.isoformat() for d in requested if d.isoformat() in found]


class QuotaExceeded(Exception):
    """The injected BigQuery quota error: the whole job dies, as the real one did."""


@dataclass
class Store:
    """Where the job reads (`conn`) and how it replaces a date's rows (`write`)."""

    conn: sqlite3.Connection
    write: Callable[[t.Table, str, Sequence[Row]], None]
    create: Callable[[t.Table], None]


@contextmanager
def _sqlite_store(args: argparse.Namespace) -> Iterator[Store]:
    conn = connect(args.warehouse, t.DATASETS, readonly=args.dry_run)

    def create(table: t.Table) -> None:
        if not table_exists(conn, table.dataset, table.name):
            for statement in table.ddl():
                conn.execute(statement)

    try:
        yield Store(conn, lambda table, day, rows: write_date(conn, table, day, rows), create)
    finally:
        conn.close()


@contextmanager
def _bigquery_store(args: argparse.Namespace, processor: Processor) -> Iterator[Store]:
    from core.demo import bigquery_io

    warehouse = open_warehouse(args.bigquery)
    assert isinstance(warehouse, BigQueryWarehouse)
    reads = (t.SCHEDULE, *processor.requires, *processor.also_reads)
    with tempfile.TemporaryDirectory(prefix="backfill-demo-mirror-") as scratch:
        conn = bigquery_io.mirror(
            warehouse,
            reads,
            args.requested,
            Path(scratch),
            season=processor.reads_season,
            say=_say,
        )

        def write(table: t.Table, day: str, rows: Sequence[Row]) -> None:
            bigquery_io.replace_date(warehouse, table, day, rows)
            write_date(conn, table, day, rows)  # later dates of this run read it locally

        def create(table: t.Table) -> None:
            bigquery_io.create_tables(warehouse, [table])
            for statement in table.ddl():  # the mirror keeps what this run writes, too
                conn.execute(statement)

        try:
            yield Store(conn, write, create)
        finally:
            conn.close()
            warehouse.close()


def main(argv: Sequence[str] | None = None) -> int:
    # A log captured under a non-UTF-8 locale must not crash the job on its ✓ and ✗ marks.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = _parse(argv)
    processor = PROCESSORS[args.processor]
    try:
        store = _bigquery_store(args, processor) if args.bigquery else _sqlite_store(args)
        with store as opened:
            return _run(opened, processor, args)
    except QuotaExceeded as exc:
        print(exc, file=sys.stderr, flush=True)
        return EXIT_FAILED
    except UserError as exc:  # BigQuery refused: say why in one line, as the engine logs it
        print(f"{processor.name}: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED


def _run(store: Store, processor: Processor, args: argparse.Namespace) -> int:
    requested: list[date] = args.requested
    dates = _game_dates(store.conn, requested)
    skipped = len(requested) - len(dates)
    mode = "DRY RUN" if args.dry_run else "backfill_mode=True"
    trigger = os.environ.get("SKIP_DOWNSTREAM_TRIGGER", "0") == "1"
    _say(
        f"{processor.name}: {len(dates)} game dates out of {len(requested)} requested days "
        f"(skipping {skipped} off-days) [{mode}, skip_downstream_trigger={trigger}]"
    )
    if args.dates:
        # Dates asked for by name deserve a word; off-days inside a range are skipped quietly.
        for day in sorted({d.isoformat() for d in requested} - set(dates)):
            _say(f"Skipping {day}: no games")
    if not dates:
        _say("No games on the requested dates: nothing to do")
        return EXIT_OK
    if not args.dry_run:
        store.create(processor.table)
    failed: list[str] = []
    for index, day in enumerate(dates, start=1):
        prefix = f"Processing game date {index}/{len(dates)}: {day} ..."
        ok = _process(store, processor, day, prefix, args)
        if not ok:
            failed.append(day)
        if args.delay:
            time.sleep(args.delay)
    if args.dry_run:
        ready = len(dates) - len(failed)
        _say(f"BACKFILL SUMMARY (dry run): {ready} would run, {len(failed)} would fail")
        return EXIT_OK
    _say(f"BACKFILL SUMMARY: {len(dates) - len(failed)} succeeded, {len(failed)} failed")
    if failed:
        listed = ",".join(failed)
        _say(f"Failed dates: {listed}")
        _say(
            f"Retry with: python -m core.demo.job {processor.name} "
            + (f"--config {args.config}" if args.config else f"--warehouse {args.warehouse}")
            + f" --dates {listed}"
        )
        return EXIT_FAILED
    return EXIT_OK


def _process(
    store: Store,
    processor: Processor,
    day: str,
    prefix: str,
    args: argparse.Namespace,
) -> bool:
    counts = upstream_counts(store.conn, processor, day)
    missing = [name for name, n in counts.items() if n == 0]
    if args.dry_run:
        shown = ", ".join(f"{name}={n}" for name, n in counts.items())
        verdict = f"would fail, missing {', '.join(missing)}" if missing else "would run"
        _say(f"{prefix} DRY RUN: upstream rows {shown} ({verdict})")
        return not missing
    if missing:
        _say(f"{prefix} ✗ Failed: missing upstream {', '.join(missing)} (0 rows for {day})")
        return False
    fault = faults.claim(args.markers, processor.name, day)
    if fault is not None and fault.kind == faults.HANG:
        _say(f"{prefix} reading season history for {processor.name}")
        while True:  # the seed's hung BigQuery call: no output, no exit, until killed
            time.sleep(3600)
    try:
        rows = processor.derive(store.conn, day)
        if fault is not None and fault.kind == faults.QUOTA:
            _say(f"{prefix} ✗ Failed: error while saving {processor.table.qualified}")
            raise QuotaExceeded(faults.QUOTA_MESSAGE)
        if fault is not None and fault.kind == faults.PARTIAL:
            rows = first_game_only(rows)
        store.write(processor.table, day, rows)
    except (sqlite3.Error, UserError) as exc:
        _say(f"{prefix} ✗ Failed: {type(exc).__name__}: {exc}")
        return False
    _say(f"{prefix} ✓ Success: {len(rows)} records")
    return True


if __name__ == "__main__":
    sys.exit(main())
