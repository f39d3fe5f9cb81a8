"""Rows per (processor, date) turned into cell states, from one grouped scan per table.

A processor's cell is complete when its rows reach every completeness rule it has; rows that fall
short make it partial (the seed's "successful is not complete" lesson). A phase's state on a date
is the worst of its processors: the seed's monitor took the best and hid lagging tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from core.calendar import (
    ExpectedCalendar,
    bootstrap_dates,
    build_calendar,
    days_between,
    expected_scan,
)
from core.config import Config, Phase, Processor
from core.warehouse import Scan, ScanResult, Warehouse


class CellState(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    MISSING = "missing"
    NOT_EXPECTED = "not_expected"
    SKIPPED = "skipped"
    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"
    BLOCKED = "blocked"
    #: expected, no (or too few) rows, and an operator journaled that this is right (a game date
    #: with no games for that table): counts as complete everywhere, and can be undone
    KNOWN_EMPTY = "known_empty"
    #: the latest attempt was cancelled (by an operator, or with a stopped run) and the date is
    #: still not complete: not an error, not forgotten either (the journal's, across restarts)
    CANCELLED = "cancelled"


#: states that count as complete in coverage shares, gates and a run's verdict
COMPLETE_STATES = frozenset({CellState.COMPLETE, CellState.KNOWN_EMPTY})


def counts_complete(state: CellState) -> bool:
    return state in COMPLETE_STATES


#: How bad a state is when several processors share a date: the phase shows the worst.
WORST_FIRST = (
    CellState.FAILED,
    CellState.BLOCKED,
    CellState.CANCELLED,
    CellState.MISSING,
    CellState.PARTIAL,
    CellState.RUNNING,
    CellState.QUEUED,
    CellState.KNOWN_EMPTY,
    CellState.COMPLETE,
    CellState.SKIPPED,
    CellState.NOT_EXPECTED,
)
_RANK = {state: i for i, state in enumerate(WORST_FIRST)}


def worst(states: list[CellState]) -> CellState:
    return min(states, key=_RANK.__getitem__)


@dataclass(frozen=True)
class Cell:
    state: CellState
    rows: int
    #: rows the completeness rule asks for that date (0 where nothing is expected)
    required: int


@dataclass(frozen=True)
class Coverage:
    config: Config
    calendar: ExpectedCalendar
    rows: Mapping[str, Mapping[date, int]]
    #: processors whose table does not exist yet (an output table before its first run)
    absent_tables: frozenset[str]
    #: phase name -> its bootstrap dates in range
    skipped: Mapping[str, frozenset[date]]
    measured_at: datetime
    #: (processor, date) cells an operator marked known empty (the journal's `known_empty`);
    #: the warehouse knows nothing of them, so whoever has a journal attaches them
    known_empty: frozenset[tuple[str, date]] = frozenset()

    def with_known_empty(self, cells: Iterable[tuple[str, date]]) -> Coverage:
        return replace(self, known_empty=frozenset(cells))

    def rows_of(self, processor: str, day: date) -> int:
        return self.rows[processor].get(day, 0)

    def required(self, processor: Processor, day: date) -> int:
        need = processor.min_rows
        if processor.min_rows_per_calendar_row:
            per_row = processor.min_rows_per_calendar_row * self.calendar.expected.get(day, 0)
            need = max(need, math.ceil(per_row - 1e-9))
        if processor.min_share_of:
            other = self.rows_of(processor.min_share_of.processor, day)
            need = max(need, math.ceil(processor.min_share_of.share * other - 1e-9))
        return need

    def cell(self, processor: Processor, day: date) -> Cell:
        rows = self.rows_of(processor.name, day)
        if not self.calendar.is_expected(day):
            return Cell(CellState.NOT_EXPECTED, rows, 0)
        phase = self.config.phase_of(processor.name)
        if day in self.skipped[phase.name]:
            return Cell(CellState.SKIPPED, rows, 0)
        need = self.required(processor, day)
        if rows >= need:
            return Cell(CellState.COMPLETE, rows, need)
        if (processor.name, day) in self.known_empty:
            return Cell(CellState.KNOWN_EMPTY, rows, need)
        return Cell(CellState.PARTIAL if rows else CellState.MISSING, rows, need)

    def phase_state(self, phase: Phase, day: date) -> CellState:
        return worst([self.cell(p, day).state for p in phase.processors])

    def phase_coverage(self, phase: Phase) -> float | None:
        """Share of the phase's due dates (expected, not skipped) complete for every processor."""
        due = [d for d in self.calendar.expected_dates if d not in self.skipped[phase.name]]
        if not due:
            return None
        return sum(counts_complete(self.phase_state(phase, d)) for d in due) / len(due)

    def window(self, start: date, end: date) -> Coverage:
        """The same counts seen over a narrower range (planning a run inside a refresh)."""
        cal = self.calendar
        calendar = ExpectedCalendar(
            start, end, {d: n for d, n in cal.expected.items() if start <= d <= end}
        )
        skipped = {
            phase: frozenset(d for d in days if start <= d <= end)
            for phase, days in self.skipped.items()
        }
        return replace(self, calendar=calendar, skipped=skipped)

    @property
    def start(self) -> date:
        return self.calendar.start

    @property
    def end(self) -> date:
        return self.calendar.end

    def merged(self, newer: Coverage | Reread) -> Coverage:
        """This coverage with `newer`'s rows over `newer`'s range for the processors `newer`
        measured (a re-read of a few dates after an attempt). The calendar stays this one's."""
        lo, hi = newer.start, newer.end
        span = days_between(lo, hi)
        rows = dict(self.rows)
        for name, fresh in newer.rows.items():
            kept = dict(self.rows[name])  # a C-level copy; then touch only the re-read days
            for day in span:
                kept.pop(day, None)
            kept.update(fresh)
            rows[name] = kept
        absent = (self.absent_tables - newer.rows.keys()) | newer.absent_tables
        return replace(self, rows=rows, absent_tables=absent, measured_at=newer.measured_at)


