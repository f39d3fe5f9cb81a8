"""The demo processor program, one CLI for the ten runnable processors of backfill.yaml.

    python -m core.demo.job PROCESSOR --warehouse DIR
        (--start-date D [--end-date D] | --dates D1,D2,...) [--delay SECONDS] [--dry-run]

It behaves like the seed system's backfill scripts: one date at a time over the schedule's Final
game dates, one flushed progress line per date, continue on failure, a summary at the end, and
exit 1 if any date failed. Writes are idempotent (the date's rows are replaced in one
transaction). The sleep per date (--delay, default $BACKFILL_DEMO_DELAY or 0.3 s) makes a run
watchable; `faults` injects the seed's failure modes on first attempts.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from core.demo import faults
from core.demo import tables as t
from core.demo.analytics import first_game_only
from core.demo.processors import PROCESSORS, Processor, upstream_counts, write_date
from core.demo.schedule import STATUS_FINAL
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
    parser.add_argument("--warehouse", required=True, type=Path, help="demo warehouse folder")
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
    if not dataset_file(args.warehouse, t.RAW).is_file():
        parser.error(f"{args.warehouse} is not a demo warehouse (no {t.RAW}.sqlite in it)")
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


def main(argv: Sequence[str] | None = None) -> int:
    # A log captured under a non-UTF-8 locale must not crash the job on its ✓ and ✗ marks.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = _parse(argv)
    processor = PROCESSORS[args.processor]
    conn = connect(args.warehouse, t.DATASETS, readonly=args.dry_run)
    try:
        return _run(conn, processor, args)
    except QuotaExceeded as exc:
        print(exc, file=sys.stderr, flush=True)
        return EXIT_FAILED
    finally:
        conn.close()


def _run(conn: sqlite3.Connection, processor: Processor, args: argparse.Namespace) -> int:
    requested: list[date] = args.requested
    dates = _game_dates(conn, requested)
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
    table = processor.table
    if not args.dry_run and not table_exists(conn, table.dataset, table.name):
        for statement in table.ddl():
            conn.execute(statement)
    failed: list[str] = []
    for index, day in enumerate(dates, start=1):
        prefix = f"Processing game date {index}/{len(dates)}: {day} ..."
        ok = _process(conn, processor, day, prefix, args)
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
            f"--warehouse {args.warehouse} --dates {listed}"
        )
        return EXIT_FAILED
    return EXIT_OK


def _process(
    conn: sqlite3.Connection,
    processor: Processor,
    day: str,
    prefix: str,
    args: argparse.Namespace,
) -> bool:
    counts = upstream_counts(conn, processor, day)
    missing = [name for name, n in counts.items() if n == 0]
    if args.dry_run:
        shown = ", ".join(f"{name}={n}" for name, n in counts.items())
        verdict = f"would fail, missing {', '.join(missing)}" if missing else "would run"
        _say(f"{prefix} DRY RUN: upstream rows {shown} ({verdict})")
        return not missing
    if missing:
        _say(f"{prefix} ✗ Failed: missing upstream {', '.join(missing)} (0 rows for {day})")
        return False
    fault = faults.claim(args.warehouse, processor.name, day)
    if fault is not None and fault.kind == faults.HANG:
        _say(f"{prefix} reading season history for {processor.name}")
        while True:  # the seed's hung BigQuery call: no output, no exit, until killed
            time.sleep(3600)
    try:
        rows = processor.derive(conn, day)
        if fault is not None and fault.kind == faults.QUOTA:
            _say(f"{prefix} ✗ Failed: error while saving {processor.table.qualified}")
            raise QuotaExceeded(faults.QUOTA_MESSAGE)
        if fault is not None and fault.kind == faults.PARTIAL:
            rows = first_game_only(rows)
        write_date(conn, processor.table, day, rows)
    except sqlite3.Error as exc:
        _say(f"{prefix} ✗ Failed: {type(exc).__name__}: {exc}")
        return False
    _say(f"{prefix} ✓ Success: {len(rows)} records")
    return True


if __name__ == "__main__":
    sys.exit(main())
