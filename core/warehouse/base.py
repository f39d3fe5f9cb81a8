"""What the engine needs from a warehouse, whatever it is: row counts per date, in one pass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol


@dataclass(frozen=True)
class Scan:
    """Rows per date of one table over a range: `SELECT date, COUNT(*) ... GROUP BY date`."""

    table: str  # dataset.table, validated as plain identifiers by the config
    date_column: str
    where: str | None = None  # trusted SQL predicate from backfill.yaml
    #: rows counted, never taken from partition metadata: the calendar, whose dates every
    #: verdict rests on
    exact: bool = False

    @property
    def dataset(self) -> str:
        return self.table.split(".", 1)[0]


@dataclass(frozen=True)
class ScanResult:
    counts: dict[date, int] = field(default_factory=dict)
    table_exists: bool = True


@dataclass(frozen=True)
class TableCheck:
    """What a free look at one scan's table says, before any refresh bills."""

    exists: bool = True
    #: why scanning it would fail (the table and the reason are what an operator acts on)
    problem: str | None = None
    #: partition expiration deletes the partitions of dates before this one
    keeps_from: date | None = None


class Warehouse(Protocol):
    #: Shown to the operator, e.g. "sqlite .backfill/warehouse".
    description: str
    #: The engine's run once it has one; a warehouse that labels its jobs (BigQuery) names it.
    run_id: int | None

    def rows_per_date(
        self, scans: Sequence[Scan], start: date, end: date, *, purpose: str = "coverage"
    ) -> dict[Scan, ScanResult]:
        """Counts for every scan between start and end inclusive. A table that does not exist
        yet (an output table before its first run) gives `table_exists=False`, not an error.
        `purpose` (coverage, verify, preflight) is what the read is for: BigQuery labels its
        jobs with it."""
        ...

    def scan_bytes(self, scans: Sequence[Scan], start: date, end: date) -> int | None:
        """What `rows_per_date` would bill, in bytes (BigQuery: dry runs, with its minimum per
        table); None where scanning costs nothing or nothing would be scanned."""
        ...

    def check_tables(self, scans: Sequence[Scan], start: date, end: date) -> dict[Scan, TableCheck]:
        """Whether each scan's table exists and a scan of it over the range would work, found
        without running one (BigQuery: metadata and dry runs, both free)."""
        ...

    def scalar(self, sql: str) -> object:
        """The first column of the first row of a trusted query (preflight `query` checks)."""
        ...

    def close(self) -> None: ...


def describe_scan_cost(scan_bytes: int | None) -> str:
    """What one coverage refresh costs, for the status line and reports."""
    if scan_bytes is None:
        return "no scan cost"
    size, unit = float(scan_bytes), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    shown = f"{size:.0f}" if unit == "B" else f"{size:.1f}"
    return f"a refresh bills {shown} {unit}"
