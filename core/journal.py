"""Durable engine state under state_dir: runs, work items, attempts, events (SQLite, WAL).

Every transition is committed before the engine acts on it, so after a crash (even `kill -9`) the
next engine knows what was running, which process to adopt and what is already done. Only one
engine may own a state_dir: `EngineLock` holds an exclusive flock that the OS drops when the owner
dies, so a crashed engine never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from core.calendar import ExpectedCalendar
from core.config import Config
from core.coverage import Coverage, assemble
from core.errors import UserError

JOURNAL_FILE = "journal.sqlite"
LOCK_FILE = "engine.lock"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,            -- running | finished | incomplete | stopped | abandoned
    range_start TEXT NOT NULL,
    range_end TEXT NOT NULL,
    request TEXT NOT NULL            -- JSON: phases, processors, reprocess
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    processor TEXT NOT NULL,
    phase TEXT NOT NULL,
    dates TEXT NOT NULL,             -- JSON list of ISO dates
    state TEXT NOT NULL,             -- pending | running | done | failed | blocked | cancelled
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,   -- attempts that count against retries
    not_before REAL NOT NULL DEFAULT 0,    -- retry backoff: no dispatch before this time
    reason TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS item_dates (
    item_id INTEGER NOT NULL REFERENCES items(id),
    processor TEXT NOT NULL,
    day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS item_dates_cell ON item_dates (processor, day);
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
    reason TEXT,                     -- exit | timeout | stall | cancelled | interrupted
    outcome TEXT,                    -- ok | failed | incomplete | interrupted | cancelled
    duration REAL,
    tail TEXT                        -- JSON list of the last log lines
);
CREATE TABLE IF NOT EXISTS coverage_cache (
    id INTEGER PRIMARY KEY CHECK (id = 1),   -- only the latest refresh is kept
    measured_at TEXT NOT NULL,
    range_start TEXT NOT NULL,
    range_end TEXT NOT NULL,
    payload TEXT NOT NULL            -- JSON: expected, rows, absent
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    run_id INTEGER,
    item_id INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class RunRow:
    id: int
    created_at: float
    status: str
    start: date
    end: date
    request: dict[str, Any]


@dataclass(frozen=True)
class ItemRow:
    id: int
    run_id: int
    processor: str
    phase: str
    dates: tuple[date, ...]
    state: str
    priority: int
    attempts: int
    not_before: float
    reason: str | None


@dataclass(frozen=True)
class AttemptRow:
    id: int
    item_id: int
    number: int
    argv: tuple[str, ...]
    log_path: Path
    pid: int | None
    pgid: int | None
    started_at: float
    ended_at: float | None
    exit_code: int | None
    reason: str | None
    outcome: str | None
    duration: float | None
    tail: tuple[str, ...]


class EngineLock:
    """Exclusive ownership of a state_dir for one engine process."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(
                f"another engine (pid {owner}) owns {self.path.parent}; wait for it, or stop it "
                f"(kill {owner}) and start again: its work is resumed"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def owner(self) -> int | None:
        """The pid holding the lock, or None when it is free."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        finally:
            os.close(fd)
        return None


def _dates(text: str) -> tuple[date, ...]:
    return tuple(date.fromisoformat(d) for d in json.loads(text))


class Journal:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / JOURNAL_FILE
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a crash of this process (kill -9); only an OS crash can
        # lose the last transactions, and coverage in the warehouse remains the truth then.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA busy_timeout = 10000")
        self.conn.executescript(SCHEMA)
        self._depth = 0  # of nested transaction() blocks

    @classmethod
    def open_if_exists(cls, state_dir: Path) -> Journal | None:
        """For readers (status, logs): no journal yet means no run ever happened."""
        return cls(state_dir) if (state_dir / JOURNAL_FILE).exists() else None

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside commit together, or not at all; nested, the outermost one commits.
        One commit per transition, not per row, is most of what an attempt costs the journal."""
        if self._depth == 0:
            self.conn.execute("BEGIN")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.conn.execute("COMMIT")

    def _write(self, sql: str, args: Sequence[Any] = ()) -> int:
        cursor = self.conn.execute(sql, args)
        return cursor.lastrowid or 0

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, start: date, end: date, request: dict[str, Any]) -> int:
        run_id = self._write(
            "INSERT INTO runs (created_at, status, range_start, range_end, request)"
            " VALUES (?, 'running', ?, ?, ?)",
            (time.time(), start.isoformat(), end.isoformat(), json.dumps(request, sort_keys=True)),
        )
        self.event("run_started", run_id=run_id, start=start.isoformat(), end=end.isoformat())
        return run_id

    def end_run(self, run_id: int, status: str) -> None:
        self._write(
            "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?", (status, time.time(), run_id)
        )
        self.event("run_ended", run_id=run_id, status=status)

    def unfinished_run(self) -> RunRow | None:
        row = self.conn.execute(
            "SELECT id, created_at, status, range_start, range_end, request FROM runs"
            " WHERE status = 'running' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return RunRow(
            row[0],
            row[1],
            row[2],
            date.fromisoformat(row[3]),
            date.fromisoformat(row[4]),
            json.loads(row[5]),
        )

    # -- items ----------------------------------------------------------------------------

    def add_item(self, run_id: int, processor: str, phase: str, dates: Sequence[date]) -> int:
        with self.transaction():
            item_id = self._write(
                "INSERT INTO items (run_id, processor, phase, dates, state, updated_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                (run_id, processor, phase, json.dumps([d.isoformat() for d in dates]), time.time()),
            )
            self.conn.executemany(
                "INSERT INTO item_dates (item_id, processor, day) VALUES (?, ?, ?)",
                [(item_id, processor, d.isoformat()) for d in dates],
            )
        return item_id

    _ITEM_COLUMNS = (
        "id, run_id, processor, phase, dates, state, priority, attempts, not_before, reason"
    )

    def items(self, run_id: int) -> list[ItemRow]:
        rows = self.conn.execute(
            f"SELECT {self._ITEM_COLUMNS} FROM items WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [ItemRow(r[0], r[1], r[2], r[3], _dates(r[4]), *r[5:]) for r in rows]

    def item(self, item_id: int) -> ItemRow:
        r = self.conn.execute(
            f"SELECT {self._ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)
        ).fetchone()
        return ItemRow(r[0], r[1], r[2], r[3], _dates(r[4]), *r[5:])

    def update_item(self, item_id: int, **fields: Any) -> None:
        allowed = {"state", "priority", "attempts", "not_before", "reason", "dates"}
        assert set(fields) <= allowed, fields
        if "dates" in fields:
            dates = fields["dates"]
            fields["dates"] = json.dumps([d.isoformat() for d in dates])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.conn.execute(
                f"UPDATE items SET {sets}, updated_at = ? WHERE id = ?",
                (*fields.values(), time.time(), item_id),
            )
            if "dates" in fields:
                processor = self.conn.execute(
                    "SELECT processor FROM items WHERE id = ?", (item_id,)
                ).fetchone()[0]
                self.conn.execute("DELETE FROM item_dates WHERE item_id = ?", (item_id,))
                self.conn.executemany(
                    "INSERT INTO item_dates (item_id, processor, day) VALUES (?, ?, ?)",
                    [(item_id, processor, d.isoformat()) for d in dates],
                )

    def set_item_state(
        self, run_id: int | None, item_id: int, state: str, reason: str | None
    ) -> None:
        """A state transition and its event, in one transaction (one commit per transition)."""
        now = time.time()
        detail = json.dumps({"state": state, "reason": reason})
        with self.transaction():
            self.conn.execute(
                "UPDATE items SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (state, reason, now, item_id),
            )
            self.conn.execute(
                "INSERT INTO events (at, run_id, item_id, kind, detail)"
                " VALUES (?, ?, ?, 'item_state', ?)",
                (now, run_id, item_id, detail),
            )

    # -- attempts -------------------------------------------------------------------------

    def start_attempt(
        self, item_id: int, number: int, argv: Sequence[str], log_path: Path
    ) -> AttemptRow:
        started_at = time.time()
        attempt_id = self._write(
            "INSERT INTO attempts (item_id, number, argv, log_path, started_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (item_id, number, json.dumps(list(argv)), str(log_path), started_at),
        )
        # What was just written, without reading it back (once per attempt, thousands a run).
        return AttemptRow(
            attempt_id, item_id, number, tuple(argv), log_path, None, None, started_at,
            None, None, None, None, None, (),
        )  # fmt: skip

    def attempt_launched(self, attempt_id: int, pid: int, pgid: int, started_at: float) -> None:
        self._write(
            "UPDATE attempts SET pid = ?, pgid = ?, started_at = ? WHERE id = ?",
            (pid, pgid, started_at, attempt_id),
        )

    def end_attempt(
        self,
        attempt: AttemptRow,
        *,
        exit_code: int | None,
        reason: str,
        outcome: str,
        duration: float,
        tail: Iterable[str],
    ) -> AttemptRow:
        """Records the end; returns the attempt as now journaled."""
        ended = replace(
            attempt,
            ended_at=time.time(),
            exit_code=exit_code,
            reason=reason,
            outcome=outcome,
            duration=duration,
            tail=tuple(tail),
        )
        self._write(
            "UPDATE attempts SET ended_at = ?, exit_code = ?, reason = ?, outcome = ?,"
            " duration = ?, tail = ? WHERE id = ?",
            (
                ended.ended_at,
                exit_code,
                reason,
                outcome,
                duration,
                json.dumps(list(ended.tail)),
                attempt.id,
            ),
        )
        return ended

    _ATTEMPT_COLUMNS = (
        "id, item_id, number, argv, log_path, pid, pgid, started_at, ended_at, exit_code,"
        " reason, outcome, duration, tail"
    )

    def _attempts(self, where: str, args: Sequence[Any]) -> list[AttemptRow]:
        rows = self.conn.execute(
            f"SELECT {self._ATTEMPT_COLUMNS} FROM attempts WHERE {where}", args
        ).fetchall()
        return [
            AttemptRow(
                r[0],
                r[1],
                r[2],
                tuple(json.loads(r[3])),
                Path(r[4]),
                *r[5:13],
                tuple(json.loads(r[13])) if r[13] else (),
            )
            for r in rows
        ]

    def attempts_of_item(self, item_id: int) -> list[AttemptRow]:
        return self._attempts("item_id = ? ORDER BY number", (item_id,))

    def open_attempts(self, run_id: int) -> list[AttemptRow]:
        return self._attempts(
            "ended_at IS NULL AND item_id IN (SELECT id FROM items WHERE run_id = ?) ORDER BY id",
            (run_id,),
        )

    def attempts_for_cell(self, processor: str, day: date) -> list[AttemptRow]:
        """Every attempt, of any run, whose item covered that processor and date, oldest first."""
        return self._attempts(
            "item_id IN (SELECT item_id FROM item_dates WHERE processor = ? AND day = ?)"
            " ORDER BY started_at, id",
            (processor, day.isoformat()),
        )

    def durations(self, processor: str, limit: int = 50) -> list[tuple[float, int]]:
        """(seconds, dates) of the latest successful attempts of a processor, for ETAs."""
        rows = self.conn.execute(
            "SELECT a.duration, i.dates FROM attempts a JOIN items i ON i.id = a.item_id"
            " WHERE i.processor = ? AND a.outcome = 'ok' ORDER BY a.id DESC LIMIT ?",
            (processor, limit),
        ).fetchall()
        return [(duration, len(json.loads(dates))) for duration, dates in rows]

    def failed_cells(self, start: date, end: date) -> set[tuple[str, date]]:
        """Cells whose latest attempt failed: the coverage overlay that makes them 'failed'."""
        rows = self.conn.execute(
            """
            SELECT d.processor, d.day, a.outcome FROM item_dates d
            JOIN attempts a ON a.item_id = d.item_id
            WHERE d.day BETWEEN ? AND ? AND a.ended_at IS NOT NULL
            ORDER BY a.ended_at, a.id
            """,
            (start.isoformat(), end.isoformat()),
        ).fetchall()
        latest: dict[tuple[str, date], str] = {}
        for processor, day, outcome in rows:
            latest[processor, date.fromisoformat(day)] = outcome
        return {cell for cell, outcome in latest.items() if outcome in ("failed", "incomplete")}

    # -- last known coverage: shown at once while a slow warehouse refreshes ----------------

    def save_coverage(self, coverage: Coverage) -> None:
        cal = coverage.calendar
        payload = {
            "expected": {d.isoformat(): n for d, n in cal.expected.items()},
            "rows": {
                name: {d.isoformat(): n for d, n in per.items()}
                for name, per in coverage.rows.items()
            },
            "absent": sorted(coverage.absent_tables),
        }
        self._write(
            "INSERT OR REPLACE INTO coverage_cache VALUES (1, ?, ?, ?, ?)",
            (
                coverage.measured_at.isoformat(),
                cal.start.isoformat(),
                cal.end.isoformat(),
                json.dumps(payload),
            ),
        )

    def load_coverage(self, config: Config) -> Coverage | None:
        """The last refresh, if it covers this config's processors; else None."""
        row = self.conn.execute(
            "SELECT measured_at, range_start, range_end, payload FROM coverage_cache"
        ).fetchone()
        if row is None:
            return None
        payload = json.loads(row[3])
        if set(payload["rows"]) != {p.name for p in config.processors}:
            return None  # the config changed since: the cache would mislead
        calendar = ExpectedCalendar(
            date.fromisoformat(row[1]),
            date.fromisoformat(row[2]),
            {date.fromisoformat(d): n for d, n in payload["expected"].items()},
        )
        rows = {
            name: {date.fromisoformat(d): n for d, n in per.items()}
            for name, per in payload["rows"].items()
        }
        return assemble(
            config, calendar, rows, frozenset(payload["absent"]), datetime.fromisoformat(row[0])
        )

    # -- events ---------------------------------------------------------------------------

    def event(
        self, kind: str, *, run_id: int | None = None, item_id: int | None = None, **detail: Any
    ) -> None:
        self._write(
            "INSERT INTO events (at, run_id, item_id, kind, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), run_id, item_id, kind, json.dumps(detail, default=str)),
        )

    def events(self, run_id: int) -> list[tuple[float, int | None, str, dict[str, Any]]]:
        rows = self.conn.execute(
            "SELECT at, item_id, kind, detail FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [(at, item_id, kind, json.loads(detail)) for at, item_id, kind, detail in rows]
