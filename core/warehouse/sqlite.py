"""The embedded warehouse: a folder of SQLite files, one per dataset (see sqlite_layout)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from core.errors import UserError
from core.warehouse import sqlite_layout
from core.warehouse.base import Scan, ScanResult


class SqliteWarehouse:
    def __init__(self, folder: Path, *, label: str | None = None) -> None:
        self.folder = folder
        self.description = f"sqlite {label or folder}"

    def _connect(self, datasets: set[str]) -> sqlite3.Connection:
        if not self.folder.is_dir():
            raise UserError(
                f"warehouse folder {self.folder} does not exist "
                "(for the bundled demo run `backfill demo init`)"
            )
        try:
            return sqlite_layout.connect(self.folder, datasets, readonly=True)
        except sqlite3.Error as exc:  # the files went away or are unreadable mid-way
            raise UserError(f"warehouse folder {self.folder} cannot be read: {exc}") from None

    def rows_per_date(
        self, scans: Sequence[Scan], start: date, end: date
    ) -> dict[Scan, ScanResult]:
        # One grouped query per table, each its own short read transaction (autocommit), so a
        # refresh never holds a snapshot open while jobs write.
        conn = self._connect({scan.dataset for scan in scans})
        try:
            results = {}
            for scan in scans:
                dataset, table = scan.table.split(".", 1)
                try:
                    exists = sqlite_layout.table_exists(conn, dataset, table)
                except sqlite3.Error as exc:
                    raise UserError(f"reading {scan.table} failed: {exc}") from None
                if not exists:
                    results[scan] = ScanResult(table_exists=False)
                    continue
                where = f" AND ({scan.where})" if scan.where else ""
                sql = (
                    f"SELECT {scan.date_column}, COUNT(*) FROM {scan.table}"
                    f" WHERE {scan.date_column} BETWEEN ? AND ?{where}"
                    f" GROUP BY {scan.date_column}"
                )
                try:
                    rows = conn.execute(sql, (start.isoformat(), end.isoformat())).fetchall()
                except sqlite3.Error as exc:
                    raise UserError(f"query on {scan.table} failed: {exc} (SQL: {sql})") from None
                results[scan] = ScanResult(counts=_by_date(scan, rows))
            return results
        finally:
            conn.close()

    def scan_bytes(self, scans: Sequence[Scan], start: date, end: date) -> int | None:
        """Local files: a refresh costs nothing."""
        return None

    def scalar(self, sql: str) -> object:
        conn = self._connect(set(sqlite_layout.existing_datasets(self.folder)))
        try:
            row = conn.execute(sql).fetchone()
        except sqlite3.Error as exc:
            raise UserError(f"query failed: {exc}") from None
        finally:
            conn.close()
        return None if row is None else row[0]

    def close(self) -> None:
        """Nothing is held open between refreshes."""


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
