"""What the client raised, as one line an operator can act on, and whether waiting may help."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.errors import WarehouseError

if TYPE_CHECKING:
    from core.warehouse.bigquery.calls import Attempt

#: How long throttling may delay one call before it is reported (warehouse.retry_deadline): a
#: dashboard refresh or a verification should fail visibly within minutes, not the client's 10-40.
RETRY_DEADLINE_S = 120.0
#: Throttling: retried with exponential backoff and jitter, then explained.
THROTTLED_REASONS = frozenset({"quotaExceeded", "rateLimitExceeded", "jobRateLimitExceeded"})
#: BigQuery stopped a job that ran past its job_timeout_ms
TIMEOUT_REASONS = frozenset({"timeout"})
#: Failures of BigQuery's side that the client library also retries.
TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "badGateway", "jobBackendError", "jobInternalError"}
)


def reason_of(exc: BaseException) -> str:
    """The machine-readable reason BigQuery gave (`accessDenied`, `quotaExceeded`...), or ''."""
    errors = getattr(exc, "errors", None)
    try:
        return str(errors[0]["reason"]) if errors else ""
    except (KeyError, IndexError, TypeError):
        return ""


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0] if str(text).strip() else type(exc).__name__


#: BigQuery's words when a job reads a dataset of another location than its own
_WRONG_LOCATION = re.compile(
    r"Dataset (?:[\w.-]+[:.])?(?P<dataset>\w+) was not found in location (?P<location>[\w-]+)"
)


def explain(
    exc: BaseException,
    doing: str,
    project: str,
    *,
    job_location: str | None = None,
    locations: Mapping[str, str] | None = None,
    attempt: Attempt | None = None,
) -> WarehouseError:
    """One sentence an operator can act on, for what the client raised while `doing`: a job
    sent to `job_location`, when the datasets are known to be in `locations`, under the
    bounds of `attempt`."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    from requests import exceptions as http

    if isinstance(exc, api.RetryError) and exc.cause is not None:
        exc = exc.cause  # retried until the deadline: what it kept failing with is the news
    message, reason = _message(exc), reason_of(exc)
    wrong = _WRONG_LOCATION.search(message) if isinstance(exc, api.NotFound) else None
    if wrong:
        dataset = wrong["dataset"]
        where = (locations or {}).get(dataset)
        hint = (
            f"dataset {dataset} is in {where or 'another location'}, the job ran in "
            f"{job_location or wrong['location']}: one job reads one location's datasets only "
            "(does a `where` predicate read another dataset?)"
        )
    elif bounded := attempt and _bound_hit(exc, attempt):
        hint = bounded
    elif reason in THROTTLED_REASONS or isinstance(exc, api.TooManyRequests):
        hint = (
            "still throttled after retrying with backoff; daily quotas reset at midnight Pacific, "
            "concurrent-query limits within minutes: lower max_parallel or wait"
        )
    elif isinstance(exc, api.Forbidden):
        hint = (
            f"permission denied in project {project}: the account needs BigQuery Job User on the "
            "project and Data Viewer on the datasets"
        )
    elif isinstance(exc, api.NotFound):
        hint = f"not found: check warehouse.project ({project}) and the dataset names"
    elif isinstance(exc, api.BadRequest):
        hint = (
            "BigQuery rejected the query (a `where` predicate, or a date column not of DATE type?)"
        )
    elif isinstance(exc, auth.DefaultCredentialsError | auth.RefreshError):
        hint = "the credentials do not work: run `gcloud auth application-default login` again"
    elif isinstance(exc, http.ConnectionError | ConnectionError | http.Timeout):
        hint = "BigQuery could not be reached (network, proxy, or the emulator is not running)"
    else:
        hint = "BigQuery call failed"
    said = f": {message}" if message != type(exc).__name__ else ""
    return WarehouseError(f"{doing}: {hint}{said}", transient=transient(exc))


