"""What the client raised, as one line an operator can act on, and whether waiting may help."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.errors import WarehouseError

#: How long throttling may delay one call before it is reported (warehouse.retry_deadline): a
#: dashboard refresh or a verification should fail visibly within minutes, not the client's 10-40.
RETRY_DEADLINE_S = 120.0
#: Throttling: retried with exponential backoff and jitter, then explained.
THROTTLED_REASONS = frozenset({"quotaExceeded", "rateLimitExceeded", "jobRateLimitExceeded"})
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
) -> WarehouseError:
    """One sentence an operator can act on, for what the client raised while `doing`: a job
    sent to `job_location`, when the datasets are known to be in `locations`."""
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
    return WarehouseError(f"{doing}: {hint}: {message}", transient=_transient(exc))


def _transient(exc: BaseException) -> bool:
    from google.api_core import exceptions as api
    from requests import exceptions as http

    if isinstance(exc, http.SSLError):
        return False
    if reason := reason_of(exc):
        return reason in THROTTLED_REASONS | TRANSIENT_REASONS
    return isinstance(
        exc,
        api.TooManyRequests
        | api.InternalServerError
        | api.BadGateway
        | api.ServiceUnavailable
        | http.ConnectionError
        | http.Timeout
        | ConnectionError,
    )


def make_retry(deadline: float) -> Any:
    """The client's backoff (exponential, with jitter) on throttling and transient failures."""
    from google.cloud.bigquery.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_predicate(_transient).with_deadline(deadline)
