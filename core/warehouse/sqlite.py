"""The embedded warehouse: a folder of SQLite files, one per dataset (see sqlite_layout)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from core.errors import UserError, WarehouseError
from core.warehouse import sqlite_layout
from core.warehouse.base import Scan, ScanResult, TableCheck


@dataclass
class _Reader:
    """One thread's open connection, and what it has learnt about the files behind it."""

    conn: sqlite3.Connection
    files: dict[str, tuple[int, int]]  # attached dataset -> (st_dev, st_ino) of its file
    thread: threading.Thread  # whose it is: when that thread has ended, it is closed
    tables: set[str] = field(default_factory=set)  # dataset.table seen to exist


class SqliteWarehouse:
    """Reads keep one connection open per thread, the dataset files attached: connecting and
    attaching cost more than the query a verification after each attempt asks for (see
    benchmarks/dispatch_overhead.py). Every read checks that the files are still the ones
    attached, so a file that appears later, or is replaced (a re-seeded demo), is read afresh.
    Threads come and go (a dashboard refresh runs in a new one): opening a connection closes
    those of threads that have ended, so they never pile up."""

    def __init__(self, folder: Path, *, label: str | None = None) -> None:
        self.folder = folder
        self.description = f"sqlite {label or folder}"
        self.run_id: int | None = None  # nothing to label: reads cost nothing here
        self._local = threading.local()
        self._readers: list[_Reader] = []  # every thread's, for close()
        self._lock = threading.Lock()

    def _reader(self, datasets: set[str]) -> _Reader:
        reader: _Reader | None = getattr(self._local, "reader", None)
        wanted = datasets | (reader.files.keys() if reader else set())
        files = {d: ident for d in wanted if (ident := _identity(self.folder, d)) is not None}
        if not files and not self.folder.is_dir():  # checked on every read, kept or not
            # transient: a folder away for a moment (remounted, replaced) may come back
            raise WarehouseError(
                f"warehouse folder {self.folder} does not exist "
                "(for the bundled demo run `backfill demo init`)",
                transient=True,
            )
        if reader is not None and files == reader.files:
            return reader
        if reader is not None:
            self._forget(reader)
        try:
            conn = sqlite_layout.connect(self.folder, files, readonly=True)
        except sqlite3.Error as exc:  # the files went away or are unreadable mid-way
            raise WarehouseError(
                f"warehouse folder {self.folder} cannot be read: {exc}", transient=True
            ) from None
        reader = _Reader(conn, files, threading.current_thread())
        with self._lock:
            ended = [r for r in self._readers if not r.thread.is_alive()]
            self._readers = [r for r in self._readers if r.thread.is_alive()] + [reader]
        for old in ended:
            old.conn.close()
        self._local.reader = reader
        return reader

    def _forget(self, reader: _Reader) -> None:
        with self._lock:
            if reader in self._readers:  # else close() took it already
                self._readers.remove(reader)
        self._local.reader = None
        reader.conn.close()

    def rows_per_date(
        self, scans: Sequence[Scan], start: date, end: date, *, purpose: str = "coverage"
    ) -> dict[Scan, ScanResult]:
        # One grouped query per table, each its own short read transaction (autocommit), so a
        # refresh never holds a snapshot open while jobs write.
        reader = self._reader({scan.dataset for scan in scans})
        results = {}
        for scan in scans:
            if scan.table not in reader.tables and not self._exists(reader, scan):
                results[scan] = ScanResult(table_exists=False)
                continue
            reader.tables.add(scan.table)
            where = f" AND ({scan.where})" if scan.where else ""
            sql = (
                f"SELECT {scan.date_column}, COUNT(*) FROM {scan.table}"
                f" WHERE {scan.date_column} BETWEEN ? AND ?{where}"
                f" GROUP BY {scan.date_column}"
            )
            try:
                rows = reader.conn.execute(sql, (start.isoformat(), end.isoformat())).fetchall()
            except sqlite3.Error as exc:
                reader.tables.discard(scan.table)
                if not self._exists(reader, scan):  # dropped since we last looked
                    results[scan] = ScanResult(table_exists=False)
                    continue
                raise WarehouseError(
                    f"query on {scan.table} failed: {exc} (SQL: {sql})", transient=False
                ) from None
            results[scan] = ScanResult(counts=_by_date(scan, rows))
        return results

    def _exists(self, reader: _Reader, scan: Scan) -> bool:
        dataset, table = scan.table.split(".", 1)
        try:
            return sqlite_layout.table_exists(reader.conn, dataset, table)
        except sqlite3.Error as exc:
            raise WarehouseError(f"reading {scan.table} failed: {exc}", transient=True) from None

    def scan_bytes(self, scans: Sequence[Scan], start: date, end: date) -> int | None:
        """Local files: a refresh costs nothing."""
        return None

    def check_tables(self, scans: Sequence[Scan], start: date, end: date) -> dict[Scan, TableCheck]:
        """Scanning costs nothing here, so one day is scanned: that is the surest check."""
        found = self.rows_per_date(scans, start, start, purpose="preflight")
        return {scan: TableCheck(exists=result.table_exists) for scan, result in found.items()}

    def scalar(self, sql: str) -> object:
        reader = self._reader(set(sqlite_layout.existing_datasets(self.folder)))
        try:
            row = reader.conn.execute(sql).fetchone()
        except sqlite3.Error as exc:
            raise WarehouseError(f"query failed: {exc}", transient=False) from None
        return None if row is None else row[0]

    def close(self) -> None:
        """Closes the connections of this thread and of threads that ended. Another thread's
        may be mid-query (a dashboard quitting while its coverage worker reads): closing it
        under that query crashed the process, so it is left to close when its thread ends."""
        me = threading.current_thread()
        with self._lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            if reader.thread is me or not reader.thread.is_alive():
                reader.conn.close()
        self._local = threading.local()


def _identity(folder: Path, dataset: str) -> tuple[int, int] | None:
    """Which file a dataset is right now (None: there is none)."""
    try:
        stat = sqlite_layout.dataset_file(folder, dataset).stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _by_date(scan: Scan, rows: list[tuple[object, int]]) -> dict[date, int]:
    counts: dict[date, int] = {}
    for value, count in rows:
        try:
            day = date.fromisoformat(str(value)[:10])
        except ValueError:
            raise UserError(
                f"{scan.table}.{scan.date_column} holds {value!r}, not an ISO date YYYY-MM-DD"
            ) from None
        counts[day] = counts.get(day, 0) + count
    return counts
