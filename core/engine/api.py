"""What a client of the engine sees and may send: the one engine module the dashboard, the
headless runner and the command line import (an import-linter contract holds them to it).

A client polls `snapshot(since, limit)`: the run's header plus the items and warehouse re-reads
that changed after version `since` (0: all of them; HEADER_ONLY: none), at most `limit` items a
time (the oldest changes first: a 30,000-item first snapshot comes in pages), so what a client
pays per tick is what changed, not the size of the run. It changes the run only by
`submit`ting a command.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol

from core.config import Config
from core.coverage import Reread
from core.planner import Reprocess
from core.progress import Forecast
from core.state.items import EXCLUDED, ItemState
from core.state.journal import Journal
from core.warehouse import Warehouse

__all__ = [
    "EXCLUDED",
    "HEADER_ONLY",
    "CancelAll",
    "CancelItem",
    "Command",
    "EngineClient",
    "EngineEvent",
    "EngineSnapshot",
    "Exclude",
    "ItemState",
    "ItemView",
    "KnownEmpty",
    "Pause",
    "PauseView",
    "Reply",
    "Resume",
    "Retry",
    "RunRequest",
    "RunResult",
    "RunState",
    "RunningEngine",
    "SetConcurrency",
    "Stop",
    "Who",
    "local_engine",
]

#: `snapshot(HEADER_ONLY)`: counts and state, no items and no re-reads (a status line)
HEADER_ONLY = -1

#: measuring: reading coverage and planning, before any item exists; failed: the engine raised
RunState = Literal["idle", "measuring", "running", "paused", "stopping", "finished", "failed"]


@dataclass(frozen=True)
class RunRequest:
    start: date
    end: date
    phases: tuple[str, ...] = ()
    processors: tuple[str, ...] = ()
    reprocess: Reprocess = "missing"
    #: cap on attempts running at once across phases (None: the sum of the phases' limits)
    max_parallel: int | None = None

    def key(self) -> dict[str, Any]:
        """What makes two requests the same run (journaled; a resume must match it)."""
        return {
            "phases": sorted(self.phases),
            "processors": sorted(self.processors),
            "reprocess": self.reprocess,
        }

    @classmethod
    def from_key(cls, start: date, end: date, key: dict[str, Any]) -> RunRequest:
        """The request a journaled run was started with: resuming it matches its key."""
        return cls(
            start,
            end,
            phases=tuple(key["phases"]),
            processors=tuple(key["processors"]),
            reprocess=key["reprocess"],
        )


@dataclass(frozen=True)
class ItemView:
    id: int
    processor: str
    phase: str
    dates: tuple[date, ...]
    state: ItemState
    #: number of the latest attempt (0: none yet)
    attempt: int
    #: wall clock at which the latest attempt started
    started_at: float | None
    #: seconds the latest attempt took once it ended; None while it runs (the client counts
    #: from `started_at`, so a running item does not change every tick)
    duration: float | None
    exit_code: int | None
    reason: str | None
    log_path: Path | None
    #: ok | failed | incomplete | interrupted | cancelled, once the latest attempt ended
    outcome: str | None = None


@dataclass(frozen=True)
class PauseView:
    """Processors that start nothing for now because the warehouse throttled them."""

    phase: str
    #: the processors held: a rate cooldown holds its phase's, a daily pause its table's writers
    processors: tuple[str, ...]
    #: rate: a short-term limit, the phase cools down (then runs fewer at a time); daily: a
    #: quota that lasts hours, the table's writers are paused and spend no retries meanwhile
    tier: Literal["rate", "daily"]
    #: wall clock (epoch seconds) it ends
    until: float
    #: the job's log line that said so
    reason: str

    @property
    def label(self) -> str:
        return "paused: daily quota" if self.tier == "daily" else "cooling down: rate limit"


@dataclass(frozen=True)
class EngineSnapshot:
    #: what the client passes as `since` next time
    version: int
    state: RunState
    run_id: int | None
    request: RunRequest
    counts: Mapping[ItemState, int]
    #: phase -> (attempts holding a slot, limit)
    concurrency: Mapping[str, tuple[int, int]]
    #: rate and ETA, or what is true instead (measuring, paused, stalled)
    forecast: Forecast
    #: items changed after `since`, oldest change first (every item when `since` was 0)
    changed: tuple[ItemView, ...] = ()
    #: warehouse reads after `since`, oldest first, for the client to merge into its coverage
    rereads: tuple[Reread, ...] = ()
    #: why the engine stopped, when `state` is "failed"; otherwise what holds its dispatch up
    #: for now (a full disk), which clears by itself
    error: str | None = None
    #: throttling in force now (cooldowns and daily-quota pauses), whatever `since` was
    pauses: tuple[PauseView, ...] = ()
    #: every known-empty cell of the run's range, when they changed after `since` (None:
    #: unchanged, keep what you have): the journal, not the warehouse, knows them
    known_empty: frozenset[tuple[str, date]] | None = None

    def count(self, state: ItemState) -> int:
        return self.counts.get(state, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def busy(self) -> bool:
        """Work is queued or running (a finished or failed engine has none)."""
        return self.state not in ("finished", "failed") and bool(
            self.count(ItemState.RUNNING) or self.count(ItemState.PENDING)
        )


@dataclass(frozen=True)
class EngineEvent:
    #: run_started | run_resumed | item_done | item_failed | item_retry | item_blocked |
    #: item_cancelled | cooldown | quota_paused | quota_resumed | verify_failed
    kind: str
    message: str
    item: ItemView | None = None


@dataclass
class RunResult:
    run_id: int
    complete: bool
    #: targeted (processor, date) cells that did not end complete or skipped
    incomplete: list[tuple[str, date]] = field(default_factory=list)
    #: the incomplete cells an operator excluded from the run (`Exclude`)
    excluded: list[tuple[str, date]] = field(default_factory=list)


# -- commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """No new dispatch; running attempts go on."""


@dataclass(frozen=True)
class Resume:
    """Dispatch again."""


@dataclass(frozen=True)
class Stop:
    """End the run: no new dispatch, then the engine returns (cancelling running attempts
    first with `cancel_running`)."""

    cancel_running: bool = False


@dataclass(frozen=True)
class CancelItem:
    item_id: int


@dataclass(frozen=True)
class CancelAll:
    """Cancel every open item (running ones are killed, whole process group) and stop."""


@dataclass(frozen=True)
class Retry:
    """Queue failed, blocked and cancelled items again (those of `processor`, those holding
    one of `dates`, or all), with their retries back."""

    processor: str | None = None
    dates: frozenset[date] | None = None


@dataclass(frozen=True)
class SetConcurrency:
    phase: str
    limit: int


@dataclass(frozen=True)
class KnownEmpty:
    """Journal `processor`'s `dates` as known empty (no rows are due, so they count as
    complete and are not run), or with `undo` judge them by their rows again."""

    processor: str
    dates: frozenset[date]
    reason: str = ""
    undo: bool = False


@dataclass(frozen=True)
class Exclude:
    """Take `processor`'s items holding any of `dates` out of this run: pending, failed and
    blocked ones settle as excluded, running ones are cancelled first, and no retry of this
    run queues them again. Unlike known empty, the cells stay not complete."""

    processor: str
    dates: frozenset[date]


Command = (
    Pause | Resume | Stop | CancelItem | CancelAll | Retry | SetConcurrency | KnownEmpty | Exclude
)


@dataclass(frozen=True)
class Reply:
    ok: bool
    message: str
    #: items the command touched
    count: int = 0


@dataclass(frozen=True)
class Who:
    """Who sent a command: journaled with every operator action."""

    user: str
    host: str
    pid: int
    client: str  # dashboard | cli | headless

    @classmethod
    def me(cls, client: str) -> Who:
        return cls(getpass.getuser(), socket.gethostname(), os.getpid(), client)

    def describe(self) -> str:
        return f"{self.user}@{self.host} pid {self.pid} ({self.client})"


class EngineClient(Protocol):
    """An engine as a client sees it, wherever it runs (this process, or an engine process
    reached through its socket)."""

    async def snapshot(self, since: int = 0, limit: int | None = None) -> EngineSnapshot: ...

    async def submit(self, command: Command, by: Who | None = None) -> Reply: ...


class RunningEngine(Protocol):
    """An engine in this process: the caller runs it in its own event loop."""

    def snapshot(self, since: int = 0, limit: int | None = None) -> EngineSnapshot: ...

    async def submit(self, command: Command, by: Who | None = None) -> Reply: ...

    async def run(self) -> RunResult: ...


def local_engine(
    config: Config,
    warehouse: Warehouse,
    request: RunRequest,
    *,
    journal: Journal,
    on_event: Callable[[EngineEvent], None] = lambda event: None,
    linger: bool = False,
    preflight: dict[str, Any] | None = None,
    python: str = sys.executable,
) -> RunningEngine:
    """An engine in this process; `run()` it in the caller's event loop. `linger`: once nothing
    is left, wait for commands (a retry, say) until a Stop, as a dashboard wants."""
    from core.engine.engine import Engine

    return Engine(
        config,
        warehouse,
        request,
        journal=journal,
        on_event=on_event,
        python=python,
        linger=linger,
        preflight=preflight,
    )
