"""What the engine needs from whatever runs its attempts: the executor protocol.

The engine decides what to run and when (concurrency, gates, cooldowns, retries) and the
warehouse judges the result; an executor only runs one attempt's command somewhere and reports
on it. It owes the engine five things, and nothing else:

- `start`: run the attempt's command (its argv, env and tag as `AttemptSpec` gives them) and
  return once it runs, with what the engine journals to find it again (`Handle.launched`). Raises
  `OSError` when nothing ran, saying why in an operator's words. An executor that can name the
  attempt before it exists (`reference`: a deterministic job id) has that name journaled before
  the start, so no crash can leave a job the journal does not know.
- the log: everything the command prints ends up in `spec.log_path`, the per-attempt file that
  the dashboard, `backfill logs`, the tail and stall detection read. An executor whose command
  runs elsewhere mirrors its output there while the attempt runs.
- `Handle.wait`: watch the attempt to its end, enforcing `spec.timeout` and
  `spec.stall_timeout`, and return its `AttemptOutcome` (exit status where it is known) only once
  nothing of the attempt runs any more: the warehouse is re-read next, and a leftover writing
  after that could make a killed attempt look complete.
- `Handle.cancel`: end the whole attempt, not just its first process.
- `recover` and `end_remains`: after an engine died (even `kill -9`), find the attempts it left
  open and hand back a handle to watch each one that is provably still the attempt's, or why
  there is none; for those, end whatever of them may still run before the item is re-queued.

Where an attempt runs elsewhere, `core.executors.remote` does what every such executor shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.process import AttemptOutcome, AttemptSpec, Launched, Unproven
from core.state.journal import AttemptRow


@dataclass(frozen=True)
class Remote:
    """What the journal keeps of an attempt that runs elsewhere (a Ray job, a Cloud Run
    execution): the executor's name for it, by which the next engine finds it again."""

    ref: str
    started_at: float  # time.time(), as `Launched.started_at`
    log_path: Path  # where its output is mirrored while an engine watches it


class Handle(Protocol):
    """One running attempt, started by this engine or adopted from a dead one."""

    @property
    def launched(self) -> Launched | Remote:
        """What the journal keeps so that the next engine can find the attempt again."""
        ...

    async def wait(self) -> AttemptOutcome:
        """Until the attempt has ended (limits enforced, remains ended). Called from one task;
        if that task is cancelled, the attempt is ended first (reason "cancelled")."""
        ...

    async def cancel(self) -> None:
        """End the whole attempt; `wait()` then reports "cancelled". Callable from any task,
        on many attempts at once; completes even if the calling task is cancelled."""
        ...

    async def forget(self) -> None:
        """Once the attempt's verdict is journaled: whatever the executor keeps of it (a
        finished job on a cluster) may go. Never raises."""
        ...


@dataclass(frozen=True)
class Adopted:
    """An open attempt of a dead engine, proven to be still the attempt's: watch it."""

    handle: Handle
    #: still running when found; False when it ended while no engine watched it
    alive: bool


class Executor(Protocol):
    #: the `executor: kind:` of backfill.yaml that selects this executor
    kind: str

    def reference(self, tag: str) -> str | None:
        """The name the attempt tagged `tag` will have, if the executor can tell before it
        starts it (it is journaled first); None: it is known only once started, or never."""
        ...

    async def start(self, spec: AttemptSpec) -> Handle:
        """Run the attempt; returns as soon as it runs. No checkpoint after the start: a
        cancelled caller either gets no attempt or gets the handle (and the duty to journal or
        cancel it)."""
        ...

    async def recover(
        self, attempts: Sequence[tuple[AttemptRow, AttemptSpec]]
    ) -> dict[int, Adopted | Unproven]:
        """Attempt id -> the attempt to watch, or why there is none, for the journal's open
        attempts of a dead engine (with the spec each was started with)."""
        ...

    async def end_remains(self, spec: AttemptSpec) -> int:
        """Whatever of an attempt that could not be adopted may still run is ended (never by a
        pid or group that may be a stranger's now); returns how many processes that was."""
        ...