@dataclass(frozen=True)
class Reread:
    """Fresh counts of some processors' tables over a range: what verifying an attempt reads."""

    start: date
    end: date
    rows: Mapping[str, Mapping[date, int]]
    absent_tables: frozenset[str]
    measured_at: datetime


def reread(
    config: Config, warehouse: Warehouse, start: date, end: date, only: frozenset[str]
) -> Reread:
    """The tables of the `only` processors over the range, in one `rows_per_date` call; not the
    calendar, which a verification takes from the run's coverage."""
    scans = refresh_scans(config, only)
    results = warehouse.rows_per_date(list(scans.values()), start, end, purpose="verify")
    return Reread(start, end, *_by_processor(scans, results), datetime.now().astimezone())


def refresh_scans(config: Config, only: frozenset[str] | None = None) -> dict[str, Scan]:
    """The scan of every processor table (or `only` those processors), by processor name."""
    return {
        p.name: Scan(p.table, p.date_column)
        for p in config.processors
        if not only or p.name in only
    }


def _wanted(config: Config, scans: Mapping[str, Scan]) -> list[Scan]:
    calendar_scan = expected_scan(config)
    return list(dict.fromkeys([*scans.values(), *([calendar_scan] if calendar_scan else [])]))


def measure(
    config: Config,
    warehouse: Warehouse,
    start: date,
    end: date,
) -> Coverage:
    """One refresh: the calendar and every processor table in a single `rows_per_date` call."""
    calendar_scan = expected_scan(config)
    scans = refresh_scans(config)
    results = warehouse.rows_per_date(_wanted(config, scans), start, end)
    calendar = build_calendar(config, start, end, results[calendar_scan] if calendar_scan else None)
    return assemble(config, calendar, *_by_processor(scans, results), datetime.now().astimezone())


def _by_processor(
    scans: Mapping[str, Scan], results: Mapping[Scan, ScanResult]
) -> tuple[dict[str, dict[date, int]], frozenset[str]]:
    """Rows per date of each processor, and the processors whose table does not exist yet."""
    rows = {name: results[scan].counts for name, scan in scans.items()}
    return rows, frozenset(n for n, s in scans.items() if not results[s].table_exists)


def refresh_cost(config: Config, warehouse: Warehouse, start: date, end: date) -> int | None:
    """Bytes a full refresh of the range scans (None where scanning is free)."""
    return warehouse.scan_bytes(_wanted(config, refresh_scans(config)), start, end)


def assemble(
    config: Config,
    calendar: ExpectedCalendar,
    rows: Mapping[str, Mapping[date, int]],
    absent_tables: frozenset[str],
    measured_at: datetime,
) -> Coverage:
    """A Coverage from counts already read (a refresh, or the journal's last known state)."""
    expected = calendar.expected_dates
    return Coverage(
        config=config,
        calendar=calendar,
        rows=rows,
        absent_tables=absent_tables,
        skipped={ph.name: frozenset(bootstrap_dates(config, ph, expected)) for ph in config.phases},
        measured_at=measured_at,
    )
