"""The values that cross the boundary between the engine and a running attempt.

Plain frozen data, importable without pulling in process handling: the engine builds an
`AttemptSpec`, journals the `Launched` it gets back, and reads the `AttemptOutcome` at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

#: "unstarted": the executor never ran the command (a cluster that kept the job pending past
#: its limit), which is not the job's failure: re-queued without spending a retry
Reason = Literal["exit", "timeout", "stall", "cancelled", "interrupted", "unstarted"]

TAG_VAR = "BACKFILL_ATTEMPT"  # in every attempt's environment: see core.process.tags


@dataclass(frozen=True)
class AttemptSpec:
    argv: tuple[str, ...]
    env: Mapping[str, str]  # merged over os.environ at spawn
    cwd: Path
    log_path: Path  # parent dirs created at spawn
    timeout: float | None  # seconds since the start, None = no limit
    stall_timeout: float | None  # seconds with no growth of the log file, None = off
    grace: float = 10.0  # SIGTERM -> wait this long -> SIGKILL (whole group)
    tag: str = ""  # unique per attempt, set as $BACKFILL_ATTEMPT: how find_tagged() knows it
    # What the attempt is for, for executors that name their jobs after it (a local process
    # needs neither): the processor, and the dates its command was rendered with.
    processor: str = ""
    dates: tuple[date, ...] = ()
    #: the executor's own name for the attempt where it was journaled before the start
    #: (`Executor.reference`), or found since
    remote_ref: str | None = None

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("AttemptSpec.argv must name a program")


@dataclass(frozen=True)
class Launched:
    """What the engine journals before awaiting the end: enough for `adopt` after a restart."""

    pid: int
    pgid: int
    # time.time(): wall clock, because it is journaled and must mean something to the next
    # engine process; deadlines are derived from it once, at adoption
    started_at: float
    log_path: Path
    # When the kernel started the process (field 22 of /proc/PID/stat, clock ticks since boot):
    # with the tag, what tells the attempt from a stranger that was given the same pid after a
    # crash. None where there is no /proc, and in journals from before it was recorded.
    start_ticks: int | None = None


@dataclass(frozen=True)
class AttemptOutcome:
    #: 128 + N for a job killed by signal N, as shells report it (143: SIGTERM, 137: SIGKILL);
    #: None for an adopted attempt, whose status went with the engine that started it
    exit_code: int | None
    # "exit" = ended on its own (any code); timeout/stall/cancelled = we killed it;
    # "interrupted" = an adopted attempt whose process was already gone when we looked
    reason: Reason
    duration: float  # seconds, measured on the monotonic clock
    tail: tuple[str, ...]  # last non-empty lines of the log
    #: processes of the attempt still running once it ended, which the engine then ended
    leftovers: int = 0

    @property
    def ok(self) -> bool:
        return self.reason == "exit" and self.exit_code == 0

    @property
    def status_unknown(self) -> bool:
        """Ended on its own while no engine was its parent: only the warehouse can judge it."""
        return self.exit_code is None and self.reason in ("exit", "interrupted")
