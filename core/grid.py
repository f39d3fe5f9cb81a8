"""The coverage grid the dashboard draws: one row per processor plus a summary row per phase, one
column per calendar day, a compact state code per cell.

Data states come from the warehouse (Coverage); the engine's states (queued, running, failed,
blocked) are an overlay that wins over them, except that a cell complete in the warehouse stays
complete whatever an attempt said. Codes live in bytearrays so a 2,000-day x 20-row grid is a
few kilobytes and a live update touches only the cells that changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from core.coverage import WORST_FIRST, CellState, Coverage, worst

CODES: tuple[CellState, ...] = tuple(CellState)
CODE: dict[CellState, int] = {state: i for i, state in enumerate(CODES)}
_SETTLED = (CellState.COMPLETE, CellState.KNOWN_EMPTY, CellState.SKIPPED, CellState.NOT_EXPECTED)
#: a code's rank in WORST_FIRST, indexed by code: the worst of a column is a min() over bytes
_RANK_OF_CODE = tuple(WORST_FIRST.index(state) for state in CODES)
#: code -> its rank, and rank -> its code (bytes.translate tables): a phase's summary over a
#: span of columns is a bytewise min over its members' ranks
_RANK_TABLE = bytes(_RANK_OF_CODE[i] if i < len(CODES) else 255 for i in range(256))
_CODE_TABLE = bytes(
    _RANK_OF_CODE.index(i) if i < len(CODES) else CODE[CellState.NOT_EXPECTED] for i in range(256)
)
#: code -> 1 for not expected, else 0 (a bytes.translate table)
_IS_NOT_EXPECTED = bytes(int(i == CODE[CellState.NOT_EXPECTED]) for i in range(256))

Overlay = Mapping[tuple[str, date], CellState]


@dataclass(frozen=True)
class GridRow:
    key: str  # a processor name, or "phase:NAME" for a phase's summary row
    label: str
    phase: str
    is_phase: bool


@dataclass
class Grid:
    days: tuple[date, ...]
    rows: tuple[GridRow, ...]
    codes: list[bytearray]

    def state(self, row: int, column: int) -> CellState:
        return CODES[self.codes[row][column]]

    def row_index(self, key: str) -> int:
        return next(i for i, r in enumerate(self.rows) if r.key == key)

    def column_of(self, day: date) -> int | None:
        offset = (day - self.days[0]).days
        return offset if 0 <= offset < len(self.days) else None


def rows_matching(grid: Grid, text: str) -> set[int] | None:
    """The processor rows a filter keeps: each word must be part of the processor's or its
    phase's name, or the start of a cell state the row has somewhere ("fail", "missing",
    "running"). None: no filter (every row)."""
    words = text.lower().split()
    if not words:
        return None
    states = {w: bytes(CODE[s] for s in CODES if s.value.startswith(w)) for w in words}
    kept = set()
    for index, row in enumerate(grid.rows):
        if row.is_phase:
            continue
        names = f"{row.key} {row.phase}".lower()
        codes = grid.codes[index]
        if all(w in names or any(code in codes for code in states[w]) for w in words):
            kept.add(index)
    return kept


def quiet_runs(grid: Grid, min_days: int) -> list[tuple[int, int]]:
    """Runs of at least `min_days` days that no row expects (an off-season), as (first,
    past-the-last) day indexes: what a view can squeeze without hiding a single cell."""
    if not grid.codes or not grid.days:
        return []
    # Each row as one big int of 0/1 bytes: AND-ing the rows is a bytewise AND at C speed.
    quiet = -1
    for codes in grid.codes:
        quiet &= int.from_bytes(codes.translate(_IS_NOT_EXPECTED))
    mask = quiet.to_bytes(len(grid.days))
    return [m.span() for m in re.finditer(b"\x01{%d,}" % max(1, min_days), mask)]


def cell_state(coverage: Coverage, overlay: Overlay, processor: str, day: date) -> CellState:
    engine = overlay.get((processor, day))
    if engine is CellState.QUEUED or engine is CellState.RUNNING:
        # Work in flight shows as such on every expected date: no need to judge the rows.
        return engine if coverage.calendar.is_expected(day) else CellState.NOT_EXPECTED
    data = coverage.cell(coverage.config.processor(processor), day).state
    if engine is None:
        return data
    if data in _SETTLED and engine in (CellState.FAILED, CellState.BLOCKED, CellState.CANCELLED):
        return data
    if data is CellState.NOT_EXPECTED:
        return data
    return engine


def build_grid(coverage: Coverage, overlay: Overlay | None = None) -> Grid:
    overlay = overlay or {}
    days = tuple(coverage.calendar.days)
    rows: list[GridRow] = []
    codes: list[bytearray] = []
    for phase in coverage.config.phases:
        members = []
        for proc in phase.processors:
            members.append(
                bytearray(CODE[cell_state(coverage, overlay, proc.name, d)] for d in days)
            )
        rows.append(GridRow(f"phase:{phase.name}", phase.label, phase.name, True))
        codes.append(_worst_row(members, len(days)))
        for proc, member in zip(phase.processors, members, strict=True):
            rows.append(GridRow(proc.name, proc.name, phase.name, False))
            codes.append(member)
    return Grid(days, tuple(rows), codes)


def _worst_row(members: list[bytearray], width: int) -> bytearray:
    return bytearray(
        CODE[worst([CODES[m[i]] for m in members])] if members else CODE[CellState.NOT_EXPECTED]
        for i in range(width)
    )


def refresh_cells(
    grid: Grid, coverage: Coverage, overlay: Overlay, cells: Iterable[tuple[str, date]]
) -> set[int]:
    """Recompute the given (processor, day) cells and their phase rows; returns changed rows.

    A run's first snapshot brings a few thousand cells a tick: per cell only its state is
    worked out in Python; the phase rows are redone per span of columns, bytewise."""
    changed: set[int] = set()
    if not grid.days:
        return changed
    index = {r.key: i for i, r in enumerate(grid.rows)}
    first, width = grid.days[0].toordinal(), len(grid.days)
    #: phase -> (first, last) column touched
    spans: dict[str, list[int]] = {}
    codes = grid.codes
    for processor, day in cells:
        row = index.get(processor)
        column = day.toordinal() - first
        if row is None or not 0 <= column < width:
            continue
        code = CODE[cell_state(coverage, overlay, processor, day)]
        line = codes[row]
        if line[column] != code:
            line[column] = code
            changed.add(row)
        phase = grid.rows[row].phase
        span = spans.get(phase)
        if span is None:
            spans[phase] = [column, column]
        elif column < span[0]:
            span[0] = column
        elif column > span[1]:
            span[1] = column
    for phase, (lo, hi) in spans.items():
        summary = index[f"phase:{phase}"]
        members = [codes[i] for i, r in enumerate(grid.rows) if r.phase == phase and not r.is_phase]
        hi += 1
        ranks = [m[lo:hi].translate(_RANK_TABLE) for m in members]
        worst_codes = bytes(map(min, *ranks)) if len(ranks) > 1 else ranks[0]
        fresh = worst_codes.translate(_CODE_TABLE)
        if codes[summary][lo:hi] != fresh:
            codes[summary][lo:hi] = fresh
            changed.add(summary)
    return changed
