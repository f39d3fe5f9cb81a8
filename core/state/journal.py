"""Durable engine state under state_dir: runs, work items, attempts, events (SQLite, WAL).

Every transition is committed before the engine acts on it, so after a crash (even `kill -9`) the
next engine knows what was running, which process to adopt and what is already done.

Each thread has its own connection, opened on its first use: a thread reads only what is
committed, plus its own open transaction, never another thread's half-done one.

A full disk loses no transition: a write SQLite refuses with SQLITE_FULL ("database or disk is
full") is kept, in order, with every later one behind it, and `flush()` writes them all in one
transaction once there is room. Meanwhile `waiting` says how many wait, so the engine starts
nothing new (an attempt's start needs its row id, which a kept write does not have yet) while
the running attempts go on and their ends are kept. Nothing sleeps or retries in here: the
engine's event loop calls `flush()` now and then, and a write that fails does so at once.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from core.calendar import ExpectedCalendar
from core.config import Config
from core.coverage import Coverage, assemble
from core.errors import UserError
from core.state import statedir
from core.state.migrations import LATEST, migrate, user_version

JOURNAL_FILE = "journal.sqlite"
BUSY_TIMEOUT_MS = 10_000
#: how long close() waits for another thread's statement (a read takes milliseconds)
CLOSE_WAIT_S = 5.0

# What SQLite says of a file that is not (or no longer) a whole database.
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class JournalFull(UserError):
    """A write that cannot wait for space (it needs its row id) found the disk full."""


class _Write(NamedTuple):
    sql: str
    args: Sequence[Any]  # the rows, for `many`
    many: bool = False


@dataclass(frozen=True)
class RunRow:
    id: int
    created_at: float
    status: str
    start: date
    end: date
    request: dict[str, Any]
    ended_at: float | None = None


@dataclass(frozen=True)
class ItemRow:
    id: int
    run_id: int
    processor: str
    phase: str
    dates: tuple[date, ...]
    state: str
    attempts: int
    not_before: float
    reason: str | None


@dataclass(frozen=True)
class KnownEmptyRow:
    processor: str
    day: date
    reason: str
    #: who marked it (`Who.describe()`)
    who: str
    at: float


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
    #: when the kernel started its process (clock ticks since boot); None: unknown
    start_ticks: int | None = None
    #: processes of it still running once it ended, which the engine ended; None: not ended
    leftovers: int | None = None
    #: the `executor: kind` that ran it (local | ray | cloud_run)
    executor: str = "local"
    #: the executor's name for it (a Ray submission id, ...); None for a local process
    remote_ref: str | None = None

    @property
    def where(self) -> str:
        """The executor that ran it, with its name for the attempt if it has one."""
        return self.executor if self.remote_ref is None else f"{self.executor} {self.remote_ref}"

    @property
    def leftovers_note(self) -> str:
        """What follows the attempt's outcome where it left processes (" · ended 3 ...")."""
        return ended_leftovers(self.leftovers)


def ended_leftovers(count: int | None) -> str:
    """What follows an attempt's outcome when the engine had to end processes it left."""
    if not count:
        return ""
    return f" · ended {count} leftover process{'' if count == 1 else 'es'}"


@dataclass
class _Connection:
    """One thread's connection, and how deep its transaction() blocks are nested."""

    conn: sqlite3.Connection
    thread: threading.Thread  # whose it is: once that thread has ended, it is closed
    #: held by its thread for each statement: close() from another thread waits for it, as
    #: closing a connection under a running query kills the process (SIGSEGV)
    busy: threading.Lock = field(default_factory=threading.Lock)
    depth: int = 0
    #: the writes of the open transaction: kept, should its commit find the disk full
    writes: list[_Write] = field(default_factory=list)
    #: the open transaction writes nothing now: its writes join those waiting for space
    deferred: bool = False


_RUN_COLUMNS = "id, created_at, status, range_start, range_end, request, ended_at"
_ITEM_COLUMNS = "i.id, i.run_id, i.processor, i.phase, i.state, i.attempts, i.not_before, i.reason"
_ATTEMPT_COLUMNS = (
    "id, item_id, number, argv, log_path, pid, pgid, started_at, ended_at, exit_code,"
    " reason, outcome, duration, tail, start_ticks, leftovers, executor, remote_ref"
)


