"""What the dashboard holds besides widgets: coverage, the grid, and its mirror of the run.

The engine runs in a process of its own (started detached by `s`, or by `backfill run`); the
dashboard attaches to it through its socket and sees it only through `core.engine.api`: each
tick it asks for the snapshot since the version it last saw and folds what changed (items,
warehouse re-reads) into its own item views, the heatmap overlay and the grid cells those
touch. Quitting detaches; the run goes on.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import anyio

from core.calendar import days_between
from core.config import Config
from core.coverage import CellState, Coverage, Reread, measure, refresh_cost
from core.engine.api import (
    EngineSnapshot,
    ItemState,
    ItemView,
    KnownEmpty,
    Reply,
    RunRequest,
    Who,
)
from core.grid import Grid, Overlay, build_grid, refresh_cells
from core.service.client import EngineGone, NoEngine, RemoteEngine
from core.service.detach import Started, last_words, run_args, start_detached
from core.state import JOURNAL_FILE, Journal
from core.warehouse import Warehouse, open_warehouse

#: a re-read longer than this is drawn by a grid rebuild in a thread, not cell by cell on the loop
REDRAW_IN_PLACE_DAYS = 62
#: item views asked for per poll: a page costs the loop ~10-20 ms to decode and fold (1,000 held
#: it over 50 ms on 2 busy cores); a full page is followed by the next one at once (PAGE_GAP), so
#: a 30,000-item first snapshot still draws in ~8 s
PER_POLL = 500
#: seconds between the pages of a big snapshot: the loop draws a frame and takes keys in between
PAGE_GAP = 0.05

ITEM_TO_CELL = {
    ItemState.PENDING: CellState.QUEUED,
    ItemState.RUNNING: CellState.RUNNING,
    ItemState.FAILED: CellState.FAILED,
    ItemState.BLOCKED: CellState.BLOCKED,
    ItemState.CANCELLED: CellState.CANCELLED,
}
#: the outcome of a cell's latest attempt in an earlier run -> what the heatmap shows of it
#: (as `Journal.failed_cells`: an incomplete attempt is a failure)
PAST_STATE = {
    "failed": CellState.FAILED,
    "incomplete": CellState.FAILED,
    "cancelled": CellState.CANCELLED,
}


@dataclass(frozen=True)
class Refreshed:
    coverage: Coverage
    grid: Grid
    #: the overlay the grid was drawn with
    overlay: Overlay
    past: dict[tuple[str, date], CellState]


@dataclass
class Session:
    config: Config
    read_only: bool
    journal: Journal
    warehouse: Warehouse
    coverage: Coverage | None = None
    grid: Grid | None = None
    engine: RemoteEngine | None = None
    #: the engine went away (crashed, killed, finished): why, in a few words
    gone: str | None = None
    #: the latest snapshot of the engine (its header: counts, state, concurrency)
    snapshot: EngineSnapshot | None = None
    #: every item of the run, as last seen
    items: dict[int, ItemView] = field(default_factory=dict)
    #: cells whose latest attempt, in an earlier run, failed or was cancelled: that state
    past: dict[tuple[str, date], CellState] = field(default_factory=dict)
    #: (processor, date) -> the engine's state for it, from the item that holds it
    _overlay: dict[tuple[str, date], CellState] = field(default_factory=dict)
    #: (processor, date) -> the latest item holding that cell
    _cell_item: dict[tuple[str, date], int] = field(default_factory=dict)
    #: re-reads received before the dashboard had its own coverage
    _rereads: list[Reread] = field(default_factory=list)
    #: the coverage changed over a long range: the grid wants a rebuild (`redraw`)
    grid_stale: bool = False
    #: cells changed since the last poll asked for a rebuild, for `adopt_redraw` to catch up
    _touched: set[tuple[str, date]] = field(default_factory=set)
    _redrawing: bool = False

    @classmethod
    def open(cls, config: Config, read_only: bool) -> Session:
        """Read-only, the journal is opened so that nothing can write it. Where there is none
        yet (nothing ran here), an empty one is made first, as without --read-only."""
        state = config.state_path
        if not read_only:
            return cls(config, read_only, Journal(state), open_warehouse(config))
        if not (state / JOURNAL_FILE).exists():
            Journal(state).close()
        journal = Journal(state, read_only=True)
        return cls(config, read_only, journal, open_warehouse(config))

    def close(self) -> None:
        self.warehouse.close()
        self.journal.close()

    @property
    def range(self) -> tuple[date, date]:
        return self.config.calendar.start, self.config.calendar.end_date(date.today())

    # -- coverage ------------------------------------------------------------------------

    def cached_coverage(self) -> Refreshed | None:
        """Blocking: the journal's last known coverage, to show at once while a slow warehouse
        refreshes."""
        cached = self.journal.load_coverage(self.config)
        if cached is None or (cached.calendar.start, cached.calendar.end) != self.range:
            return None
        past = self._past(*self.range)
        overlay = past | self._overlay
        return Refreshed(cached, build_grid(cached, overlay), overlay, past)

    def refresh_coverage(self) -> Refreshed:
        """Blocking (warehouse and journal reads, a grid of every day): call from a thread
        worker. The grid is drawn with the overlay as it was then; `adopt_coverage` catches up."""
        start, end = self.range
        coverage = measure(self.config, self.warehouse, start, end).with_known_empty(
            self.journal.known_empty_cells(start, end)
        )
        past = self._past(start, end)
        overlay = past | self._overlay
        return Refreshed(coverage, build_grid(coverage, overlay), overlay, past)

    def _past(self, start: date, end: date) -> dict[tuple[str, date], CellState]:
        """Blocking: cells whose latest attempt of an earlier run failed or was cancelled."""
        return {
            cell: PAST_STATE[outcome]
            for cell, outcome in self.journal.latest_outcomes(start, end).items()
            if outcome in PAST_STATE
        }

    def redraw(self) -> Refreshed:
        """Blocking: the grid of the coverage as it is now, for `adopt_redraw`."""
        assert self.coverage is not None
        overlay = dict(self.overlay())
        return Refreshed(
            self.coverage, build_grid(self.coverage, overlay), overlay, dict(self.past)
        )

    def adopt_redraw(self, fresh: Refreshed) -> Grid:
        """Show a grid rebuilt off the loop; what changed meanwhile is redrawn here."""
        assert self.coverage is not None
        overlay, drawn = self.overlay(), fresh.overlay
        stale = {k for k in drawn.keys() | overlay.keys() if drawn.get(k) != overlay.get(k)}
        stale |= self._touched
        self._touched, self._redrawing = set(), False
        refresh_cells(fresh.grid, self.coverage, overlay, stale)
        self.grid = fresh.grid
        return fresh.grid

    def refresh_cost(self) -> int | None:
        """Blocking (a BigQuery dry run): call from a thread worker."""
        start, end = self.range
        return refresh_cost(self.config, self.warehouse, start, end)

    def adopt_refresh(self, fresh: Refreshed, *, save: bool) -> Grid:
        """Show coverage read off the loop: cells whose overlay changed since its grid was drawn
        are redrawn here."""
        # Coverage and grid live until the next refresh: out of the collector's way (a full
        # collection walking them paused the loop for 80 ms).
        gc.freeze()
        self.coverage = fresh.coverage
        self.past = fresh.past
        if save and not self.journal.read_only:
            self.journal.save_coverage(fresh.coverage)
        overlay, drawn = self.overlay(), fresh.overlay
        stale = {k for k in drawn.keys() | overlay.keys() if drawn.get(k) != overlay.get(k)}
        refresh_cells(fresh.grid, fresh.coverage, overlay, stale)
        self.grid = fresh.grid
        return fresh.grid

    def overlay(self) -> Overlay:
        """The engine's states over the warehouse's: this run's items first, then cells whose
        latest attempt of an earlier run failed (a view: nothing is copied per tick)."""
        return _Overlay(self._overlay, self.past)

    async def known_empty(
        self, cells: Mapping[str, Iterable[date]], reason: str, *, undo: bool
    ) -> tuple[list[Reply], set[int]]:
        """Mark (or unmark) cells known empty: through the live engine if there is one (it
        settles its items of them), else in the journal. The grid shows them at once, without
        waiting for the engine's next snapshot; returns the replies and the rows to repaint."""
        replies: list[Reply] = []
        who = Who.me("dashboard")
        for processor, days in sorted(cells.items()):
            dates = frozenset(days)
            if self.engine is not None:
                replies.append(await self.engine.submit(KnownEmpty(processor, dates, reason, undo)))
                continue

            def write(processor: str = processor, dates: frozenset[date] = dates) -> int:
                if undo:
                    return self.journal.unmark_known_empty(
                        processor, dates, who.describe(), run_id=None
                    )
                return self.journal.mark_known_empty(
                    processor, dates, reason, who.describe(), run_id=None
                )

            count = await anyio.to_thread.run_sync(write)
            done = "known-empty marks undone" if undo else "cells marked known empty"
            replies.append(Reply(True, f"{processor}: {count} {done}.", count))
        changed = {(p, d) for p, days in cells.items() for d in days}
        if self.coverage is None or not all(r.ok for r in replies):
            return replies, set()
        marked = self.coverage.known_empty
        return replies, self._take_known_empty(marked - changed if undo else marked | changed)

    def _take_known_empty(self, marked: frozenset[tuple[str, date]]) -> set[int]:
        """The coverage with these cells known empty; the grid rows that changed."""
        assert self.coverage is not None
        changed = marked ^ self.coverage.known_empty
        if not changed:
            return set()
        self.coverage = self.coverage.with_known_empty(marked)
        if self.grid is None:
            return set()
        return refresh_cells(self.grid, self.coverage, self.overlay(), changed)

    # -- the run -------------------------------------------------------------------------

    async def attach(self) -> bool:
        """Attach to the state_dir's live engine, if there is one."""
        try:
            engine = await RemoteEngine.connect(
                self.config.state_path, Who.me("dashboard"), read_only=self.read_only
            )
        except NoEngine:
            return False
        await self.detach()
        self.engine = engine
        self.gone = None
        self.snapshot = None
        self.items.clear()
        self._rereads.clear()
        self._overlay.clear()
        self._cell_item.clear()
        return True

    async def detach(self) -> None:
        """Leave the engine (it goes on); its cells keep the states last seen."""
        if self.engine is not None:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await self.engine.aclose()
            self.engine = None

    async def start(self, request: RunRequest, preflight: dict[str, Any] | None) -> Started:
        """Start a detached engine on this request and attach to it."""
        started = await start_detached(
            self.config.state_path,
            self.config.path.absolute(),
            run_args(request),
            preflight=preflight,
        )
        if not await self.attach():
            raise EngineGone(f"the engine (pid {started.pid}) ended before we could attach")
        return started

    def why_gone(self) -> str:
        """Why the engine went: the run's end as journaled, or the engine's last words."""
        snap = self.snapshot
        if snap is not None and snap.run_id is not None and self.journal.unfinished_run() is None:
            ended = next((r for r in self.journal.runs(5) if r.id == snap.run_id), None)
            status = ended.status if ended else "ended"
            return {
                "finished": f"run #{snap.run_id} finished: every targeted cell is complete",
                "incomplete": f"run #{snap.run_id} ended with cells not complete (see the map)",
                "stopped": f"run #{snap.run_id} was stopped; starting it again resumes it",
            }.get(status, f"run #{snap.run_id} ended ({status})")
        return last_words(self.config.state_path) or "it left no words"

    def item_at(self, processor: str, day: date) -> ItemView | None:
        """The latest item of this run that holds the cell."""
        item_id = self._cell_item.get((processor, day))
        return self.items.get(item_id) if item_id is not None else None

    async def poll(self) -> tuple[set[int], list[ItemView]]:
        """Fold what changed in the engine since the last poll into the items, the coverage and
        the grid; returns the grid rows to repaint and the items taken in. A big change (a
        30,000-item run's first snapshot) comes in pages of PER_POLL items, one a tick, so no
        tick holds the event loop for long."""
        if self.engine is None:
            return set(), []
        since = self.snapshot.version if self.snapshot is not None else 0
        try:
            snap = await self.engine.snapshot(since, PER_POLL)
        except EngineGone:
            self.engine = None
            self.gone = self.why_gone()
            return set(), []
        self.snapshot = snap
        taken = list(snap.changed)
        if len(taken) == PER_POLL:
            # A page of a big run's first snapshot: long-lived objects the collector need not
            # walk again (full collections of a 30,000-item mirror paused the loop 150 ms).
            gc.freeze()
        if self.grid is None or self.coverage is None:
            # The dashboard's own coverage is not there yet: keep the items, draw later.
            self._take_items(taken, set())
            self._rereads.extend(snap.rereads)
            return set(), taken
        cells: set[tuple[str, date]] = set()
        self._take_items(taken, cells)
        # New rows may change other processors' rules too (min_share_of): redraw every row.
        processors = [p.name for p in self.config.processors]
        rereads, self._rereads = [*self._rereads, *snap.rereads], []
        for fresh in rereads:
            self.coverage = self.coverage.merged(fresh)
            first, last = max(fresh.start, self.coverage.start), min(fresh.end, self.coverage.end)
            if (last - first).days >= REDRAW_IN_PLACE_DAYS:
                self.grid_stale = self._redrawing = True  # a whole run's: redraw it off the loop
                continue
            cells |= {(name, day) for name in processors for day in days_between(first, last)}
        for cell in cells:
            if cell in self.past and cell not in self._overlay:
                del self.past[cell]
        rows: set[int] = set()
        if snap.known_empty is not None:
            # The engine speaks for its run's range only; marks outside it are kept.
            first, last = snap.request.start, snap.request.end
            kept = {c for c in self.coverage.known_empty if not first <= c[1] <= last}
            rows = self._take_known_empty(frozenset(kept | snap.known_empty))
        if self._redrawing:
            self._touched |= cells
        if not cells:
            return rows, taken
        return rows | refresh_cells(self.grid, self.coverage, self.overlay(), cells), taken

    def _take_items(self, changed: Iterable[ItemView], cells: set[tuple[str, date]]) -> None:
        for view in changed:
            old = self.items.get(view.id)
            self.items[view.id] = view
            if old is not None:
                for day in old.dates:
                    cell = (old.processor, day)
                    if self._cell_item.get(cell) == view.id:
                        self._overlay.pop(cell, None)
                        cells.add(cell)
            state = ITEM_TO_CELL.get(view.state)
            for day in view.dates:
                cell = (view.processor, day)
                if self._cell_item.get(cell, view.id) <= view.id:
                    self._cell_item[cell] = view.id
                    if view.state is ItemState.DONE:
                        # this run's attempt is the cell's latest: an earlier failure is history
                        self.past.pop(cell, None)
                    if state is None:
                        self._overlay.pop(cell, None)
                    else:
                        self._overlay[cell] = state
                    cells.add(cell)


class _Overlay(Mapping[tuple[str, date], CellState]):
    """This run's cell states, over those of the cells an earlier run failed or cancelled."""

    def __init__(
        self,
        run: Mapping[tuple[str, date], CellState],
        past: Mapping[tuple[str, date], CellState],
    ) -> None:
        self._run = run
        self._past = past

    def __getitem__(self, cell: tuple[str, date]) -> CellState:
        state = self._run.get(cell)
        if state is not None:
            return state
        return self._past[cell]

    def get(self, cell: tuple[str, date], default: Any = None) -> Any:
        state = self._run.get(cell)
        if state is not None:
            return state
        return self._past.get(cell, default)

    def __iter__(self) -> Iterator[tuple[str, date]]:
        return iter(self._run.keys() | self._past.keys())

    def __len__(self) -> int:
        return len(self._run.keys() | self._past.keys())
