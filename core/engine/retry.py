"""What an ended attempt means and what follows from it: pure functions, no I/O.

An attempt is judged by the rows it left, not its exit status alone: exit 0 with rows missing is
"incomplete". A failure whose last lines match a throttling pattern is transient: the phase cools
down. Retries back off exponentially with jitter, so retries of one outage do not align.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from core.config import Phase, Processor
from core.process import AttemptOutcome
from core.state.journal import ended_leftovers

BACKOFF_CAP = 600.0
#: characters of a failed job's last log line quoted in its reason
LAST_WORDS = 100
ERROR_LINE = re.compile(r"(?i)error|exception|fail|fatal|denied|exceeded|refused|✗")

Label = Literal["ok", "incomplete", "failed", "cancelled"]


@dataclass(frozen=True)
class Verdict:
    label: Label
    why: str | None


def judge(outcome: AttemptOutcome, short: Sequence[date]) -> Verdict:
    """`short`: the attempt's dates the warehouse says are still not complete. Rows do not
    rescue an attempt that was killed: what it left was ended before the warehouse was re-read,
    and what it wrote until then is no proof it finished."""
    ended = ended_leftovers(outcome.leftovers)
    if outcome.reason == "cancelled":
        return Verdict("cancelled", f"cancelled{ended}")
    if outcome.ok or outcome.status_unknown:
        if not short:
            return Verdict("ok", None)
        how = "exit 0" if outcome.ok else "ended while no engine watched it"
        return Verdict("incomplete", f"{how} but incomplete on {', '.join(map(str, short))}{ended}")
    return Verdict("failed", describe(outcome) + ended)


def is_transient(processor: Processor, tail: Sequence[str]) -> bool:
    return any(re.search(p, line) for p in processor.transient_patterns for line in tail)


@dataclass(frozen=True)
class Decision:
    #: attempts counted against retries, this one included
    attempts: int
    #: seconds until the next attempt; None: no retries left
    retry_in: float | None
    #: seconds the phase takes no new work (a throttling error); None: no cooldown
    cooldown: float | None


def decide(
    processor: Processor, phase: Phase, attempts: int, *, transient: bool, jitter: float
) -> Decision:
    """`attempts`: counted before this failure; `jitter` in [0.75, 1.25]."""
    attempts += 1
    cooldown = phase.cooldown if transient else None
    if attempts > processor.retries:
        return Decision(attempts, None, cooldown)
    delay = min(BACKOFF_CAP, processor.retry_backoff * 2 ** (attempts - 1)) * jitter
    return Decision(attempts, delay, cooldown)


def describe(outcome: AttemptOutcome) -> str:
    if outcome.reason == "exit":
        # The job's last error line says why ("403 Quota exceeded ..."): no log to open for the
        # gist. Jobs often end with a summary or a retry hint, so error-like lines come first.
        # Our own notes ("[backfill] ended 3 processes ...") are not the job's last words.
        lines = [
            line.strip()
            for line in outcome.tail
            if line.strip() and not line.startswith("[backfill] ")
        ]
        last = next((line for line in reversed(lines) if ERROR_LINE.search(line)), None)
        last = last or (lines[-1] if lines else "")
        if len(last) > LAST_WORDS:
            last = last[: LAST_WORDS - 1] + "…"
        return f"exit {outcome.exit_code}: {last}" if last else f"exit {outcome.exit_code}"
    if outcome.reason in ("timeout", "stall"):
        return f"killed: {outcome.reason}"
    return outcome.reason