class Journal:
    def __init__(self, state_dir: Path, *, read_only: bool = False) -> None:
        """`read_only`: never writes the file, not even to migrate it (SQLite opens it
        `mode=ro` and `query_only`); it must exist."""
        self.path = state_dir / JOURNAL_FILE
        self.read_only = read_only
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _connections, which threads of any kind open
        self._connections: list[_Connection] = []
        self._closed = False
        #: writes a full disk refused, oldest first, for `flush()`
        self._waiting: list[_Write] = []
        #: what SQLite said when it first refused a write that now waits
        self.full: str | None = None
        self._immutable = False
        if not read_only:
            statedir.ensure(state_dir)
            statedir.require_writable(state_dir)
            statedir.create_file(self.path)
            if not statedir.writable(self.path):
                denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
                raise statedir.cannot(self.path, "write", denied)
        try:
            conn = self._connection().conn
            if read_only:
                _refuse_other_version(self.path, user_version(conn))
            else:
                migrate(conn, self.path)
            info = os.stat(self.path)
        except sqlite3.DatabaseError as exc:
            self.close()
            damaged = self._damaged(exc)
            if damaged is None:
                raise
            raise damaged from None
        except BaseException:
            self.close()
            raise
        #: which file this journal writes: `vanished()` compares the path with it
        self._identity = (info.st_dev, info.st_ino)

    @classmethod
    def open_if_exists(cls, state_dir: Path) -> Journal | None:
        """For readers (status, logs): no journal yet means no run ever happened. One that
        this user cannot write (a read-only file system, say) is read without writing."""
        path = state_dir / JOURNAL_FILE
        try:
            path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise statedir.cannot(state_dir, "read", exc) from None
        writable = statedir.writable(state_dir) and statedir.writable(path)
        return cls(state_dir, read_only=not writable)

    def vanished(self) -> str | None:
        """Why the file at `path` is no longer the one this journal writes (deleted, or
        replaced by another), if it is not: a cheap stat, for the engine to ask now and then.
        An engine writing on to a deleted file loses every transition since to all readers."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return f"{self.path} was deleted"
        except OSError:
            return None  # cannot tell from here: the next write will say what is wrong
        if (info.st_dev, info.st_ino) != self._identity:
            return f"{self.path} was replaced by another file"
        return None

    @property
    def waiting(self) -> int:
        """Writes that wait for space (a full disk), to be written by `flush()`."""
        return len(self._waiting)

    def flush(self) -> bool:
        """Write what waits for space, in one transaction; True when nothing waits any more.
        Costs a failed write when the disk is still full."""
        if not self._waiting:
            return True
        connection = self._connection()
        if connection.depth:
            return False  # inside one of this thread's transactions: the next call
        pending = list(self._waiting)
        try:
            self._execute("BEGIN IMMEDIATE")
            try:
                with connection.busy:
                    for write in pending:
                        _do(connection.conn, write)
            except BaseException:
                self._rollback(connection)
                raise
            self._end(connection, "COMMIT")
        except sqlite3.DatabaseError as exc:
            if _is_full(exc):
                return False
            raise UserError(
                f"{self.path}: {len(pending)} writes kept while the disk was full could not be "
                f"written ({exc}); the next run re-checks their cells in the warehouse"
            ) from None
        del self._waiting[: len(pending)]
        if not self._waiting:
            self.full = None
        return not self._waiting

    def close(self) -> None:
        """Closes every thread's connection (one open in a transaction rolls back); another
        thread's statement is waited for (a few seconds at most: a connection still busy then
        is left to its thread, which gets ProgrammingError on its next call)."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._closed = True
            # From now on no thread starts a statement: each finds its connection gone.
            self._local = threading.local()
        # The idle ones first: an open transaction among them may hold the write lock that a
        # busy thread's statement waits on. Then the busy ones, all within one deadline.
        busy = [c for c in connections if not self._close_when_free(c, timeout=0)]
        deadline = time.monotonic() + CLOSE_WAIT_S
        for connection in busy:
            self._close_when_free(connection, timeout=max(0.0, deadline - time.monotonic()))

    @staticmethod
    def _close_when_free(connection: _Connection, *, timeout: float) -> bool:
        if not connection.busy.acquire(timeout=timeout):
            return False
        try:
            connection.conn.close()
        finally:
            connection.busy.release()
        return True

    @property
    def conn(self) -> sqlite3.Connection:
        """The calling thread's connection: for a look at the raw tables (tests, benchmarks)."""
        return self._connection().conn

    # -- connections ----------------------------------------------------------------------

    def _connection(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if self._closed:
            raise sqlite3.ProgrammingError(f"journal {self.path} is closed")
        conn = self._open_read_only() if self.read_only else self._open()
        connection = _Connection(conn, threading.current_thread())
        # Threads come and go (a dashboard refresh, a worker pool): the connections of those
        # that have ended are closed here, so they never pile up.
        with self._lock:
            closed = self._closed  # meanwhile, by another thread: this one is not kept
            if closed:
                stale = [connection]
            else:
                stale = [c for c in self._connections if not c.thread.is_alive()]
                self._connections = [c for c in self._connections if c.thread.is_alive()]
                self._connections.append(connection)
                self._local.connection = connection
        for old in stale:
            old.conn.close()
        if closed:
            raise sqlite3.ProgrammingError(f"journal {self.path} is closed")
        return connection

    def _open(self) -> sqlite3.Connection:
        # check_same_thread is off only so that close() and the sweep below can close another
        # thread's connection; each is used by its own thread alone, reached via self._local.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a crash of this process (kill -9); only an OS crash
            # can lose the last transactions, and coverage in the warehouse remains the truth.
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """`mode=ro`. A WAL journal closed cleanly has no -wal and -shm files, which a reader
        must create: where it cannot (a read-only file system) the file alone is the whole
        journal, and SQLite reads it as immutable."""
        try:
            return self._connect_read_only("immutable=1" if self._immutable else "mode=ro")
        except sqlite3.OperationalError as exc:
            wal = self.path.with_name(self.path.name + "-wal")
            if exc.sqlite_errorcode != sqlite3.SQLITE_CANTOPEN or wal.exists():
                raise
        self._immutable = True
        return self._connect_read_only("immutable=1")

    def _connect_read_only(self, how: str) -> sqlite3.Connection:
        uri = f"{self.path.absolute().as_uri()}?{how}"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            conn.execute("PRAGMA query_only = 1")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the WAL
        except BaseException:
            conn.close()
            raise
        return conn

    def _damaged(self, exc: sqlite3.DatabaseError) -> UserError | None:
        """A damaged file is the user's to deal with: one line naming it, not a traceback."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in _DAMAGED:
            return None
        return UserError(
            f"{self.path} is damaged ({exc}); move it aside to start afresh — run history "
            f"and logs in {self.path.parent / 'logs'} stay"
        )

    # A plain try/except, not a context manager: this runs a dozen times per attempt.
    def _execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        connection = self._connection()
        try:
            with connection.busy:
                return connection.conn.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            damaged = self._damaged(exc)
            if damaged is None:
                raise
            raise damaged from None

    def _write(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._put(_Write(sql, args))

    def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._put(_Write(sql, list(rows), many=True))

    def _insert(self, sql: str, args: Sequence[Any]) -> int:
        """A write whose row id the caller needs: it cannot wait for space."""
        connection = self._connection()
        if connection.deferred if connection.depth else self._waiting:
            raise JournalFull(f"{self.path}: cannot write ({self.full}): free some space")
        return self._put(_Write(sql, args))

    def _put(self, write: _Write) -> int:
        """Write now, or keep it (in order) while the disk is full; the row id, 0 if kept."""
        connection = self._connection()
        if connection.depth:
            connection.writes.append(write)
            if connection.deferred:
                return 0
        elif self._waiting:
            self._waiting.append(write)
            return 0
        try:
            with connection.busy:
                return _do(connection.conn, write)
        except sqlite3.DatabaseError as exc:
            if not _is_full(exc):
                damaged = self._damaged(exc)
                if damaged is None:
                    raise
                raise damaged from None
            self.full = self.full or str(exc)
            if connection.depth:
                # SQLite may have undone the whole transaction or only this statement: undo
                # it all, and keep the rest of it, this write included, to write later.
                self._rollback(connection)
                connection.deferred = True
            else:
                self._waiting.append(write)
            return 0

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        connection = self._connection()
        try:  # rows are read (and found damaged) while fetching, too
            with connection.busy:
                return connection.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            damaged = self._damaged(exc)
            if damaged is None:
                raise
            raise damaged from None

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    def transaction(self) -> _Transaction:
        """Writes inside commit together, or not at all; nested, the outermost one commits.
        One commit per transition, not per row, is most of what an attempt costs the journal.

        The write lock is taken at the start (IMMEDIATE): with one connection per thread, a
        transaction that read first and wrote later could find another thread's commit in
        between and fail at once instead of waiting for the lock."""
        return _Transaction(self)

    def _begin(self) -> _Connection:
        connection = self._connection()
        if connection.depth == 0:
            connection.writes = []
            # Behind writes that wait for space, this one waits too: their order is kept.
            connection.deferred = bool(self._waiting)
            if not connection.deferred:
                self._execute("BEGIN IMMEDIATE")
        connection.depth += 1
        return connection

    def _finish(self, connection: _Connection, failed: bool) -> None:
        connection.depth -= 1
        if connection.depth:
            return
        if not failed:
            self._commit(connection)
            return
        connection.writes = []
        if not connection.deferred:
            self._end(connection, "ROLLBACK")

    def _commit(self, connection: _Connection) -> None:
        writes, connection.writes = connection.writes, []
        if not connection.deferred:
            try:
                self._end(connection, "COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                self.full = self.full or str(exc)
        # Written again as it was: the engine is the only writer (it holds the state_dir) and
        # nothing of it is written before these, so each insert gets the row id it had.
        self._waiting.extend(writes)

    def _end(self, connection: _Connection, statement: str) -> None:
        try:
            self._execute(statement)
        except BaseException:
            # Never leave the connection inside a transaction the next BEGIN would trip on.
            with contextlib.suppress(sqlite3.Error):
                self._rollback(connection)
            raise

    @staticmethod
    def _rollback(connection: _Connection) -> None:
        with connection.busy:
            if connection.conn.in_transaction:
                connection.conn.execute("ROLLBACK")

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, start: date, end: date, request: dict[str, Any]) -> int:
        with self.transaction():
            run_id = self._insert(
                "INSERT INTO runs (created_at, status, range_start, range_end, request)"
                " VALUES (?, 'running', ?, ?, ?)",
                (
                    time.time(),
                    start.isoformat(),
                    end.isoformat(),
                    json.dumps(request, sort_keys=True),
                ),
            )
            self.event("run_started", run_id=run_id, start=start.isoformat(), end=end.isoformat())
        return run_id

    def start_run_with_items(
        self,
        start: date,
        end: date,
        request: dict[str, Any],
        items: Sequence[tuple[str, str, Sequence[date]]],
    ) -> tuple[int, list[int]]:
        """The run and its whole plan in one commit: a crash never leaves a run with part of
        its items. Returns the run's id and the items' ids, in the order given."""
        with self.transaction():
            run_id = self.start_run(start, end, request)
            return run_id, self.add_items(run_id, items)

    def end_run(self, run_id: int, status: str) -> None:
        with self.transaction():
            self._write(
                "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?",
                (status, time.time(), run_id),
            )
            self.event("run_ended", run_id=run_id, status=status)

    def unfinished_run(self) -> RunRow | None:
        row = self._one(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE status = 'running' ORDER BY id DESC LIMIT 1"
        )
        return None if row is None else _run(row)

    def runs(self, limit: int = 50) -> list[RunRow]:
        """The latest runs, newest first."""
        rows = self._all(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [_run(row) for row in rows]

    def run_cells(self, run_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Per run: its cells (processor-dates) per item state."""
        marks = ",".join("?" * len(run_ids))
        rows = self._all(
            f"""
            SELECT i.run_id, i.state, COUNT(*) FROM items i JOIN item_dates d ON d.item_id = i.id
            WHERE i.run_id IN ({marks}) GROUP BY i.run_id, i.state
            """,
            tuple(run_ids),
        )
        cells: dict[int, dict[str, int]] = {}
        for run_id, state, count in rows:
            cells.setdefault(run_id, {})[state] = count
        return cells

    def run_starters(self, run_ids: Sequence[int]) -> dict[int, str]:
        """Per run: who started it, as its preflight record says (runs from before it did say
        are left out)."""
        marks = ",".join("?" * len(run_ids))
        rows = self._all(
            f"SELECT run_id, detail FROM events WHERE kind = 'preflight' AND run_id IN ({marks})",
            tuple(run_ids),
        )
        starters = {}
        for run_id, detail in rows:
            by = json.loads(detail).get("by")
            if isinstance(by, str):
                starters[run_id] = by
        return starters

    # -- items ----------------------------------------------------------------------------

    def add_items(self, run_id: int, items: Sequence[tuple[str, str, Sequence[date]]]) -> list[int]:
        """(processor, phase, dates) items of a run, pending, in one commit; their ids in the
        order given."""
        if not items:
            return []
        now = time.time()
        with self.transaction():
            # Ids are chosen here, not left to SQLite, so that they are known without reading
            # them back; no other connection can insert meanwhile: transaction() holds the
            # write lock. Items kept for a full disk are not in the table yet: no ids then.
            if self._connection().deferred:
                raise JournalFull(f"{self.path}: cannot write ({self.full}): free some space")
            first = self._one("SELECT COALESCE(MAX(id), 0) + 1 FROM items")[0]
            ids = list(range(first, first + len(items)))
            self._write_many(
                "INSERT INTO items (id, run_id, processor, phase, state, updated_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                [
                    (item_id, run_id, processor, phase, now)
                    for item_id, (processor, phase, _) in zip(ids, items, strict=True)
                ],
            )
            self._write_many(
                "INSERT INTO item_dates (item_id, processor, day) VALUES (?, ?, ?)",
                [
                    (item_id, processor, day.isoformat())
                    for item_id, (processor, _, dates) in zip(ids, items, strict=True)
                    for day in dates
                ],
            )
        return ids

    def items(self, run_id: int) -> list[ItemRow]:
        """Every item of a run with its dates, in id order: one query, one snapshot."""
        return _items(
            self._all(
                f"SELECT {_ITEM_COLUMNS}, d.day FROM items i"
                " LEFT JOIN item_dates d ON d.item_id = i.id"
                " WHERE i.run_id = ? ORDER BY i.id, d.day",
                (run_id,),
            )
        )

    def item(self, item_id: int) -> ItemRow:
        rows = _items(
            self._all(
                f"SELECT {_ITEM_COLUMNS}, d.day FROM items i"
                " LEFT JOIN item_dates d ON d.item_id = i.id"
                " WHERE i.id = ? ORDER BY d.day",
                (item_id,),
            )
        )
        if not rows:
            raise KeyError(f"no item {item_id} in {self.path}")
        return rows[0]

    def update_item(self, item_id: int, **fields: Any) -> None:
        """Sets any of state, attempts, not_before, reason and dates (which rewrites the
        item's cells in item_dates)."""
        unknown = set(fields) - {"state", "attempts", "not_before", "reason", "dates"}
        if unknown:
            raise TypeError(f"update_item: no such field {', '.join(sorted(unknown))}")
        dates: Sequence[date] | None = fields.pop("dates", None)
        sets = "".join(f"{name} = ?, " for name in fields)
        with self.transaction():
            self._write(
                f"UPDATE items SET {sets}updated_at = ? WHERE id = ?",
                (*fields.values(), time.time(), item_id),
            )
            if dates is not None:
                processor = self._one("SELECT processor FROM items WHERE id = ?", (item_id,))[0]
                self._write("DELETE FROM item_dates WHERE item_id = ?", (item_id,))
                self._write_many(
                    "INSERT INTO item_dates (item_id, processor, day) VALUES (?, ?, ?)",
                    [(item_id, processor, day.isoformat()) for day in dates],
                )

    def set_item_state(
        self, run_id: int | None, item_id: int, state: str, reason: str | None
    ) -> None:
        """A state transition and its event, in one transaction (one commit per transition)."""
        now = time.time()
        detail = _state_detail(state, reason)
        with self.transaction():
            self._write(
                "UPDATE items SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (state, reason, now, item_id),
            )
            self._write(
                "INSERT INTO events (at, run_id, item_id, kind, detail)"
                " VALUES (?, ?, ?, 'item_state', ?)",
                (now, run_id, item_id, detail),
            )

    # -- attempts -------------------------------------------------------------------------

    def start_attempt(
        self,
        item_id: int,
        number: int,
        argv: Sequence[str],
        log_path: Path,
        *,
        executor: str = "local",
        remote_ref: str | None = None,
    ) -> AttemptRow:
        """Journaled before the executor starts it: a `remote_ref` known in advance (a
        deterministic job id) is on disk before the job can exist."""
        started_at = time.time()
        attempt_id = self._insert(
            "INSERT INTO attempts (item_id, number, argv, log_path, started_at, executor,"
            " remote_ref) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                item_id, number, json.dumps(list(argv)), str(log_path), started_at, executor,
                remote_ref,
            ),
        )  # fmt: skip
        # What was just written, without reading it back (once per attempt, thousands a run).
        return AttemptRow(
            attempt_id, item_id, number, tuple(argv), log_path, None, None, started_at,
            None, None, None, None, None, (), executor=executor, remote_ref=remote_ref,
        )  # fmt: skip

    def attempt_launched(
        self, attempt_id: int, pid: int, pgid: int, started_at: float, start_ticks: int | None
    ) -> None:
        self._write(
            "UPDATE attempts SET pid = ?, pgid = ?, started_at = ?, start_ticks = ? WHERE id = ?",
            (pid, pgid, started_at, start_ticks, attempt_id),
        )

    def attempt_named(
        self, attempt_id: int, remote_ref: str, *, started_at: float | None = None
    ) -> None:
        """The executor's name for the attempt (and when it started, once it has)."""
        self._write(
            "UPDATE attempts SET remote_ref = ?, started_at = COALESCE(?, started_at) WHERE id = ?",
            (remote_ref, started_at, attempt_id),
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
        leftovers: int = 0,
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
            leftovers=leftovers,
        )
        self._write(
            "UPDATE attempts SET ended_at = ?, exit_code = ?, reason = ?, outcome = ?,"
            " duration = ?, tail = ?, leftovers = ? WHERE id = ?",
            (
                ended.ended_at,
                exit_code,
                reason,
                outcome,
                duration,
                json.dumps(list(ended.tail)),
                leftovers,
                attempt.id,
            ),
        )
        return ended

    def _attempts(self, where: str, args: Sequence[Any]) -> list[AttemptRow]:
        return [
            _attempt(row)
            for row in self._all(f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE {where}", args)
        ]

    def attempts_of_item(self, item_id: int) -> list[AttemptRow]:
        return self._attempts("item_id = ? ORDER BY number", (item_id,))

    def last_attempts(self, run_id: int) -> dict[int, AttemptRow]:
        """item id -> its latest attempt, for every item of the run that has one."""
        attempts = self._attempts(
            "id IN (SELECT MAX(a.id) FROM attempts a JOIN items i ON i.id = a.item_id"
            " WHERE i.run_id = ? GROUP BY a.item_id)",
            (run_id,),
        )
        return {attempt.item_id: attempt for attempt in attempts}

    def attempt_time(self, run_id: int, now: float) -> dict[str, tuple[int, float]]:
        """phase -> (attempts, seconds they ran, an open one until `now`) over the run."""
        rows = self._all(
            "SELECT i.phase, COUNT(*), SUM(MAX(0, COALESCE(a.ended_at, ?) - a.started_at))"
            " FROM attempts a JOIN items i ON i.id = a.item_id WHERE i.run_id = ?"
            " GROUP BY i.phase",
            (now, run_id),
        )
        return {phase: (count, seconds or 0.0) for phase, count, seconds in rows}

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
        rows = self._all(
            "SELECT a.duration, (SELECT COUNT(*) FROM item_dates d WHERE d.item_id = a.item_id)"
            " FROM attempts a JOIN items i ON i.id = a.item_id"
            " WHERE i.processor = ? AND a.outcome = 'ok' ORDER BY a.id DESC LIMIT ?",
            (processor, limit),
        )
        return [(duration, dates) for duration, dates in rows]

    def failed_cells(self, start: date, end: date) -> set[tuple[str, date]]:
        """Cells whose latest attempt failed: the coverage overlay that makes them 'failed'."""
        return set(self._failed_attempt_ids(start, end))

    def latest_outcomes(self, start: date, end: date) -> dict[tuple[str, date], str]:
        """Cell -> the outcome of its latest ended attempt, in any run (one read: a dashboard
        draws failed and cancelled cells from it)."""
        return {cell: outcome for cell, (_, outcome) in self._latest_attempts(start, end).items()}

    def failed_attempts(self, start: date, end: date) -> dict[tuple[str, date], AttemptRow]:
        """Cells whose latest attempt failed (or left the cell incomplete), with that attempt,
        in any run: what is still to retry after every restart."""
        failed = self._failed_attempt_ids(start, end)
        attempts: dict[int, AttemptRow] = {}
        ids = sorted(set(failed.values()))
        for at in range(0, len(ids), 500):  # SQLite caps the parameters of one statement
            chunk = ids[at : at + 500]
            marks = ",".join("?" * len(chunk))
            attempts |= {a.id: a for a in self._attempts(f"id IN ({marks})", chunk)}
        return {cell: attempts[attempt_id] for cell, attempt_id in failed.items()}

    def _failed_attempt_ids(self, start: date, end: date) -> dict[tuple[str, date], int]:
        """Cell -> the id of its latest attempt, for the cells where that attempt failed. The
        attempts themselves (tails and all) are read only by who needs them."""
        return {
            cell: attempt_id
            for cell, (attempt_id, outcome) in self._latest_attempts(start, end).items()
            if outcome in ("failed", "incomplete")
        }

    def _latest_attempts(self, start: date, end: date) -> dict[tuple[str, date], tuple[int, str]]:
        """Cell -> (id, outcome) of its latest ended attempt, in any run."""
        rows = self._all(
            """
            SELECT d.processor, d.day, a.id, a.outcome FROM item_dates d
            JOIN attempts a ON a.item_id = d.item_id
            WHERE d.day BETWEEN ? AND ? AND a.ended_at IS NOT NULL
            ORDER BY a.ended_at, a.id
            """,
            (start.isoformat(), end.isoformat()),
        )
        latest: dict[tuple[str, date], tuple[int, str]] = {}
        for processor, day, attempt_id, outcome in rows:
            latest[processor, date.fromisoformat(day)] = (attempt_id, outcome)
        return latest

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
        row = self._one("SELECT measured_at, range_start, range_end, payload FROM coverage_cache")
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
        coverage = assemble(
            config, calendar, rows, frozenset(payload["absent"]), datetime.fromisoformat(row[0])
        )
        return coverage.with_known_empty(self.known_empty_cells(calendar.start, calendar.end))

    # -- known-empty cells ----------------------------------------------------------------

    def mark_known_empty(
        self, processor: str, days: Iterable[date], reason: str, who: str, *, run_id: int | None
    ) -> int:
        """Journal these cells as known empty (again: the new reason replaces the old one);
        returns how many."""
        days = sorted(set(days))
        now = time.time()
        with self.transaction():
            self._write_many(
                "INSERT OR REPLACE INTO known_empty (processor, day, reason, who, at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(processor, d.isoformat(), reason, who, now) for d in days],
            )
            self.event(
                "known_empty",
                run_id=run_id,
                processor=processor,
                dates=[d.isoformat() for d in days],
                reason=reason,
                who=who,
            )
        return len(days)

    def unmark_known_empty(
        self, processor: str, days: Iterable[date], who: str, *, run_id: int | None
    ) -> int:
        """Undo: these cells are judged by their rows again; returns how many were marked."""
        wanted = {d.isoformat() for d in days}
        with self.transaction():
            held = self._all("SELECT day FROM known_empty WHERE processor = ?", (processor,))
            marked = sorted(day for (day,) in held if day in wanted)
            self._write_many(
                "DELETE FROM known_empty WHERE processor = ? AND day = ?",
                [(processor, d) for d in marked],
            )
            self.event(
                "known_empty_undone",
                run_id=run_id,
                processor=processor,
                dates=marked,
                who=who,
            )
        return len(marked)

    def known_empty(self, start: date, end: date) -> list[KnownEmptyRow]:
        rows = self._all(
            "SELECT processor, day, reason, who, at FROM known_empty WHERE day BETWEEN ? AND ?"
            " ORDER BY processor, day",
            (start.isoformat(), end.isoformat()),
        )
        return [KnownEmptyRow(p, date.fromisoformat(d), r, w, at) for p, d, r, w, at in rows]

    def known_empty_cells(self, start: date, end: date) -> frozenset[tuple[str, date]]:
        return frozenset((row.processor, row.day) for row in self.known_empty(start, end))

    # -- events ---------------------------------------------------------------------------

    def event(
        self, kind: str, *, run_id: int | None = None, item_id: int | None = None, **detail: Any
    ) -> None:
        self._write(
            "INSERT INTO events (at, run_id, item_id, kind, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), run_id, item_id, kind, json.dumps(detail, default=str)),
        )

    def events(self, run_id: int) -> list[tuple[float, int | None, str, dict[str, Any]]]:
        rows = self._all(
            "SELECT at, item_id, kind, detail FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [(at, item_id, kind, json.loads(detail)) for at, item_id, kind, detail in rows]

    def latest_event(self, run_id: int) -> tuple[float, str, dict[str, Any]] | None:
        """The run's latest event other than an item's state change (there are thousands of
        those): what `backfill status` shows as "last"."""
        # Nor a notification's outcome: that a message went out is not what the run did.
        row = self._one(
            "SELECT at, kind, detail FROM events WHERE run_id = ? AND kind != 'item_state'"
            " AND kind NOT LIKE 'notify\\_%' ESCAPE '\\' ORDER BY id DESC LIMIT 1",
            (run_id,),
        )
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def events_of(self, run_id: int, kinds: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """(kind, detail) of the run's events of these kinds, oldest first."""
        marks = ", ".join("?" * len(kinds))
        rows = self._all(
            f"SELECT kind, detail FROM events WHERE run_id = ? AND kind IN ({marks}) ORDER BY id",
            (run_id, *kinds),
        )
        return [(kind, json.loads(detail)) for kind, detail in rows]


class _Transaction:
    """`Journal.transaction()`: a plain context manager, not a generator one, which cost a
    few microseconds more on each of the several transactions an attempt opens."""

    __slots__ = ("_connection", "_journal")

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def __enter__(self) -> None:
        self._connection = self._journal._begin()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._journal._finish(self._connection, failed=kind is not None)


@functools.lru_cache(maxsize=256)
def _state_detail(state: str, reason: str | None) -> str:
    """An item_state event's detail: the same few, thousands of times a run."""
    return json.dumps({"state": state, "reason": reason})


def _run(row: Sequence[Any]) -> RunRow:
    return RunRow(
        row[0],
        row[1],
        row[2],
        date.fromisoformat(row[3]),
        date.fromisoformat(row[4]),
        json.loads(row[5]),
        row[6],
    )


def _items(rows: Iterable[Sequence[Any]]) -> list[ItemRow]:
    """Items from rows of (item columns..., day), one per date (day NULL: an item without
    dates), ordered by item and day."""
    items: list[ItemRow] = []
    current: Sequence[Any] | None = None
    days: list[date] = []
    for row in rows:
        if current is None or row[0] != current[0]:
            if current is not None:
                items.append(_item(current, days))
            current, days = row, []
        if row[8] is not None:
            days.append(date.fromisoformat(row[8]))
    if current is not None:
        items.append(_item(current, days))
    return items


def _item(row: Sequence[Any], days: list[date]) -> ItemRow:
    return ItemRow(row[0], row[1], row[2], row[3], tuple(days), *row[4:8])


def _attempt(r: Sequence[Any]) -> AttemptRow:
    return AttemptRow(
        id=r[0],
        item_id=r[1],
        number=r[2],
        argv=tuple(json.loads(r[3])),
        log_path=Path(r[4]),
        pid=r[5],
        pgid=r[6],
        started_at=r[7],
        ended_at=r[8],
        exit_code=r[9],
        reason=r[10],
        outcome=r[11],
        duration=r[12],
        tail=tuple(json.loads(r[13])) if r[13] else (),
        start_ticks=r[14],
        leftovers=r[15],
        executor=r[16],
        remote_ref=r[17],
    )


def _do(conn: sqlite3.Connection, write: _Write) -> int:
    if write.many:
        conn.executemany(write.sql, write.args)
        return 0
    return conn.execute(write.sql, write.args).lastrowid or 0


def _is_full(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL: the disk (or the file system's quota) has no room for the write."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_FULL


def _refuse_other_version(path: Path, version: int) -> None:
    """A reader that may not write cannot migrate: it reads the latest schema only."""
    if version > LATEST:
        raise UserError(
            f"{path}: journal schema version {version} is newer than this backfill knows "
            f"({LATEST}); use a newer backfill"
        )
    if version < LATEST:
        raise UserError(
            f"{path}: journal schema version {version} is older than this backfill's "
            f"({LATEST}) and cannot be upgraded read-only: open it once where it can be written"
        )
