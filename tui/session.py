"""What the dashboard holds besides widgets: coverage, the grid, the engine of the current run.

The engine runs on the App's event loop (an App-level worker, so it outlives any screen); this
class turns its snapshots into the few grid cells that changed since the last frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from core.config import Config
from core.coverage import CellState, Coverage, measure, refresh_cost
from core.engine import Engine, EngineEvent, EngineSnapshot, ItemState, RunRequest
from core.grid import Grid, Overlay, build_grid, refresh_cells
from core.journal import EngineLock, Journal
from core.warehouse import Warehouse, open_warehouse

ITEM_TO_CELL = {
    ItemState.PENDING: CellState.QUEUED,
    ItemState.RUNNING: CellState.RUNNING,
    ItemState.FAILED: CellState.FAILED,
    ItemState.BLOCKED: CellState.BLOCKED,
}


@dataclass
class Session:
    config: Config
    read_only: bool
    journal: Journal
    warehouse: Warehouse
    coverage: Coverage | None = None
    grid: Grid | None = None
    engine: Engine | None = None
    lock: EngineLock | None = None
    #: cells whose latest attempt, in an earlier run, failed
    past_failures: set[tuple[str, date]] = field(default_factory=set)
    _overlay: dict[tuple[str, date], CellState] = field(default_factory=dict)
    _item_states: dict[int, ItemState] = field(default_factory=dict)
    _engine_coverage: Coverage | None = None

    @classmethod
    def open(cls, config: Config, read_only: bool) -> Session:
        return cls(config, read_only, Journal(config.state_path), open_warehouse(config))

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
        self.warehouse.close()
        self.journal.close()

    @property
    def range(self) -> tuple[date, date]:
        return self.config.calendar.start, self.config.calendar.end_date(date.today())

    # -- coverage ------------------------------------------------------------------------

    def cached_coverage(self) -> Coverage | None:
        cached = self.journal.load_coverage(self.config)
        if cached is not None and (cached.calendar.start, cached.calendar.end) != self.range:
            return None
        return cached

    def refresh_coverage(self) -> Coverage:
        """Blocking: call from a thread worker."""
        start, end = self.range
        return measure(self.config, self.warehouse, start, end)

    def refresh_cost(self) -> int | None:
        """Blocking (a BigQuery dry run): call from a thread worker."""
        start, end = self.range
        return refresh_cost(self.config, self.warehouse, start, end)

    def adopt_coverage(self, coverage: Coverage, *, save: bool) -> Grid:
        self.coverage = coverage
        if save:
            self.journal.save_coverage(coverage)
            self.past_failures = self.journal.failed_cells(*self.range)
        self.grid = build_grid(coverage, self.overlay())
        return self.grid

    def overlay(self) -> Overlay:
        past = {cell: CellState.FAILED for cell in self.past_failures}
        return past | self._overlay

    # -- the run -------------------------------------------------------------------------

    def new_engine(
        self,
        request: RunRequest,
        on_event: Callable[[EngineEvent], None],
        preflight: dict[str, Any] | None = None,
    ) -> Engine:
        if self.lock is None:
            lock = EngineLock(self.config.state_path)
            lock.acquire()  # raises UserError naming the owner if a headless run holds it
            self.lock = lock
        self.engine = Engine(
            self.config,
            self.warehouse,
            request,
            journal=self.journal,
            on_event=on_event,
            linger=True,
            preflight=preflight,
        )
        self._item_states.clear()
        return self.engine

    def apply_snapshot(self, snapshot: EngineSnapshot) -> set[int]:
        """Fold an engine snapshot into the grid; returns the grid rows to repaint."""
        if self.grid is None or self.coverage is None:
            return set()
        cells: set[tuple[str, date]] = set()
        overlay: dict[tuple[str, date], CellState] = {}
        processors = [p.name for p in self.config.processors]
        for item in snapshot.items:
            cell_state = ITEM_TO_CELL.get(item.state)
            if cell_state is not None:
                for day in item.dates:
                    overlay[item.processor, day] = cell_state
            if self._item_states.get(item.id) is not item.state:
                self._item_states[item.id] = item.state
                # a finished item changed warehouse rows: its dates may change other rules too
                cells |= {(name, day) for name in processors for day in item.dates}
        cells |= overlay.keys() ^ self._overlay.keys()
        cells |= {k for k, v in overlay.items() if self._overlay.get(k) is not v}
        self._overlay = overlay
        if snapshot.coverage is not None and snapshot.coverage is not self._engine_coverage:
            self._engine_coverage = snapshot.coverage
            self.coverage = self.coverage.merged(snapshot.coverage)
        for cell in cells:
            if cell in self.past_failures and overlay.get(cell) is None:
                self.past_failures.discard(cell)
        return refresh_cells(self.grid, self.coverage, self.overlay(), cells)


def event_is_news(event: EngineEvent) -> bool:
    """Events worth a toast; the rest show in the queue and the heatmap."""
    return event.kind in ("item_failed", "cooldown", "item_blocked", "verify_failed")
