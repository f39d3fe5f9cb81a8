"""The journal's schema, as an ordered list of migrations; `PRAGMA user_version` holds the last
one applied.

Journals written before versions existed have every table and user_version 0: they are version
1, adopted as such without touching a table. Each migration runs in its own transaction, so a
crash mid-way leaves the journal at the previous version, to be migrated again on the next open.

An item's dates are kept in `item_dates` only (from version 2), read back ordered by day. That
is their order: core/planner.py `chunk_dates` makes every item's dates, at planning and when
the engine narrows an item, by cutting sorted runs (`dateranges.runs` sorts) or, for {dates}
commands, taking the dates as given, which are a processor's targets in calendar order or a
subset of an item's dates. So no position column is needed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "the schema of journals made before schema versions",
        (
            """
            CREATE TABLE IF NOT EXISTS runs (
                id INTEGER PRIMARY KEY,
                created_at REAL NOT NULL,
                ended_at REAL,
                status TEXT NOT NULL,  -- running | finished | incomplete | stopped | abandoned
                range_start TEXT NOT NULL,
                range_end TEXT NOT NULL,
                request TEXT NOT NULL  -- JSON: phases, processors, reprocess
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS items (
                id INTEGER PRIMARY KEY,
                run_id INTEGER NOT NULL REFERENCES runs(id),
                processor TEXT NOT NULL,
                phase TEXT NOT NULL,
                dates TEXT NOT NULL,  -- JSON list of ISO dates
                state TEXT NOT NULL,  -- pending | running | done | failed | blocked | cancelled
                priority INTEGER NOT NULL DEFAULT 0,
                attempts INTEGER NOT NULL DEFAULT 0,  -- attempts that count against retries
                not_before REAL NOT NULL DEFAULT 0,  -- retry backoff: no dispatch before this time
                reason TEXT,
                updated_at REAL NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS item_dates (
                item_id INTEGER NOT NULL REFERENCES items(id),
                processor TEXT NOT NULL,
                day TEXT NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS item_dates_cell ON item_dates (processor, day)",
            """
            CREATE TABLE IF NOT EXISTS attempts (
                id INTEGER PRIMARY KEY,
                item_id INTEGER NOT NULL REFERENCES items(id),
                number INTEGER NOT NULL,
                argv TEXT NOT NULL,
                log_path TEXT NOT NULL,
                pid INTEGER,
                pgid INTEGER,
                started_at REAL NOT NULL,
                ended_at REAL,
                exit_code INTEGER,
                reason TEXT,  -- exit | timeout | stall | cancelled | interrupted
                outcome TEXT,  -- ok | failed | incomplete | interrupted | cancelled
                duration REAL,
                tail TEXT  -- JSON list of the last log lines
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS coverage_cache (
                id INTEGER PRIMARY KEY CHECK (id = 1),  -- only the latest refresh is kept
                measured_at TEXT NOT NULL,
                range_start TEXT NOT NULL,
                range_end TEXT NOT NULL,
                payload TEXT NOT NULL  -- JSON: expected, rows, absent
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY,
                at REAL NOT NULL,
                run_id INTEGER,
                item_id INTEGER,
                kind TEXT NOT NULL,
                detail TEXT NOT NULL
            )
            """,
        ),
    ),
    Migration(
        2,
        "item dates only in item_dates; no item priority; indexes for per-run and per-item reads",
        (
            # item_dates has held every date of every item since version 1: nothing to copy.
            "ALTER TABLE items DROP COLUMN dates",
            "ALTER TABLE items DROP COLUMN priority",
            # A resume reads a run's items, their dates and last attempts; narrowing an item
            # rewrites its dates. Without these each is a scan of every run ever journaled.
            "CREATE INDEX IF NOT EXISTS items_run ON items (run_id)",
            "CREATE INDEX IF NOT EXISTS item_dates_item ON item_dates (item_id, day)",
            "CREATE INDEX IF NOT EXISTS attempts_item ON attempts (item_id)",
        ),
    ),
    Migration(
        3,
        "an attempt's process start time (adoption proves identity) and its leftovers count",
        (
            # /proc/PID/stat field 22, clock ticks since boot: with the pid, it tells the
            # attempt's process from a stranger given the same pid after a crash. NULL: from
            # before (then the tag in the environment alone identifies it), or no /proc.
            "ALTER TABLE attempts ADD COLUMN start_ticks INTEGER",
            # Processes of the attempt still running once it ended, which the engine ended.
            "ALTER TABLE attempts ADD COLUMN leftovers INTEGER",
        ),
    ),
    Migration(
        4,
        "the executor that ran each attempt, and the executor's own name for it",
        (
            # `executor:` of backfill.yaml (local | ray | cloud_run): an attempt is adopted
            # after a crash by the executor that started it, whatever the config says now.
            # Every attempt before this version was a local process.
            "ALTER TABLE attempts ADD COLUMN executor TEXT NOT NULL DEFAULT 'local'",
            # What the executor finds the attempt by (a Ray submission id, a Cloud Run
            # execution name). NULL for local ones: pid, pgid and start_ticks identify them.
            "ALTER TABLE attempts ADD COLUMN remote_ref TEXT",
        ),
    ),
    Migration(
        5,
        "cells an operator marked known empty: no rows are due, so they count as complete",
        (
            # One row per cell: marking it again replaces the reason; undoing deletes the row
            # (the events table keeps the history of both, with who did it).
            """
            CREATE TABLE IF NOT EXISTS known_empty (
                processor TEXT NOT NULL,
                day TEXT NOT NULL,
                reason TEXT NOT NULL,
                who TEXT NOT NULL,
                at REAL NOT NULL,
                PRIMARY KEY (processor, day)
            ) WITHOUT ROWID
            """,
        ),
    ),
)

LATEST = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the journal at `path` (open on `conn`, autocommit) to LATEST; returns LATEST.

    Refuses a journal newer than this code with a UserError, before writing anything."""
    version = user_version(conn)
    _refuse_newer(path, version)
    if version == LATEST:
        return version  # the usual open: no write lock taken, so readers never wait here
    while True:
        with _immediate(conn):
            # Read again under the write lock: another process may have migrated meanwhile.
            version = user_version(conn)
            _refuse_newer(path, version)
            if version == LATEST:
                return version
            if version == 0 and _has_tables(conn):
                version = 1  # made before versions existed: already version 1's schema
            else:
                migration = MIGRATIONS[version]
                for statement in migration.statements:
                    conn.execute(statement)
                version = migration.version
            conn.execute(f"PRAGMA user_version = {version:d}")


def _refuse_newer(path: Path, version: int) -> None:
    if version > LATEST:
        raise UserError(
            f"{path}: journal schema version {version} is newer than this backfill knows "
            f"({LATEST}); use a newer backfill"
        )


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'")
    return row.fetchone() is not None


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
