"""The BigQuery warehouse: every table of a refresh counted by ONE query job.

The seed's monitor ran a COUNT(DISTINCT) job per table and per refresh (20-30 s); here the grouped
counts of all tables and the calendar are one UNION ALL job whose dates travel as query
parameters. Table and column names were validated as plain identifiers by the config and are
backquoted; only `where` predicates (trusted, from backfill.yaml) are pasted as written.

google-cloud-bigquery is imported when a client is first needed, so SQLite users and start-up
never pay for it. Every call here blocks: callers run it off their event loop (the engine and the
dashboard already do, for every warehouse).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import WarehouseError
from core.warehouse.base import Scan, ScanResult
from core.warehouse.bigquery.client import emulator_endpoint, make_client
from core.warehouse.bigquery.errors import RETRY_DEADLINE_S, explain, make_retry
from core.warehouse.bigquery.sql import range_params, union_sql

if TYPE_CHECKING:
    from google.cloud import bigquery

T = TypeVar("T")


class BigQueryWarehouse:
    def __init__(
        self,
        project: str,
        *,
        location: str | None = None,
        api_endpoint: str | None = None,
        retry_deadline: float = RETRY_DEADLINE_S,
    ) -> None:
        self.project = project
        self.location = location
        self.api_endpoint = api_endpoint
        endpoint = emulator_endpoint(api_endpoint)
        self.description = f"bigquery {project}" + (f" at {endpoint}" if endpoint else "")
        self._client: bigquery.Client | None = None
        self._lock = threading.Lock()
        self._retry_deadline = retry_deadline
        self._retry: Any = None
        self._job_retry: Any = None
        #: tables seen to exist: tables are not dropped during a backfill, so only the ones
        #: still absent (outputs before their first run) are looked up again
        self._present: set[str] = set()
        #: datasets seen to exist
        self._datasets: set[str] = set()

    # -- the client --------------------------------------------------------------------------

    def client(self) -> bigquery.Client:
        with self._lock:
            if self._client is None:
                # Built here, not in __init__: opening the dashboard imports no client library.
                self._retry = make_retry(self._retry_deadline)
                # a query job that fails is retried as a new job: room for a few of those
                self._job_retry = make_retry(2 * self._retry_deadline)
                self._client = make_client(self.project, self.location, self.api_endpoint)
            return self._client

    def call(self, doing: str, call: Callable[[], T]) -> T:
        """`call()`, with whatever the client raises explained as a WarehouseError."""
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError
        from requests.exceptions import RequestException

        try:
            return call()
        except (GoogleAPIError, GoogleAuthError, RequestException, ConnectionError) as exc:
            raise explain(exc, doing, self.project) from None

    def query(self, sql: str, params: Sequence[Any] = (), *, doing: str) -> list[tuple[Any, ...]]:
        """Rows of one query job, retried while BigQuery throttles."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=list(params))
        client = self.client()
        rows = self.call(
            doing,
            lambda: list(
                client.query_and_wait(
                    sql,
                    job_config=config,
                    location=self.location,
                    retry=self._retry,
                    job_retry=self._job_retry,
                )
            ),
        )
        return [tuple(row.values()) for row in rows]

    # -- the protocol ------------------------------------------------------------------------

    def existing_tables(self, tables: set[str]) -> set[str]:
        """Which `dataset.table` names exist. Listings (API calls, not query jobs) are made only
        while some table is unknown: the project's datasets, then each dataset's tables."""
        unknown = tables - self._present
        datasets = {t.split(".", 1)[0] for t in unknown}
        if not datasets:
            return tables & self._present
        client = self.client()
        if datasets - self._datasets:
            found = self.call(
                f"listing the datasets of project {self.project}",
                lambda: [d.dataset_id for d in client.list_datasets(retry=self._retry)],
            )
            with self._lock:
                self._datasets.update(found)
        for dataset in sorted(datasets & self._datasets):
            ref = f"{self.project}.{dataset}"

            def table_ids(ref: str = ref) -> list[str]:
                return [t.table_id for t in client.list_tables(ref, retry=self._retry)]

            listed = self.call(f"listing the tables of {ref}", table_ids)
            with self._lock:
                self._present.update(f"{dataset}.{name}" for name in listed)
        return tables & self._present

    def _countable(self, scans: Sequence[Scan]) -> list[Scan]:
        """The scans whose table exists; a project holding none of their datasets is an error
        (almost always the wrong project), not a warehouse where everything is missing."""
        present = self.existing_tables({scan.table for scan in scans})
        datasets = {scan.dataset for scan in scans}
        if datasets and not datasets & self._datasets:
            raise WarehouseError(
                f"none of the datasets {', '.join(sorted(datasets))} exists in project "
                f"{self.project}: check warehouse.project (and location)",
                transient=False,
            )
        return [scan for scan in scans if scan.table in present]

    def rows_per_date(
        self, scans: Sequence[Scan], start: date, end: date
    ) -> dict[Scan, ScanResult]:
        counted = self._countable(scans)
        results = {scan: ScanResult(table_exists=False) for scan in scans if scan not in counted}
        if not counted:
            return results
        counts: list[dict[date, int]] = [{} for _ in counted]
        for index, day, n in self.query(
            union_sql(self.project, counted),
            range_params(start, end),
            doing=f"counting rows per date in {len(counted)} tables",
        ):
            if not isinstance(day, date):
                scan = counted[index]
                raise WarehouseError(
                    f"{scan.table}.{scan.date_column} is {type(day).__name__}, not DATE",
                    transient=False,
                )
            counts[index][day] = counts[index].get(day, 0) + int(n)
        results.update(
            {scan: ScanResult(counts=c) for scan, c in zip(counted, counts, strict=True)}
        )
        return results

    def scan_bytes(self, scans: Sequence[Scan], start: date, end: date) -> int | None:
        """Bytes the refresh query would scan (a free dry run), None when nothing would run."""
        from google.cloud import bigquery

        counted = self._countable(scans)
        if not counted:
            return None
        config = bigquery.QueryJobConfig(
            dry_run=True, use_query_cache=False, query_parameters=range_params(start, end)
        )
        client = self.client()
        job = self.call(
            "estimating the bytes a refresh scans",
            lambda: client.query(
                union_sql(self.project, counted),
                job_config=config,
                location=self.location,
                retry=self._retry,
            ),
        )
        return int(job.total_bytes_processed or 0)

    def scalar(self, sql: str) -> object:
        rows = self.query(sql, doing="running a preflight query")
        return rows[0][0] if rows and rows[0] else None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                # google-cloud-bigquery leaves Client.close unannotated.
                self._client.close()  # type: ignore[no-untyped-call]
                self._client = None
