"""Seed the demo warehouse: the seed system's situation, simulated in SQLite.

Phase 2 is complete for every Final game date, Phase 3 is about half done with lagging tables and
partial dates (see `gaps`), Phase 4 tables exist and are empty. The warehouse is built in a
temporary sibling folder and renamed into place, so a crash never leaves a half-seeded warehouse.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from core.demo import gaps, raw
from core.demo import tables as t
from core.demo.analytics import first_game_only
from core.demo.processors import PHASE3, Processor
from core.demo.schedule import FINAL_THROUGH, SEASONS, build_schedule, final_game_dates
from core.warehouse.sqlite_layout import connect


class WarehouseExistsError(FileExistsError):
    """The warehouse folder already holds data and `force` was not given."""


@dataclass(frozen=True)
class SeedSummary:
    folder: Path
    game_dates: int  # Final game dates in the demo range (2021-10-19 .. 2024-11-29)
    rows: dict[str, int] = field(default_factory=dict)  # "dataset.table" -> rows
    seconds: float = 0.0


#: (step, steps, what it is doing)
Progress = Callable[[int, int, str], None]


def seed_demo_warehouse(
    folder: Path, *, force: bool = False, progress: Progress | None = None
) -> SeedSummary:
    """Create the demo warehouse in `folder` (one X.sqlite per dataset).

    Refuses a folder that exists and is not empty unless `force`; with `force` the old folder,
    fault markers included, is replaced as a whole once the new one is complete. `progress`
    hears (step, steps, what) as each step starts: seeding takes seconds, 20 on a busy machine.
    """
    began = time.monotonic()
    folder = Path(folder)
    if _has_content(folder) and not force:
        raise WarehouseExistsError(f"{folder} already exists; seed with force to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.seeding-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        rows = _build(staging, progress or (lambda step, steps, what: None))
        _swap_into_place(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    dates = len(final_game_dates(SEASONS[0].start, FINAL_THROUGH))
    return SeedSummary(folder, dates, rows, round(time.monotonic() - began, 2))


def _has_content(folder: Path) -> bool:
    return folder.exists() and (not folder.is_dir() or any(folder.iterdir()))


def _swap_into_place(staging: Path, folder: Path) -> None:
    if not folder.exists():
        staging.rename(folder)
        return
    retired = folder.parent / f".{folder.name}.replaced-{os.getpid()}"
    shutil.rmtree(retired, ignore_errors=True)
    folder.rename(retired)
    staging.rename(folder)
    if retired.is_dir():
        shutil.rmtree(retired, ignore_errors=True)
    else:
        retired.unlink(missing_ok=True)


def _build(staging: Path, progress: Progress) -> dict[str, int]:
    steps = 1 + len(t.RAW_TABLES) + len(PHASE3)
    progress(1, steps, "the schedule and the raw games")
    rows = raw.generate(build_schedule())
    conn = connect(staging, t.DATASETS, readonly=False)
    try:
        for table in t.ALL_TABLES:
            for statement in table.ddl():
                conn.execute(statement)
        counts: dict[str, int] = {}
        conn.execute("BEGIN")
        for step, table in enumerate(t.RAW_TABLES, start=2):
            progress(step, steps, table.qualified)
            conn.executemany(table.insert_sql(), rows[table.name])
            counts[table.qualified] = len(rows[table.name])
        conn.execute("COMMIT")
        # The analytics transaction reads the team offense rows it just wrote, as player summaries
        # of the job program do (usage_rate), so seeded and job-written rows agree.
        conn.execute("BEGIN")
        for step, processor in enumerate(PHASE3, start=2 + len(t.RAW_TABLES)):
            progress(step, steps, processor.table.qualified)
            counts[processor.table.qualified] = _seed_phase3(conn, processor)
        conn.execute("COMMIT")
        for table in t.PRECOMPUTE_TABLES:
            counts[table.qualified] = 0
        return counts
    finally:
        conn.close()


def _seed_phase3(conn: sqlite3.Connection, processor: Processor) -> int:
    if processor.bulk is None:
        raise TypeError(f"{processor.name} has no bulk derivation to seed from")
    all_dates = final_game_dates(SEASONS[0].start, FINAL_THROUGH)
    wanted = [d for d in all_dates if gaps.is_covered(processor.name, date.fromisoformat(d))]
    written = 0
    for day, rows in processor.bulk(conn, wanted).items():
        if gaps.is_partial(processor.name, date.fromisoformat(day)):
            rows = first_game_only(rows)
        conn.executemany(processor.table.insert_sql(), rows)
        written += len(rows)
    return written
