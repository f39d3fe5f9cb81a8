"""Rows per date from partition metadata, kept between refreshes.

A table partitioned by DAY on the scan's date column holds one partition per date, and
`INFORMATION_SCHEMA.PARTITIONS` says how many rows each holds: a refresh reads that (one query per
dataset, billed at BigQuery's 10 MB minimum for INFORMATION_SCHEMA) instead of counting rows
(10 MB per table at least, and more once a table outgrows it). Later refreshes in the process
re-read only partitions modified since the last read.

BigQuery's documentation warns that `last_modified_time` may not move when rows are deleted, so
every dataset is read whole again after `full_every`, and counts of verification reads (which
always count rows) replace what the metadata said.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.cloud import bigquery

#: a DAY partition's id; the others (`__NULL__`, `__UNPARTITIONED__`: rows still in the
#: streaming buffer) hold no date
_DAY_ID = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


@dataclass(frozen=True)
class Shape:
    """What a table's metadata (free) says about how it can be read, read once per table."""

    #: the column of a DAY time partitioning; None for other partitionings and none at all
    day_partitioned_on: str | None
    #: any partitioning's column (DAY, HOUR, MONTH, YEAR, or an integer range)
    partitioned_on: str | None
    column_types: Mapping[str, str]
    expiration_ms: int | None
    require_partition_filter: bool

    @classmethod
    def of(cls, table: bigquery.Table) -> Shape:
        time = table.time_partitioning
        ranged = table.range_partitioning
        column = time.field if time is not None else ranged.field if ranged is not None else None
        return cls(
            day_partitioned_on=time.field if time is not None and time.type_ == "DAY" else None,
            partitioned_on=column,
            column_types={f.name: f.field_type for f in table.schema},
            expiration_ms=time.expiration_ms if time is not None else None,
            require_partition_filter=bool(table.require_partition_filter),
        )

    def by_partition(self, date_column: str) -> bool:
        """One partition per date of `date_column`: its metadata counts the rows of each date."""
        return (
            self.day_partitioned_on == date_column and self.column_types.get(date_column) == "DATE"
        )


def partitions_sql(project: str, dataset: str) -> str:
    """Partitions of the `@tables` of one dataset: all of those `@unread`, and of the others the
    ones modified after `@since` (NULL: none)."""
    return (
        "SELECT table_name, partition_id, total_rows, last_modified_time "
        f"FROM `{project}.{dataset}.INFORMATION_SCHEMA.PARTITIONS` "
        "WHERE table_name IN UNNEST(@tables) "
        "AND (table_name IN UNNEST(@unread) OR last_modified_time > @since)"
    )


@dataclass(frozen=True)
class Request:
    """One dataset's partitions to read: which tables, which of them whole, modified since when."""

    dataset: str
    tables: tuple[str, ...]  # table names, without the dataset
    unread: tuple[str, ...]
    since: datetime | None

    def params(self) -> list[Any]:
        from google.cloud import bigquery

        return [
            bigquery.ArrayQueryParameter("tables", "STRING", list(self.tables)),
            bigquery.ArrayQueryParameter("unread", "STRING", list(self.unread)),
            bigquery.ScalarQueryParameter("since", "TIMESTAMP", self.since),
        ]


class Partitions:
    """table -> date -> (rows, last modified) of day-partitioned tables, and per dataset the latest
    modification seen (BigQuery's clock, not ours)."""

    def __init__(
        self,
        *,
        overlap: timedelta = timedelta(minutes=1),
        full_every: timedelta = timedelta(minutes=10),
    ) -> None:
        #: partitions modified this long before the latest one seen are read again: a write
        #: committed just before a read may show in the metadata only after it
        self.overlap = overlap
        #: a dataset is read whole again this often (deleted rows may leave no modification)
        self.full_every = full_every
        self._lock = threading.Lock()
        self._rows: dict[str, dict[date, tuple[int, datetime | None]]] = {}
        self._latest: dict[str, datetime] = {}
        self._full_at: dict[str, datetime] = {}
        #: partitions the last read of each dataset returned (what an incremental read saves)
        self.returned: dict[str, int] = {}

    def request(self, dataset: str, tables: Iterable[str]) -> Request:
        names = tuple(sorted({t.split(".", 1)[1] for t in tables}))
        now = datetime.now(UTC)
        with self._lock:
            latest = self._latest.get(dataset)
            full_at = self._full_at.get(dataset)
            # No partition seen yet (a dataset of empty tables): read whole, it holds nothing
            # to re-read, and there is no modification time of BigQuery's to start from.
            if latest is None or full_at is None or now - full_at >= self.full_every:
                return Request(dataset, names, names, None)
            unread = tuple(n for n in names if f"{dataset}.{n}" not in self._rows)
            return Request(dataset, names, unread, latest - self.overlap)

    def absorb(self, request: Request, rows: Iterable[tuple[Any, ...]]) -> None:
        """The answer to `request`: unread tables replaced whole, changed partitions updated."""
        fresh: dict[str, dict[date, tuple[int, datetime | None]]] = {
            f"{request.dataset}.{name}": {} for name in request.unread
        }
        changed: list[tuple[str, date, int, datetime | None]] = []
        latest = None
        returned = 0
        for name, partition, total, modified in rows:
            returned += 1
            if modified is not None:
                latest = modified if latest is None else max(latest, modified)
            day = _day(partition)
            if day is None:
                continue
            table = f"{request.dataset}.{name}"
            if table in fresh:
                fresh[table][day] = (int(total or 0), modified)
            else:
                changed.append((table, day, int(total or 0), modified))
        with self._lock:
            self._rows.update(fresh)
            for table, day, total, modified in changed:
                self._rows.setdefault(table, {})[day] = (total, modified)
            if latest is not None:
                seen = self._latest.get(request.dataset)
                self._latest[request.dataset] = latest if seen is None else max(seen, latest)
            if request.since is None:
                self._full_at[request.dataset] = datetime.now(UTC)
            self.returned[request.dataset] = returned

    def counts(self, table: str, start: date, end: date) -> dict[date, int]:
        with self._lock:
            known = self._rows.get(table, {})
            return {d: n for d, (n, _) in known.items() if start <= d <= end and n}

    def counted(self, table: str, start: date, end: date, counts: Mapping[date, int]) -> None:
        """Rows counted over [start, end] (a verification) replace what the metadata said, so a
        DELETE the metadata has not caught up with stays seen."""
        with self._lock:
            known = self._rows.get(table)
            if known is None:
                return
            for day in [d for d in known if start <= d <= end and d not in counts]:
                known[day] = (0, known[day][1])
            for day, n in counts.items():
                known[day] = (n, known.get(day, (0, None))[1])


def _day(partition_id: object) -> date | None:
    match = _DAY_ID.match(str(partition_id or ""))
    if match is None:
        return None
    year, month, day = (int(part) for part in match.groups())
    return date(year, month, day)
