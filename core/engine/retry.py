"""What an ended attempt means and what follows from it: pure functions, no I/O.

An attempt is judged by the rows it left, not its exit status alone: exit 0 with rows missing is
"incomplete". A failure whose recent log matches a throttling pattern is sorted into a tier: rate
(the phase cools down), daily (the table's writers pause, no retry spent) or fatal (no retry at
all). Retries back off exponentially with jitter, so retries of one outage do not align.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Literal, NamedTuple

from core.config import Phase, Processor
from core.executors import AttemptOutcome
from core.state.journal import ended_leftovers

BACKOFF_CAP = 600.0
#: characters of a failed job's last log line quoted in its reason
LAST_WORDS = 100
ERROR_LINE = re.compile(r"(?i)error|exception|fail|fatal|denied|exceeded|refused|✗")

Label = Literal["ok", "incomplete", "failed", "cancelled"]
#: rate: a short-term limit (cool the phase down); daily: a quota that lasts hours (pause the
#: table's writers, spend no retry); fatal: no wait mends it (fail at once)
Tier = Literal["rate", "daily", "fatal"]


@dataclass(frozen=True)
class Verdict:
    label: Label
    why: str | None


class Short(NamedTuple):
    """A date of the attempt that the warehouse says is still not complete, and by how much."""

    day: date
    rows: int
    #: rows the completeness rule asks for (0: nothing known to ask for)
    required: int

    def describe(self) -> str:
        need = f" of {self.required}" if self.required else ""
        return f"{self.day} ({self.rows}{need} rows)"


#: dates named in an incomplete attempt's reason; the rest are counted
SHORT_NAMED = 3


def judge(outcome: AttemptOutcome, short: Sequence[Short]) -> Verdict:
    """`short`: the attempt's dates the warehouse says are still not complete, with their rows
    against the rule ("2024-01-24 (2 of 18 rows)": what fell short, not just that it did). Rows
    do not rescue an attempt that was killed: what it left was ended before the warehouse was
    re-read, and what it wrote until then is no proof it finished."""
    ended = ended_leftovers(outcome.leftovers)
    if outcome.reason == "cancelled":
        return Verdict("cancelled", f"cancelled{ended}")
    if outcome.ok or outcome.status_unknown:
        if not short:
            return Verdict("ok", None)
        how = "exit 0" if outcome.ok else "ended while no engine watched it"
        named = ", ".join(s.describe() for s in short[:SHORT_NAMED])
        more = f" and {len(short) - SHORT_NAMED} more dates" if len(short) > SHORT_NAMED else ""
        return Verdict("incomplete", f"{how} but incomplete on {named}{more}{ended}")
    return Verdict("failed", describe(outcome) + ended)


#: characters of the matching log line kept as the throttling's reason
REASON_CHARS = 300


@dataclass(frozen=True)
class Throttled:
    tier: Tier
    #: the log line that matched, as the operator reads it in the reason
    line: str


@cache
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def classify(processor: Processor, lines: Sequence[str]) -> Throttled | None:
    """The throttling tier of a failed attempt's recent log, or None (an ordinary failure).
    The latest matching line decides: a job that logged rate limits while it retried and then
    died of a daily quota is paused, not cooled down. Our own notes are not the job's words."""
    # On one line a refusal that never passes beats a quota that lasts the day, which beats a
    # short-term limit: "500 Query exceeded limit for bytes billed" is fatal, not a 5xx.
    tiers: tuple[tuple[Tier, tuple[re.Pattern[str], ...]], ...] = (
        ("fatal", _compiled(processor.fatal_patterns)),
        ("daily", _compiled(processor.daily_quota_patterns)),
        ("rate", _compiled(processor.transient_patterns)),
    )
    for line in reversed(lines):
        if line.startswith("[backfill] "):
            continue
        for tier, patterns in tiers:
            if any(p.search(line) for p in patterns):
                text = line.strip()
                if len(text) > REASON_CHARS:
                    text = text[: REASON_CHARS - 1] + "…"
                return Throttled(tier, text)
    return None


@dataclass(frozen=True)
class Decision:
    #: attempts counted against retries, this one included (a daily quota counts none)
    attempts: int
    #: seconds until the next attempt; None: no retries left, or never worth one (fatal)
    retry_in: float | None
    #: seconds the phase takes no new work (the rate tier's base; escalation is the
    #: cooldowns'); None: no cooldown
    cooldown: float | None = None
    #: seconds the processors writing the table are paused (the daily tier); None: no pause
    pause: float | None = None


def decide(
    processor: Processor, phase: Phase, attempts: int, *, tier: Tier | None, jitter: float
) -> Decision:
    """`attempts`: counted before this failure; `jitter` in [0.75, 1.25]."""
    if tier == "daily":
        # The quota's own time is the wait; a retry spent on it would end the item FAILED
        # before the day's quota comes back.
        return Decision(attempts, phase.quota_pause, pause=phase.quota_pause)
    attempts += 1
    if tier == "fatal":
        return Decision(attempts, None)
    cooldown = phase.cooldown if tier == "rate" else None
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
