"""The BigQuery warehouse: a refresh reads partition metadata where it can and counts the rest.

The seed's monitor ran a COUNT(DISTINCT) job per table and per refresh (20-30 s), each billed at
least 10 MB. Here a table partitioned by DAY on its date column (with no `where`) is read from
`INFORMATION_SCHEMA.PARTITIONS`, one query per dataset, re-reading only what changed since the
last refresh (partitions.py); the calendar, `where` processors and tables partitioned otherwise
are grouped counts, one UNION ALL job per location (a job reads the datasets of one location
only, and the seed has us-west2 beside US). Verification reads always count rows: the metadata
may lag a DELETE. The jobs run at once, their dates travel as query parameters, and dataset
locations and table shapes come from metadata (free), once. Table and column names were
validated as plain identifiers by the config and are backquoted; only `where` predicates
(trusted, from backfill.yaml) are pasted as written.

google-cloud-bigquery is imported when a client is first needed, so SQLite users and start-up
never pay for it. Every call here blocks: callers run it off their event loop (the engine and the
dashboard already do, for every warehouse).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from core.config.model import MIN_BYTES_BILLED
from core.errors import WarehouseError
from core.warehouse.base import Scan, ScanResult, TableCheck
from core.warehouse.bigquery.calls import Attempt, Bounds, Guards
from core.warehouse.bigquery.client import emulator_endpoint, make_client
from core.warehouse.bigquery.errors import explain, refusal, transient
from core.warehouse.bigquery.partitions import Partitions, Request, Shape, partitions_sql
from core.warehouse.bigquery.sql import range_params, union_sql

if TYPE_CHECKING:
    from google.cloud import bigquery

T = TypeVar("T")
MiB = 2**20


class BigQueryWarehouse:
    def __init__(
        self,
        project: str,
        *,
        location: str | None = None,
        api_endpoint: str | None = None,
        bounds: Bounds | None = None,
        guards: Guards | None = None,
    ) -> None:
        self.project = project
        #: where jobs that read none of the pipeline's datasets run (BigQuery's default: US)
        self.location = location
        self.api_endpoint = api_endpoint
        endpoint = emulator_endpoint(api_endpoint)
        self.description = f"bigquery {project}" + (f" at {endpoint}" if endpoint else "")
        self._client: bigquery.Client | None = None
        self._lock = threading.Lock()
        self.bounds = bounds or Bounds()
        self.guards = guards or Guards()
        #: the engine's run, when there is one: a label on every job it causes
        self.run_id: int | None = None
        #: tables seen to exist: tables are not dropped during a backfill, so only the ones
        #: still absent (outputs before their first run) are looked up again
        self._present: set[str] = set()
        #: datasets seen to exist
        self._datasets: set[str] = set()
        #: dataset -> its location, read once: a dataset cannot move
        self._locations: dict[str, str] = {}
        #: table -> how it is partitioned and typed, read once: a backfill does not reshape
        #: its tables
        self._shapes: dict[str, Shape] = {}
        #: rows per partition of the tables a refresh reads from metadata
        self.partitions = Partitions()

    # -- the client --------------------------------------------------------------------------

    def client(self) -> bigquery.Client:
        with self._lock:
            if self._client is None:
                # Built here, not in __init__: opening the dashboard imports no client library.
                self._client = make_client(
                    self.project,
                    self.api_endpoint,
                    quota_project=self.guards.quota_project,
                    impersonate=self.guards.impersonate,
                )
            return self._client

    def call(self, doing: str, call: Callable[[], T]) -> T:
        """`call()`, with whatever the client raises explained as a WarehouseError."""
        return self._call(doing, lambda _: call())

    def _call(self, doing: str, call: Callable[[Attempt], T], *, location: str | None = None) -> T:
        """`call(attempt)` under this warehouse's bounds, with whatever the client raises
        explained as a WarehouseError (`location`: where a job was sent)."""
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError
        from requests.exceptions import RequestException

        attempt = Attempt(self.bounds)
        try:
            return call(attempt)
        except (GoogleAPIError, GoogleAuthError, RequestException, OSError) as exc:
            # OSError: ConnectionError, and the TimeoutError of a job not done within `wait`
            raise explain(
                exc,
                doing,
                self.project,
                job_location=location,
                locations=self._locations,
                attempt=attempt,
            ) from None

    def query(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        doing: str,
        purpose: str = "query",
        location: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Rows of one query job, retried while BigQuery throttles. The job runs in `location`,
        else in that of the known dataset the SQL names, else in warehouse.location; `purpose`
        (coverage, verify, preflight) labels it."""
        config = self._job_config(purpose, query_parameters=list(params))
        client = self.client()
        where = location or self._location_for(sql)
        rows = self._call(
            doing,
            lambda attempt: list(
                client.query_and_wait(
                    sql,
                    job_config=config,
                    location=where,
                    project=self.guards.billing_project,
                    api_timeout=self.bounds.api,
                    wait_timeout=self.bounds.wait,
                    retry=attempt.retry(),
                    job_retry=attempt.job_retry(),
                )
            ),
            location=where,
        )
        return [tuple(row.values()) for row in rows]

    def _job_config(self, purpose: str, **settings: Any) -> bigquery.QueryJobConfig:
        """Every job capped, bounded and labelled: who ran it, for what, in which run."""
        from google.cloud import bigquery

        labels = {"app": "backfill", "purpose": purpose}
        if self.run_id is not None:
            labels["run_id"] = str(self.run_id)
        return bigquery.QueryJobConfig(
            maximum_bytes_billed=self.guards.maximum_bytes_billed,
            job_timeout_ms=round(self.bounds.job * 1000),
            labels=labels,
            **settings,
        )

    # -- locations ---------------------------------------------------------------------------

    def dataset_locations(self, datasets: set[str]) -> dict[str, str]:
        """Where each dataset is, from its metadata (an API call, not a job): once per dataset."""
        client = self.client()
        for dataset in sorted(datasets - self._locations.keys()):
            ref = f"{self.project}.{dataset}"

            def location(attempt: Attempt, ref: str = ref) -> str | None:
                got = client.get_dataset(ref, retry=attempt.retry(), timeout=self.bounds.api)
                found: str | None = got.location
                return found

            found = self._call(f"reading the location of {ref}", location)
            with self._lock:
                self._locations[dataset] = found or "US"  # BigQuery's own default
        return {d: self._locations[d] for d in datasets}

    def _location_for(self, sql: str) -> str | None:
        """The location of the datasets a trusted query names, when they share one;
        warehouse.location for a query naming none (`SELECT 1`); None (BigQuery finds out, and
        its error is explained) when they span locations."""
        named = self._named_datasets(sql)
        if not named:
            return self.location
        where = set(self.dataset_locations(named).values())
        return where.pop() if len(where) == 1 else None

    def _named_datasets(self, sql: str) -> set[str]:
        """The project's datasets a trusted piece of SQL names."""
        if not self._datasets:
            self._list_datasets()
        return {d for d in self._datasets if re.search(rf"(?<![\w-]){re.escape(d)}\.", sql)}

    def shapes(self, tables: set[str]) -> dict[str, Shape]:
        """How each existing table is partitioned and typed, from its metadata (an API call,
        not a job): once per table, the tables not yet read at once."""
        client = self.client()

        def read(table: str) -> None:
            ref = f"{self.project}.{table}"
            got = self._call(
                f"reading the metadata of {ref}",
                lambda attempt: client.get_table(
                    ref, retry=attempt.retry(), timeout=self.bounds.api
                ),
            )
            with self._lock:
                self._shapes[table] = Shape.of(got)

        _together([partial(read, table) for table in sorted(tables - self._shapes.keys())])
        return {table: self._shapes[table] for table in tables}

    def by_location(self, scans: Sequence[Scan]) -> dict[str, list[Scan]]:
        """Scans grouped by the location of their dataset, in a stable order."""
        where = self.dataset_locations({scan.dataset for scan in scans})
        groups: dict[str, list[Scan]] = {}
        for scan in scans:
            groups.setdefault(where[scan.dataset], []).append(scan)
        return dict(sorted(groups.items()))

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
            self._list_datasets()
        for dataset in sorted(datasets & self._datasets):
            ref = f"{self.project}.{dataset}"

            def table_ids(attempt: Attempt, ref: str = ref) -> list[str]:
                tables = client.list_tables(ref, retry=attempt.retry(), timeout=self.bounds.api)
                return [t.table_id for t in tables]

            listed = self._call(f"listing the tables of {ref}", table_ids)
            with self._lock:
                self._present.update(f"{dataset}.{name}" for name in listed)
        return tables & self._present

    def _list_datasets(self) -> None:
        client = self.client()
        found = self._call(
            f"listing the datasets of project {self.project}",
            lambda attempt: [
                d.dataset_id
                for d in client.list_datasets(retry=attempt.retry(), timeout=self.bounds.api)
            ],
        )
        with self._lock:
            self._datasets.update(found)

    def _countable(self, scans: Sequence[Scan]) -> list[Scan]:
        """The scans whose table exists; a project holding none of their datasets is an error
        (almost always the wrong project), not a warehouse where everything is missing."""
        present = self.existing_tables({scan.table for scan in scans})
        datasets = {scan.dataset for scan in scans}
        if datasets and not datasets & self._datasets:
            raise WarehouseError(
                f"none of the datasets {', '.join(sorted(datasets))} exists in project "
                f"{self.project}: check warehouse.project",
                transient=False,
            )
        return [scan for scan in scans if scan.table in present]

    def rows_per_date(
        self, scans: Sequence[Scan], start: date, end: date, *, purpose: str = "coverage"
    ) -> dict[Scan, ScanResult]:
        counted = self._countable(scans)
        results = {scan: ScanResult(table_exists=False) for scan in scans if scan not in counted}
        # A verification must see the rows as they are: the metadata may lag a DELETE.
        from_metadata = self._by_partition(counted) if purpose == "coverage" else []
        to_count = [scan for scan in counted if scan not in from_metadata]
        work: list[Callable[[], dict[Scan, ScanResult]]] = [
            partial(self._count, group, start, end, location, purpose)
            for location, group in self.by_location(to_count).items()
        ]
        work += [
            partial(self._read_partitions, group, start, end)
            for group in _by_dataset(from_metadata).values()
        ]
        for found in _together(work):
            results.update(found)
        for scan in to_count:
            if scan.where is None:
                self.partitions.counted(scan.table, start, end, results[scan].counts)
        return results

    def _by_partition(self, scans: Sequence[Scan]) -> list[Scan]:
        """The scans whose rows per date partition metadata gives exactly: no `where`, not the
        calendar, and a table partitioned by DAY on the scan's DATE column."""
        plain = [scan for scan in scans if scan.where is None and not scan.exact]
        shapes = self.shapes({scan.table for scan in plain})
        return [scan for scan in plain if shapes[scan.table].by_partition(scan.date_column)]

    def _read_partitions(self, scans: list[Scan], start: date, end: date) -> dict[Scan, ScanResult]:
        """The partitions of one dataset's tables, changed since the last read: one job, in the
        dataset's location (the view is scoped to it)."""
        dataset = scans[0].dataset
        request = self.partitions.request(dataset, {scan.table for scan in scans})
        rows = self.query(
            partitions_sql(self.project, dataset),
            request.params(),
            doing=f"reading the partitions of {len(request.tables)} tables of {dataset}",
            purpose="coverage",
            location=self.dataset_locations({dataset})[dataset],
        )
        self.partitions.absorb(request, rows)
        return {
            scan: ScanResult(counts=self.partitions.counts(scan.table, start, end))
            for scan in scans
        }

    def _count(
        self, scans: list[Scan], start: date, end: date, location: str, purpose: str
    ) -> dict[Scan, ScanResult]:
        """The grouped counts of scans whose datasets are all in `location`: one job."""
        counts: list[dict[date, int]] = [{} for _ in scans]
        for index, day, n in self.query(
            union_sql(self.project, scans),
            range_params(start, end),
            doing=f"counting rows per date in {len(scans)} tables in {location}",
            purpose=purpose,
            location=location,
        ):
            if not isinstance(day, date):
                scan = scans[index]
                raise WarehouseError(
                    f"{scan.table}.{scan.date_column} is {type(day).__name__}, not DATE",
                    transient=False,
                )
            counts[index][day] = counts[index].get(day, 0) + int(n)
        return {scan: ScanResult(counts=c) for scan, c in zip(scans, counts, strict=True)}

    def scan_bytes(self, scans: Sequence[Scan], start: date, end: date) -> int | None:
        """Bytes a refresh bills, None when nothing would run: what free dry runs say its jobs
        process, each raised to BigQuery's on-demand minimum of 10 MiB per table referenced (a
        partition metadata query bills that minimum once). A refresh re-reading only changed
        partitions bills the same: the minimum, not the rows returned, sets the price."""
        counted = self._countable(scans)
        from_metadata = self._by_partition(counted)
        to_count = [scan for scan in counted if scan not in from_metadata]
        work = [
            partial(
                self._dry_run,
                union_sql(self.project, group),
                range_params(start, end),
                location,
                len({scan.table for scan in group}),
            )
            for location, group in self.by_location(to_count).items()
        ]
        for dataset, group in _by_dataset(from_metadata).items():
            names = tuple(sorted({scan.table.split(".", 1)[1] for scan in group}))
            work.append(
                partial(
                    self._dry_run,
                    partitions_sql(self.project, dataset),
                    Request(dataset, names, names, None).params(),
                    self.dataset_locations({dataset})[dataset],
                    1,
                )
            )
        return sum(_together(work)) if work else None

    def _dry_run(self, sql: str, params: list[Any], location: str, tables: int) -> int:
        config = self._job_config(
            "coverage", dry_run=True, use_query_cache=False, query_parameters=params
        )
        client = self.client()
        job = self._call(
            f"estimating the bytes a refresh scans in {location}",
            lambda attempt: client.query(
                sql,
                job_config=config,
                location=location,
                project=self.guards.billing_project,
                retry=attempt.retry(),
                timeout=self.bounds.api,
            ),
            location=location,
        )
        processed = int(job.total_bytes_processed or 0)
        return max(-(-processed // MiB) * MiB, MIN_BYTES_BILLED * tables)

    # -- preflight ---------------------------------------------------------------------------

    def check_tables(self, scans: Sequence[Scan], start: date, end: date) -> dict[Scan, TableCheck]:
        """Each table's metadata read, then a dry run of its count over the range (both free),
        concurrently: a broken table is named with its reason, not lost in a failed UNION."""
        counted = self._countable(scans)
        results = {scan: TableCheck(exists=False) for scan in scans if scan not in counted}
        shapes = self.shapes({scan.table for scan in counted})
        now = datetime.now(UTC)

        def check(scan: Scan) -> tuple[Scan, TableCheck]:
            shape = shapes[scan.table]
            kept = shape.expiration_ms
            problem = self._shape_problem(scan, shape) or self._dry_run_problem(scan, start, end)
            keeps_from = (now - timedelta(milliseconds=kept)).date() if kept else None
            return scan, TableCheck(problem=problem, keeps_from=keeps_from)

        results.update(_together([partial(check, scan) for scan in counted]))
        return results

    def _shape_problem(self, scan: Scan, shape: Shape) -> str | None:
        """What the table's metadata already shows wrong (the emulator's dry runs check less)."""
        column = scan.date_column
        kind = shape.column_types.get(column)
        if kind is None:
            return f"no column {column} (its date_column)"
        if kind != "DATE":
            return f"wrong column type: {column} is {kind}, not DATE"
        if shape.partitioned_on not in (None, column):
            refused = (
                f", and BigQuery refuses any query without a filter over {shape.partitioned_on}"
                if shape.require_partition_filter
                else ""
            )
            return (
                f"partitioned on {shape.partitioned_on}, not on its date_column {column}: every "
                f"refresh would read the whole table{refused} (is date_column right?)"
            )
        if scan.where:
            home = self.dataset_locations({scan.dataset})[scan.dataset]
            named = self.dataset_locations(self._named_datasets(scan.where))
            elsewhere = sorted(f"{d} ({where})" for d, where in named.items() if where != home)
            if elsewhere:
                return (
                    f"location mismatch: its `where` reads {', '.join(elsewhere)} while "
                    f"{scan.dataset} is in {home}, and one job reads one location's datasets only"
                )
        return None

    def _dry_run_problem(self, scan: Scan, start: date, end: date) -> str | None:
        """Why BigQuery refuses the scan's count, found by a dry run in its dataset's location."""
        from google.api_core.exceptions import GoogleAPIError

        location = self.dataset_locations({scan.dataset})[scan.dataset]
        config = self._job_config(
            "preflight",
            dry_run=True,
            use_query_cache=False,
            query_parameters=range_params(start, end),
        )
        client = self.client()

        def dry_run(attempt: Attempt) -> GoogleAPIError | None:
            try:
                client.query(
                    union_sql(self.project, [scan]),
                    job_config=config,
                    location=location,
                    project=self.guards.billing_project,
                    retry=attempt.retry(),
                    timeout=self.bounds.api,
                )
            except GoogleAPIError as exc:
                if transient(exc):
                    raise  # throttled or BigQuery's own failure: explained as any call's
                return exc
            return None

        refused = self._call(f"dry-running a count of {scan.table}", dry_run, location=location)
        if refused is None:
            return None
        return refusal(refused, scan.date_column, job_location=location, locations=self._locations)

    def scalar(self, sql: str) -> object:
        rows = self.query(sql, doing="running a preflight query", purpose="preflight")
        return rows[0][0] if rows and rows[0] else None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                # google-cloud-bigquery leaves Client.close unannotated.
                self._client.close()  # type: ignore[no-untyped-call]
                self._client = None


def _together(work: Sequence[Callable[[], T]]) -> list[T]:
    """Every call, in threads when there are several (each waits on BigQuery while the others
    do); the first failure, in order, is raised."""
    if len(work) <= 1:
        return [call() for call in work]
    with ThreadPoolExecutor(min(len(work), 8), thread_name_prefix="bigquery") as pool:
        futures = [pool.submit(call) for call in work]
        return [future.result() for future in futures]


def _by_dataset(scans: Sequence[Scan]) -> dict[str, list[Scan]]:
    groups: dict[str, list[Scan]] = {}
    for scan in scans:
        groups.setdefault(scan.dataset, []).append(scan)
    return dict(sorted(groups.items()))
