"""What may start now: pure decisions over the run's state, given limits, cooldowns, gates and
upstream readiness. The engine applies them; nothing here does I/O or changes an item.

An item starts only when its phase has a free slot (and is not cooling down after throttling),
its processor is not paused by a daily quota, fewer than its `max_writers` attempts write its
table, the run's overall cap allows, earlier phases' gates hold, and every upstream is complete
for its dates. An upstream still queued or running means wait; one that can no longer be filled
means the item is blocked, and says why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import date

from core.config import Phase
from core.coverage import Coverage
from core.planner import DONE, Reprocess, unmet_upstreams
from core.state.items import Item, ItemState

READY = "ready"
WAIT = "wait"


@dataclass(frozen=True)
class Start:
    item: Item
    #: the dates still to do: fewer than the item's when some were completed meanwhile
    dates: tuple[date, ...]


@dataclass(frozen=True)
class Block:
    item: Item
    why: str


@dataclass(frozen=True)
class AlreadyDone:
    """Every date of the item is complete (finished before a crash, or by a sibling)."""

    item: Item


Decision = Start | Block | AlreadyDone


@dataclass
class Slots:
    """Attempts holding a slot per phase, and the limits they are held to."""

    busy: Counter[str]
    limits: Mapping[str, int]
    total_limit: int
    #: phase -> time.monotonic() its cooldown ends
    cooling: Mapping[str, float]
    #: processors that start nothing for now (a daily quota paused their table's writers)
    paused: Set[str] = frozenset()
    #: table -> attempts whose process writes it now
    writers: Counter[str] = field(default_factory=Counter)
    #: processor -> cap on attempts writing its table at once (None or absent: no cap)
    max_writers: Mapping[str, int | None] = field(default_factory=dict)


def dispatch(
    pending: Iterable[Item],
    now: float,
    slots: Slots,
    *,
    waiting: set[str],
    gates: Mapping[str, str],
    readiness: Callable[[Item], str],
    todo: Callable[[Item], Sequence[date]],
) -> Iterator[Decision]:
    """Decisions for pending items in dispatch order, as far as free slots go. `waiting`: the
    phases with pending items (once all are full, the rest need not be looked at)."""
    full: set[str] = set()
    for item in pending:
        if sum(slots.busy.values()) >= slots.total_limit or full >= waiting:
            return
        if item.state is not ItemState.PENDING or item.not_before > now:
            continue
        phase = item.phase.name
        if slots.cooling.get(phase, 0.0) > now or slots.busy[phase] >= slots.limits[phase]:
            full.add(phase)
            continue
        proc = item.processor
        cap = slots.max_writers.get(proc.name)
        if proc.name in slots.paused or (cap is not None and slots.writers[proc.table] >= cap):
            continue  # other processors of the phase may still start
        verdict = gates.get(phase) or readiness(item)
        if verdict == WAIT:
            continue
        if verdict != READY:
            yield Block(item, verdict)
            continue
        dates = todo(item)
        if not dates:
            yield AlreadyDone(item)
            continue
        slots.busy[phase] += 1
        slots.writers[proc.table] += 1
        yield Start(item, tuple(dates))


def gate_verdicts(
    phases: Sequence[Phase],
    share: Callable[[Phase], float | None],
    has_open_work: Callable[[str], bool],
) -> dict[str, str]:
    """Per phase held back by an earlier phase's gate: WAIT while that phase still has work
    queued or running, else why it can never start."""
    verdicts: dict[str, str] = {}
    held: str | None = None
    for phase in phases:
        if held is not None:
            verdicts[phase.name] = held
            continue
        if phase.gate is None:
            continue
        now = share(phase)
        if now is not None and now < phase.gate.min_coverage:
            held = (
                WAIT
                if has_open_work(phase.name)
                else f"{phase.label} gate: {now:.0%} complete, needs {phase.gate.min_coverage:.0%}"
            )
    return verdicts


def readiness(item: Item, coverage: Coverage, is_open: Callable[[str, date], bool]) -> str:
    """READY, WAIT (upstream work still queued or running) or why it can never run."""
    for day in item.dates:
        for upstream in unmet_upstreams(coverage, item.processor, day):
            if is_open(upstream.name, day):
                return WAIT
            kind = "source " if upstream.is_source else ""
            return f"{kind}{upstream.name} is not complete on {day}"
    return READY


def still_to_do(item: Item, coverage: Coverage, reprocess: Reprocess) -> list[date]:
    """The item's dates to run: all of them with `reprocess: all` (that is what it asks for),
    else those not complete, so a cell finished before a crash or by a sibling never runs again."""
    if reprocess == "all":
        return list(item.dates)
    return [d for d in item.dates if coverage.cell(item.processor, d).state not in DONE]
