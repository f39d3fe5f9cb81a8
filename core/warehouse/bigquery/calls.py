"""Every BigQuery call bounded. Without timeouts the client waits forever on a hung job
(googleapis/python-bigquery #2310, #1922), and one hung verification read holds every verdict of
a run; an unreachable endpoint was retried for minutes before its one-line error.

Each call gets an `Attempt`: its own retry policy, started when the call is. Throttling and
BigQuery's own transient failures are retried with backoff for `retry` (warehouse.retry_deadline),
an unreachable BigQuery only for `connect`, and nothing beyond `wait`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.warehouse.bigquery.errors import RETRY_DEADLINE_S, transient, unreachable


@dataclass(frozen=True)
class Guards:
    """What every job carries besides its bounds (warehouse.maximum_bytes_billed and the
    projects and account it runs under)."""

    maximum_bytes_billed: int = 2**30
    billing_project: str | None = None
    quota_project: str | None = None
    impersonate: str | None = None


@dataclass(frozen=True)
class Bounds:
    """warehouse.timeouts (and retry_deadline), in seconds."""

    job: float = 600.0
    wait: float = 600.0
    api: float = 60.0
    connect: float = 10.0
    retry: float = RETRY_DEADLINE_S

    @property
    def deadline(self) -> float:
        """How long one call is retried, all causes together."""
        return min(self.retry, self.wait)

    @property
    def connecting(self) -> float:
        """How long one call retries a BigQuery it cannot reach."""
        return min(self.connect, self.deadline)


#: the client's own backoff (google.cloud.bigquery.retry.DEFAULT_RETRY): the n-th wait is drawn
#: from [0, min(INITIAL_S * MULTIPLIER**n, MAXIMUM_S)]
INITIAL_S, MULTIPLIER, MAXIMUM_S = 1.0, 2.0, 60.0


@dataclass(frozen=True)
class Attempt:
    bounds: Bounds
    started: float = field(default_factory=time.monotonic)
    #: errors of an unreachable BigQuery seen so far (a list: the attempt itself is frozen)
    _unreachable: list[BaseException] = field(default_factory=list)

    def retryable(self, exc: BaseException) -> bool:
        if unreachable(exc):
            # The wait before the next try could be long: give up now if it might end past
            # the window, so a refused port fails after `connect`, not a backoff later.
            longest = min(INITIAL_S * MULTIPLIER ** len(self._unreachable), MAXIMUM_S)
            self._unreachable.append(exc)
            return time.monotonic() + longest - self.started < self.bounds.connecting
        return transient(exc)

    def retry(self) -> Any:
        """Backoff (exponential, with jitter) for one API request at a time."""
        from google.api_core.retry import Retry

        return Retry(
            predicate=self.retryable,
            initial=INITIAL_S,
            maximum=MAXIMUM_S,
            multiplier=MULTIPLIER,
            timeout=self.bounds.deadline,
        )

    def job_retry(self) -> Any:
        """A query job that fails is retried as a new job: room for a few, within `wait`."""
        return self.retry().with_timeout(min(2 * self.bounds.retry, self.bounds.wait))

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.0f}s"

    def now(self) -> str:
        return f"{datetime.now():%H:%M:%S}"
