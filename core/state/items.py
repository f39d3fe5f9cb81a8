"""A run's work items, in memory and in the journal at once: the only writer of item state.

Every change to an item goes through the store, which commits it to the journal first and then
updates the item and the indexes the scheduler and the snapshots read: items per (phase,
state), open cells, dates left per processor, the pending order and a change log. Nothing else
assigns an item's state, so memory and journal cannot drift apart (a retry that reset attempts
only in memory left a resumed item with no retries).

Deadlines in memory are monotonic; the journal keeps wall-clock times, which survive a restart.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from pathlib import Path

from core.config import Config, Phase, Processor
from core.state.journal import AttemptRow, ItemRow, Journal


class ItemState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # retries exhausted
    BLOCKED = "blocked"  # an upstream or gate can no longer be satisfied
    CANCELLED = "cancelled"


OPEN = frozenset({ItemState.PENDING, ItemState.RUNNING})

#: the reason of an item an operator took out of the run (`Exclude`): how a resumed run, and a
#: client, tell it from a cancel
EXCLUDED = "excluded by operator"


@dataclass(eq=False)
class Item:
    id: int
    processor: Processor
    phase: Phase
    dates: tuple[date, ...]
    state: ItemState = ItemState.PENDING
    #: attempts that count against `retries`
    attempts: int = 0
    #: time.monotonic() before which it may not start (retry backoff); 0: any time
    not_before: float = 0.0
    reason: str | None = None
    #: the latest attempt as journaled
    last: AttemptRow | None = None


def _to_mono(wall: float) -> float:
    return time.monotonic() + (wall - time.time()) if wall else 0.0


def _to_wall(mono: float) -> float:
    return time.time() + (mono - time.monotonic()) if mono else 0.0


class ItemStore:
    def __init__(self, journal: Journal, config: Config, run_id: int) -> None:
        self.journal = journal
        self.config = config
        self.run_id = run_id
        self.items: dict[int, Item] = {}
        #: increases with every change; the change log says which item changed when
        self.version = 0
        self._changes: dict[int, int] = {}  # item id -> version of its last change, oldest first
        self._count: Counter[tuple[str, ItemState]] = Counter()
        self._open_cells: Counter[tuple[str, date]] = Counter()
        self._open_dates: Counter[str] = Counter()  # processor -> dates of its open items
        self._running_tables: Counter[str] = Counter()  # table -> running items writing it
        self._phase_index = {ph.name: i for i, ph in enumerate(config.phases)}
        #: pending items in dispatch order (None: to be sorted); items that left PENDING stay
        #: until half the list has, so a dispatch pass never re-sorts everything
        self._order: list[Item] | None = None
        self._stale = 0
        #: items done by this engine (not before a resume): what a rate may count
        self.done_here = 0
        #: items told to wait (retry backoff): the only ones a wake-up timer looks at
        self._delayed: dict[int, Item] = {}

    # -- building ------------------------------------------------------------------------

    def load(self, rows: Sequence[ItemRow], last: Mapping[int, AttemptRow]) -> None:
        """Items as journaled (a resumed run, or one just planned)."""
        for row in rows:
            self._add(
                Item(
                    id=row.id,
                    processor=self.config.processor(row.processor),
                    phase=self.config.phase_of(row.processor),
                    dates=row.dates,
                    state=ItemState(row.state),
                    attempts=row.attempts,
                    not_before=_to_mono(row.not_before),
                    reason=row.reason,
                    last=last.get(row.id),
                )
            )

    def _add(self, item: Item) -> None:
        self.items[item.id] = item
        if item.not_before:
            self._delayed[item.id] = item
        self._track(item, +1)
        self._changed(item)

    # -- reading -------------------------------------------------------------------------

    def count(self, state: ItemState, phase: str | None = None) -> int:
        if phase is not None:
            return self._count[phase, state]
        return sum(self._count[ph, state] for ph in self._phase_index)

    def counts(self) -> dict[ItemState, int]:
        return {state: self.count(state) for state in ItemState}

    def is_open(self, processor: str, day: date) -> bool:
        """Some pending or running item will (re)write this cell."""
        return self._open_cells[processor, day] > 0

    def running_on(self, table: str) -> int:
        """Running items whose processor writes `table` (those being verified included)."""
        return self._running_tables[table]

    def open_dates(self) -> Mapping[str, int]:
        """Per processor, the dates its pending and running items hold (for ETAs)."""
        return self._open_dates

    def changed_at(self, item_id: int) -> int:
        """The version of the item's last change."""
        return self._changes[item_id]

    def bump(self) -> int:
        """A new version for a change that is not an item's (a warehouse re-read)."""
        self.version += 1
        return self.version

    def changed_since(self, version: int) -> list[Item]:
        """Items changed after `version`, oldest change first: cost is what changed."""
        changed = []
        for item_id, at in reversed(self._changes.items()):
            if at <= version:
                break
            changed.append(self.items[item_id])
        changed.reverse()
        return changed

    def retry_times(self) -> list[float]:
        """time.monotonic() at which pending items in retry backoff may start."""
        now = time.monotonic()
        self._delayed = {
            i.id: i
            for i in self._delayed.values()
            if i.state is ItemState.PENDING and i.not_before > now
        }
        return [i.not_before for i in self._delayed.values()]

    def pending(self) -> list[Item]:
        """Pending items in dispatch order (phase, first date, id), possibly with a few that no
        longer are: callers check `state`."""
        if self._order is None:
            self._order = sorted(
                (i for i in self.items.values() if i.state is ItemState.PENDING),
                key=self._dispatch_key,
            )
            self._stale = 0
        elif self._stale > len(self._order) // 2:
            self._order = [i for i in self._order if i.state is ItemState.PENDING]
            self._stale = 0
        else:
            # Items leave from the front (oldest dates go first): drop that prefix at once.
            order = self._order
            head = 0
            while head < len(order) and order[head].state is not ItemState.PENDING:
                head += 1
            if head:
                del order[:head]
                self._stale -= head
        return self._order

    def _dispatch_key(self, item: Item) -> tuple[int, date, int]:
        return self._phase_index[item.phase.name], item.dates[0], item.id

    # -- writing (each journaled before memory changes) -----------------------------------

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self.journal.transaction()

    def set_state(self, item: Item, state: ItemState, *, reason: str | None) -> None:
        self.journal.set_item_state(self.run_id, item.id, state.value, reason)
        self._move(item, state, reason)

    def _move(self, item: Item, state: ItemState, reason: str | None) -> None:
        self._track(item, -1)
        if state is ItemState.DONE and item.state is not ItemState.DONE:
            self.done_here += 1
        item.state = state
        item.reason = reason
        self._track(item, +1)
        self._changed(item)

    def begin_attempt(
        self,
        item: Item,
        argv: Sequence[str],
        log_path: Path,
        *,
        executor: str = "local",
        reference: Callable[[int], str | None] | None = None,
    ) -> AttemptRow:
        """The item goes running and its next attempt is journaled, in one commit; with the
        executor's name for it (`reference(attempt id)`) where that is known before the start,
        so no crash leaves a job behind that the journal cannot name."""
        # The item's attempts are numbered here only: its last one is always in `item.last`.
        number = item.last.number + 1 if item.last else 1
        with self.transaction():
            self.set_state(item, ItemState.RUNNING, reason=None)
            attempt = self.journal.start_attempt(item.id, number, argv, log_path, executor=executor)
            ref = reference(attempt.id) if reference is not None else None
            if ref is not None:
                self.journal.attempt_named(attempt.id, ref)
                attempt = replace(attempt, remote_ref=ref)
            item.last = attempt
        return item.last

    def launched(
        self, item: Item, pid: int, pgid: int, started_at: float, start_ticks: int | None
    ) -> AttemptRow:
        assert item.last is not None
        self.journal.attempt_launched(item.last.id, pid, pgid, started_at, start_ticks)
        item.last = replace(
            item.last, pid=pid, pgid=pgid, started_at=started_at, start_ticks=start_ticks
        )
        self._changed(item)
        return item.last

    def launched_remote(self, item: Item, ref: str, started_at: float) -> AttemptRow:
        """An attempt that runs elsewhere has started, named `ref` by its executor."""
        assert item.last is not None
        self.journal.attempt_named(item.last.id, ref, started_at=started_at)
        item.last = replace(item.last, remote_ref=ref, started_at=started_at)
        self._changed(item)
        return item.last

    def end_attempt(
        self,
        item: Item,
        attempt: AttemptRow,
        *,
        exit_code: int | None,
        reason: str,
        outcome: str,
        duration: float,
        tail: Sequence[str],
        leftovers: int = 0,
    ) -> AttemptRow:
        """Journal the end of `attempt` (the item's next state belongs in the same transaction:
        the caller opens it)."""
        ended = self.journal.end_attempt(
            attempt,
            exit_code=exit_code,
            reason=reason,
            outcome=outcome,
            duration=duration,
            tail=tail,
            leftovers=leftovers,
        )
        if item.last is None or item.last.id == attempt.id:
            item.last = ended
        self._changed(item)
        return ended

    def retry_later(self, item: Item, *, attempts: int, delay: float, reason: str) -> None:
        """Back to pending, not before `delay` seconds from now."""
        not_before = time.monotonic() + delay
        with self.transaction():
            self.journal.update_item(item.id, attempts=attempts, not_before=_to_wall(not_before))
            self.set_state(item, ItemState.PENDING, reason=reason)
        item.attempts, item.not_before = attempts, not_before
        self._delayed[item.id] = item

    def give_up(self, item: Item, *, attempts: int, reason: str) -> None:
        with self.transaction():
            self.journal.update_item(item.id, attempts=attempts)
            self.set_state(item, ItemState.FAILED, reason=reason)
        item.attempts = attempts

    def reset(self, item: Item, *, reason: str) -> None:
        """Queued again with every retry back (an operator's retry), journaled as such."""
        with self.transaction():
            self.journal.update_item(item.id, attempts=0, not_before=0.0)
            self.set_state(item, ItemState.PENDING, reason=reason)
        item.attempts, item.not_before = 0, 0.0

    def narrow(self, item: Item, groups: Sequence[Sequence[date]]) -> list[Item]:
        """The item keeps the first group of its dates; each further group becomes an item."""
        with self.transaction():
            self.journal.update_item(item.id, dates=tuple(groups[0]))
            ids = self.journal.add_items(
                self.run_id, [(item.processor.name, item.phase.name, g) for g in groups[1:]]
            )
        self._track(item, -1)
        item.dates = tuple(groups[0])
        self._track(item, +1)
        self._changed(item)
        added = [
            Item(id=i, processor=item.processor, phase=item.phase, dates=tuple(g))
            for i, g in zip(ids, groups[1:], strict=True)
        ]
        for new in added:
            self._add(new)
        return added

    # -- indexes -------------------------------------------------------------------------

    def _changed(self, item: Item) -> None:
        self.version += 1
        self._changes.pop(item.id, None)
        self._changes[item.id] = self.version

    def _track(self, item: Item, sign: int) -> None:
        self._count[item.phase.name, item.state] += sign
        if item.state is ItemState.RUNNING:
            self._running_tables[item.processor.table] += sign
        if item.state in OPEN:
            name = item.processor.name
            for day in item.dates:
                self._open_cells[name, day] += sign
            self._open_dates[name] += sign * len(item.dates)
        if item.state is ItemState.PENDING:
            if sign < 0:
                self._stale += 1
            elif self._order is not None:  # a newcomer (a retry, say) goes into its place
                bisect.insort(self._order, item, key=self._dispatch_key)