#: BigQuery's words for a query over a table that requires a partition filter, without one
_NO_PARTITION_FILTER = "without a filter over column(s)"
#: BigQuery's words when an operator meets a column of another type than it takes
_WRONG_TYPE = ("No matching signature", "cannot be compared", "Could not cast")


def refusal(
    exc: BaseException,
    date_column: str,
    *,
    job_location: str,
    locations: Mapping[str, str],
) -> str:
    """Why BigQuery refused a (dry-run) count of one table, as the reason to fix it."""
    message = _message(exc)
    wrong = _WRONG_LOCATION.search(message)
    if wrong:
        dataset = wrong["dataset"]
        where = locations.get(dataset, "another location")
        return (
            f"location mismatch: dataset {dataset} is in {where}, the job ran in {job_location}: "
            f"{message}"
        )
    if _NO_PARTITION_FILTER in message:
        return (
            f"missing partition filter: the table requires a filter over its partition column, "
            f"and date_column {date_column} is not it: {message}"
        )
    if any(words in message for words in _WRONG_TYPE):
        return (
            f"wrong column type ({date_column} must be DATE, or the `where` mixes types): {message}"
        )
    if reason_of(exc) == "accessDenied":
        return f"permission denied (Data Viewer on the dataset?): {message}"
    return message


def _bound_hit(exc: BaseException, attempt: Attempt) -> str | None:
    """What timed out and after how long, or what was retried and until when."""
    from requests import exceptions as http

    bounds = attempt.bounds
    if reason_of(exc) in TIMEOUT_REASONS:
        return f"timed out: BigQuery stopped the job after {duration(bounds.job)} (timeouts.job)"
    if isinstance(exc, http.ReadTimeout):
        return (
            f"timed out: BigQuery did not answer a request within {duration(bounds.api)} "
            f"(timeouts.api); retried until {attempt.now()} ({attempt.elapsed()} of at most "
            f"{duration(bounds.deadline)})"
        )
    if isinstance(exc, TimeoutError):
        return (
            f"timed out: the query job did not finish within {duration(bounds.wait)} "
            "(timeouts.wait); BigQuery was asked to cancel it"
        )
    if unreachable(exc):
        return (
            "BigQuery could not be reached (network, proxy, or the emulator is not running); "
            f"connecting was retried until {attempt.now()} ({attempt.elapsed()} of at most "
            f"{duration(bounds.connecting)}, timeouts.connect)"
        )
    return None


def unreachable(exc: BaseException) -> bool:
    """BigQuery was not reached at all (refused, reset, DNS, no TCP connection in time)."""
    from requests import exceptions as http

    if isinstance(exc, http.SSLError | http.ReadTimeout):
        return False
    return isinstance(exc, http.ConnectionError | ConnectionError)


def transient(exc: BaseException) -> bool:
    """Asking again later may work."""
    from google.api_core import exceptions as api
    from requests import exceptions as http

    if isinstance(exc, http.SSLError):
        return False
    if reason := reason_of(exc):
        return reason in THROTTLED_REASONS | TRANSIENT_REASONS | TIMEOUT_REASONS
    return isinstance(
        exc,
        api.TooManyRequests
        | api.InternalServerError
        | api.BadGateway
        | api.ServiceUnavailable
        | http.ConnectionError
        | http.Timeout
        | ConnectionError
        | TimeoutError,
    )


def duration(seconds: float) -> str:
    """`2s`, `90s`, `10m`, `1h30m`: as backfill.yaml writes durations."""
    whole = round(seconds)
    if whole < 120 or whole % 60:
        return f"{seconds:g}s" if whole < 120 else f"{whole // 60}m{whole % 60}s"
    minutes = whole // 60
    if minutes < 120 or minutes % 60:
        return f"{minutes}m" if minutes < 120 else f"{minutes // 60}h{minutes % 60}m"
    return f"{minutes // 60}h"
