"""The shape of backfill.yaml (version 1). Key names are a contract (DESIGN.md); types are strict so
that a quoted number or a list of numbers is reported, not coerced."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
)

from core.config.values import parse_date, parse_duration

IsoDate = Annotated[date, BeforeValidator(parse_date)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
# Names that end up inside SQL are restricted to plain identifiers so they can be interpolated
# safely on every warehouse; values travel as query parameters.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
TableName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
]
Share = Annotated[float, Field(ge=0, le=1)]
# YAML gives lists; strict mode would refuse them for tuples. Items stay strict.
Names = Annotated[tuple[Name, ...], Field(strict=False)]
Argv = Annotated[tuple[str, ...], Field(strict=False, min_length=1)]

Patterns = Annotated[tuple[str, ...], Field(strict=False)]

#: BigQuery's short-term limits and server-side hiccups: retrying soon, more slowly, succeeds.
#: HTTP codes count only as a status (`exceptions.X: 503`, `Error 503`, `"code": 503`), so
#: "429 players" is not one.
RATE_PATTERNS: tuple[str, ...] = (
    r"rateLimitExceeded",
    r"Exceeded rate limits",
    r"Could not serialize access to table .* due to concurrent update",
    r"Too many DML statements outstanding against table",
    r"\bbackendError\b",
    r"\binternalError\b",
    r"(?:exceptions\.\w+|\berror|\bstatus(?: code)?|\bcode|\bhttp/[\d.]+)"
    r"[\"':=\s]{1,4}(?:429|5\d\d)\b",
    r"\b(?:429|5\d\d) (?:Too Many Requests|Internal Server Error|Bad Gateway|Service Unavailable"
    r"|Gateway Time-?out)",
    r"Connection reset|ConnectionResetError|Connection aborted",
)
#: BigQuery's longer-term quotas (per table per day, custom quotas): "wait 10 minutes or more"
DAILY_PATTERNS: tuple[str, ...] = (
    r"\bquota ?exceeded\b",
    r"\bexceeded quota for\b",
    r"\bexceeded the custom quota\b",
)
#: errors no wait mends: permissions, locations, SQL that does not fit the table, the cost cap
FATAL_PATTERNS: tuple[str, ...] = (
    r"\baccess ?denied\b",
    r"not found in location",
    r"that can be used for partition elimination",
    r"\bUnrecognized name\b",
    r"bytesBilledLimitExceeded|exceeded limit for bytes billed",
)

PLACEHOLDERS = ("start", "end", "dates", "python", "config")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


#: mutating DML statements BigQuery runs at once per table (more queue, past 20 they fail)
BIGQUERY_WRITERS = 2

#: BigQuery's on-demand minimum per table a query references
MIN_BYTES_BILLED = 10 * 2**20


class Timeouts(Spec):
    """Bounds of every BigQuery call: without them the client waits forever on a hung job."""

    job: Seconds = 600  # BigQuery itself cancels a query job running longer (job_timeout_ms)
    wait: Seconds = 600  # a query's result, retries included, is waited for this long at most
    api: Seconds = 60  # one HTTP request unanswered this long is abandoned (and maybe retried)
    connect: Seconds = 10  # an unreachable BigQuery (refused, reset, DNS) is retried this long


class Warehouse(Spec):
    kind: Literal["sqlite", "bigquery"] = "sqlite"
    # the simulated NBA data: SQLite seeds itself on first use, `backfill demo init` seeds either
    demo: bool = False
    # sqlite
    path: str | None = None
    # bigquery
    project: str | None = None
    location: str | None = None
    api_endpoint: str | None = None
    retry_deadline: Seconds = 120.0  # how long throttled or failing calls are retried
    timeouts: Timeouts = Timeouts()
    #: a query job that would bill more fails instead (bytesBilledLimitExceeded); BigQuery
    #: bills at least 10 MiB per table referenced, so a smaller cap would refuse every job
    maximum_bytes_billed: Annotated[int, Field(ge=MIN_BYTES_BILLED)] = 2**30
    billing_project: str | None = None  # jobs run (and are billed) there; tables stay in project
    quota_project: str | None = None  # the project whose API quota the calls use
    impersonate: str | None = None  # a service account email the credentials act as

    @property
    def label(self) -> str:
        """Where the data is, in a few words: `sqlite .backfill/warehouse`, `bigquery proj`."""
        return f"{self.kind} {(self.path if self.kind == 'sqlite' else self.project) or ''}".strip()


class LocalExecutor(Spec):
    """Each attempt a subprocess of this machine, in its own process group (and cgroup)."""

    kind: Literal["local"] = "local"


class RayExecutor(Spec):
    """Each attempt a Ray job on the cluster whose Jobs API (the dashboard's) is at `address`."""

    kind: Literal["ray"]
    address: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    #: the job's working directory (its runtime env's working_dir); None: the config's folder
    cwd: str | None = None
    #: what one attempt needs of the cluster, as Ray names it (CPU, GPU, memory, custom ones)
    resources: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    #: the environment variable holding the cluster's token: the token itself is never written
    #: in the file, so it reaches neither the journal nor an error message
    token_env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None


class CloudRunExecutor(Spec):
    """Each attempt an execution of the processor's Cloud Run Job (its `cloud_run: job`)."""

    kind: Literal["cloud_run"]
    project: str
    region: Annotated[str, StringConstraints(pattern=r"^[a-z]+-[a-z]+[0-9]+$")]
    #: where the Cloud Run (and Cloud Logging) APIs are when not at Google: a local server
    #: standing in for them, called with anonymous credentials (as `warehouse.api_endpoint`)
    api_endpoint: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    #: Cloud Logging's, where it is not `api_endpoint` too
    logging_endpoint: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None


Executor = Annotated[LocalExecutor | RayExecutor | CloudRunExecutor, Field(discriminator="kind")]
#: the executors this version can run attempts with (the others are parsed and refused)
AVAILABLE_EXECUTORS = ("local", "ray", "cloud_run")


class CloudRunJob(Spec):
    """How a processor maps onto an existing Cloud Run Job: the job's name, and from which item
    of the processor's rendered `command` on the argv becomes the execution's `--args` (the items
    before it, such as `{python} -m jobs.x`, are the job's image's own entrypoint)."""

    job: Annotated[str, StringConstraints(pattern=r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")]
    args_from: Annotated[int, Field(ge=0)] = 1


class ExpectedDates(Spec):
    table: TableName
    date_column: Identifier
    where: str | None = None


class Season(Spec):
    name: str
    start: IsoDate
    end: IsoDate


class Calendar(Spec):
    start: IsoDate
    end: IsoDate | Literal["today", "yesterday"]
    expected_dates: ExpectedDates | None = None
    seasons: Annotated[tuple[Season, ...], Field(strict=False)] = ()

    def end_date(self, today: date) -> date:
        if self.end == "today":
            return today
        if self.end == "yesterday":
            return today - timedelta(days=1)
        return self.end

    def season_of(self, day: date) -> Season | None:
        return next((s for s in self.seasons if s.start <= day <= s.end), None)


class Gate(Spec):
    min_coverage: Share


class ShareOf(Spec):
    processor: Name
    share: Annotated[float, Field(gt=0, le=10)]


class Processor(Spec):
    name: Name
    table: TableName
    date_column: Identifier
    depends_on: Names = ()
    command: Argv | None = None
    chunk_days: Annotated[int, Field(ge=1)] = 1
    # Completeness: every rule given must hold. Rows > 0 that fall short make the date partial.
    min_rows: Annotated[int, Field(ge=1)] = 1
    min_rows_per_calendar_row: Annotated[float, Field(gt=0)] | None = None
    min_share_of: ShareOf | None = None
    timeout: Seconds = 6 * 3600
    stall_timeout: Seconds | None = 600
    #: cancelling, a timeout or a stall: SIGTERM to the attempt's process group, this long to
    #: exit, then SIGKILL
    kill_grace: Seconds = 10
    retries: Annotated[int, Field(ge=0)] = 2
    #: first retry waits this long, then twice as long each time (with jitter)
    retry_backoff: Seconds = 30
    # Throttling tiers: regexes (case-insensitive) searched in the last 64 KiB of a failed or
    # incomplete attempt's log. The latest matching line decides; on one line fatal beats daily
    # beats rate (a bytes-billed refusal comes as a "500"). Giving a list replaces its defaults.
    #: rate tier: the phase cools down and runs fewer at a time, escalating on repeats
    transient_patterns: Patterns = RATE_PATTERNS
    #: daily tier: the processor's table writers pause for the phase's quota_pause; the item
    #: waits it out without spending a retry
    daily_quota_patterns: Patterns = DAILY_PATTERNS
    #: never transient: the item fails at once, no retries
    fatal_patterns: Patterns = FATAL_PATTERNS
    #: attempts writing this processor's table at once, over every processor writing it;
    #: unset: 2 on BigQuery (two mutating DML statements per table run, 20 wait, more fail),
    #: none on SQLite; null: no cap
    max_writers: Annotated[int, Field(ge=1)] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    #: the Cloud Run Job that runs this processor where its phase's executor is cloud_run
    cloud_run: CloudRunJob | None = None

    @property
    def is_source(self) -> bool:
        return self.command is None

    @property
    def dataset(self) -> str:
        return self.table.split(".", 1)[0]


class Phase(Spec):
    name: Name
    title: str | None = None
    max_parallel: Annotated[int, Field(ge=1)] = 1
    bootstrap_days: Annotated[int, Field(ge=0)] = 0
    gate: Gate | None = None
    #: after a rate-tier throttling error: no new dispatch in the phase for this long (twice
    #: as long for each repeat before it recovered, up to 16 times)
    cooldown: Seconds = 60
    #: after a daily-quota error: the processors writing that table start nothing for this long
    quota_pause: Annotated[Seconds, Field(gt=0)] = 900
    processors: Annotated[tuple[Processor, ...], Field(strict=False, min_length=1)]
    #: where this phase's attempts run, if not where the top-level `executor:` says
    executor: Executor | None = None

    @property
    def label(self) -> str:
        return self.title or self.name


class CheckSpec(Spec):
    name: str
    severity: Literal["fail", "warn", "info"] = "fail"
    quick: bool = True
    timeout: Seconds = 60


class CoverageCheck(CheckSpec):
    kind: Literal["coverage"]
    phase: Name | None = None
    processor: Name | None = None
    min_coverage: Share
    start: IsoDate | None = None
    end: IsoDate | None = None


class QueryCheck(CheckSpec):
    kind: Literal["query"]
    sql: str
    op: Literal["==", "!=", ">=", "<=", ">", "<", "between"]
    value: float | int | str | Annotated[tuple[float | int, float | int], Field(strict=False)]


class CommandCheck(CheckSpec):
    kind: Literal["command"]
    command: Argv


class PathExistsCheck(CheckSpec):
    kind: Literal["path_exists"]
    path: str


class PythonImportCheck(CheckSpec):
    kind: Literal["python_import"]
    module: str


class EnvVarCheck(CheckSpec):
    kind: Literal["env_var"]
    variable: str


PreflightCheck = Annotated[
    CoverageCheck | QueryCheck | CommandCheck | PathExistsCheck | PythonImportCheck | EnvVarCheck,
    Field(discriminator="kind"),
]


#: every event a channel may subscribe to (DESIGN.md); `test` is what `backfill notify --test` sends
NOTIFY_EVENTS = (
    "run_started",
    "run_finished",
    "cell_failed",
    "stalled",
    "timed_out",
    "quota_paused",
    "quota_resumed",
    "engine_resumed",
    "milestone",
    "failure_alarm",
    "failure_recovered",
    "digest",
    "test",
)
Severity = Literal["info", "warn", "critical"]


#: events that quiet hours never hold: what the operator must hear about at any hour (plus
#: every `critical` notice: a run ending incomplete, a failure alarm, a test asked for)
URGENT_EVENTS = ("engine_resumed", "failure_recovered")

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class QuietHours:
    """A span of local wall-clock time, `start` included, `end` not; it wraps midnight when
    `end` comes before `start` (22:00-07:00)."""

    start: time
    end: time

    def __contains__(self, now: datetime | time) -> bool:
        at = now.time() if isinstance(now, datetime) else now
        at = at.replace(second=0, microsecond=0, tzinfo=None)
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end

    def until(self, now: datetime) -> datetime:
        """When the quiet span holding `now` ends (local time)."""
        end = datetime.combine(now.date(), self.end)
        return end if end > now else end + timedelta(days=1)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(value: object) -> QuietHours:
    """`"22:00-07:00"`: local time, HH:MM-HH:MM, may wrap midnight."""
    if isinstance(value, QuietHours):
        return value
    hint = 'expected local times HH:MM-HH:MM like "22:00-07:00" (in quotes)'
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 22:00 as a number of minutes (sexagesimal)
        raise ValueError(f"{hint}, got the number {value}")
    if not isinstance(value, str):
        raise ValueError(f"{hint}, got {value!r}")
    parts = value.replace(" ", "").split("-")
    matches = [_CLOCK.match(p) for p in parts]
    if len(parts) != 2 or not all(matches):
        raise ValueError(f"{hint}, got {value!r}")
    start, end = (time(int(m[1]), int(m[2])) for m in matches if m)
    if start == end:
        raise ValueError(f"quiet hours {value!r} start and end at the same time")
    return QuietHours(start, end)


class FailureAlarmSpec(Spec):
    """More than `failures` failed attempts within `minutes` raise one failure_alarm."""

    failures: Annotated[int, Field(ge=1)] = 10
    minutes: Annotated[float, Field(gt=0)] = 10

    @property
    def window(self) -> float:
        return self.minutes * 60


class NotifyChannel(Spec):
    """Where messages go. `url` (an Apprise URL) or `webhook` (a JSON POST), exactly one. Both
    may hold `${VAR}`: it is expanded from the environment only when a message is sent, so the
    secret never reaches the journal, the logs or an error message."""

    name: Name
    url: str | None = None
    webhook: str | None = None
    #: the events this channel wants (None: all of them)
    events: Names | None = None
    #: events below this severity are not sent here
    min_severity: Severity | None = None
    #: one send unanswered this long counts as failed
    timeout: Annotated[Seconds, Field(gt=0)] = 10
    #: sends after the first that failed, with backoff
    retries: Annotated[int, Field(ge=0)] = 2
    #: the same event (kind and signature) again within this long is merged into one message
    dedupe_window: Annotated[Seconds, Field(ge=0)] = 60
    #: while a run is on, a digest this often (if the channel wants `digest`)
    digest_every: Annotated[Seconds, Field(gt=0)] = 3600
    #: more than `failures` failed attempts (retries included) within `minutes`: one alarm
    failure_alarm: FailureAlarmSpec = FailureAlarmSpec()
    #: local time; non-urgent messages are held meanwhile and folded into the next digest
    quiet_hours: Annotated[QuietHours, BeforeValidator(parse_quiet_hours)] | None = None


class Config(Spec):
    version: Literal[1] = 1
    name: str
    state_dir: str = ".backfill"
    warehouse: Warehouse = Warehouse()
    calendar: Calendar
    phases: Annotated[tuple[Phase, ...], Field(strict=False, min_length=1)]
    preflight: Annotated[tuple[PreflightCheck, ...], Field(strict=False)] = ()
    notify: Annotated[tuple[NotifyChannel, ...], Field(strict=False)] = ()
    #: where attempts run (a phase may say otherwise)
    executor: Executor = LocalExecutor()
    #: a Unix group whose members may attach to the engine too (its socket becomes 0660)
    group: str | None = None

    _path: Path = PrivateAttr(default=Path("backfill.yaml"))

    # -- where things are -------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._path

    @property
    def root(self) -> Path:
        """Relative paths in the file (state_dir, warehouse path, job cwd) are relative to it."""
        return self._path.parent

    @property
    def state_path(self) -> Path:
        return self.root / self.state_dir

    @property
    def warehouse_path(self) -> Path:
        return self.root / (self.warehouse.path or f"{self.state_dir}/warehouse")

    # -- the pipeline -----------------------------------------------------------------------
    @cached_property
    def _by_name(self) -> dict[str, tuple[Phase, Processor]]:
        return {p.name: (ph, p) for ph in self.phases for p in ph.processors}

    @property
    def processors(self) -> list[Processor]:
        return [p for _, p in self._by_name.values()]

    def processor(self, name: str) -> Processor:
        return self._by_name[name][1]

    def phase_of(self, name: str) -> Phase:
        return self._by_name[name][0]

    def phase(self, name: str) -> Phase:
        return next(ph for ph in self.phases if ph.name == name)

    def has_processor(self, name: str) -> bool:
        return name in self._by_name

    def executor_of(self, phase: Phase) -> LocalExecutor | RayExecutor | CloudRunExecutor:
        """Where `phase`'s attempts run: its own `executor:`, else the top-level one."""
        return phase.executor or self.executor

    def executors(self) -> list[LocalExecutor | RayExecutor | CloudRunExecutor]:
        """Every executor setting of the file: the top-level one, then the phases' own."""
        return [self.executor, *(p.executor for p in self.phases if p.executor is not None)]

    def max_writers(self, processor: Processor) -> int | None:
        """The cap on attempts writing `processor`'s table at once (None: no cap)."""
        if "max_writers" in processor.model_fields_set:
            return processor.max_writers
        return BIGQUERY_WRITERS if self.warehouse.kind == "bigquery" else None
