"""Coverage counted per phase, processor and season: what `backfill status` reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from core.config import Processor
from core.coverage import CellState, Coverage, worst

NO_SEASON = "(no season)"


@dataclass
class Counts:
    complete: int = 0
    partial: int = 0
    missing: int = 0
    failed: int = 0
    skipped: int = 0
    expected: int = 0
    #: subset of partial + missing whose upstream is not complete that date
    blocked: int = 0
    #: subset of complete: no rows, and an operator journaled that none are due
    known_empty: int = 0

    @property
    def coverage(self) -> float | None:
        """Share of expected, not-skipped dates that are complete."""
        due = self.expected - self.skipped
        return self.complete / due if due else None

    def add(self, state: CellState, *, blocked: bool = False) -> None:
        self.expected += 1
        if state is CellState.COMPLETE:
            self.complete += 1
        elif state is CellState.KNOWN_EMPTY:
            self.complete += 1
            self.known_empty += 1
        elif state is CellState.PARTIAL:
            self.partial += 1
        elif state is CellState.SKIPPED:
            self.skipped += 1
        elif state is CellState.FAILED:
            self.failed += 1
        else:
            self.missing += 1
        self.blocked += blocked


@dataclass
class ProcessorStatus:
    processor: Processor
    table_exists: bool
    counts: Counts
    seasons: dict[str, Counts]


@dataclass
class PhaseStatus:
    name: str
    title: str
    counts: Counts
    seasons: dict[str, Counts]
    processors: list[ProcessorStatus] = field(default_factory=list)


@dataclass
class StatusReport:
    coverage: Coverage
    phases: list[PhaseStatus]
    season_names: list[str]

    @property
    def start(self) -> date:
        return self.coverage.calendar.start

    @property
    def end(self) -> date:
        return self.coverage.calendar.end

    @property
    def expected_dates(self) -> int:
        return len(self.coverage.calendar.expected)


def _season_name(coverage: Coverage, day: date) -> str:
    season = coverage.config.calendar.season_of(day)
    return season.name if season else NO_SEASON


def status_report(coverage: Coverage, failed: Set[tuple[str, date]] = frozenset()) -> StatusReport:
    """`failed`: cells whose latest attempt failed (from the journal); they count as failed
    while they are not complete."""
    config = coverage.config

    def state_of(proc: Processor, day: date) -> CellState:
        state = coverage.cell(proc, day).state
        if (proc.name, day) in failed and state in (CellState.MISSING, CellState.PARTIAL):
            return CellState.FAILED
        return state

    expected = coverage.calendar.expected_dates
    season_of = {d: _season_name(coverage, d) for d in expected}
    season_names = list(dict.fromkeys(season_of[d] for d in expected))
    phases = []
    for phase in config.phases:
        phase_status = PhaseStatus(
            phase.name, phase.label, Counts(), {s: Counts() for s in season_names}
        )
        for proc in phase.processors:
            status = ProcessorStatus(
                proc,
                proc.name not in coverage.absent_tables,
                Counts(),
                {s: Counts() for s in season_names},
            )
            for day in expected:
                state = state_of(proc, day)
                blocked = state in (CellState.MISSING, CellState.PARTIAL) and _upstream_gap(
                    coverage, proc, day
                )
                status.counts.add(state, blocked=blocked)
                status.seasons[season_of[day]].add(state, blocked=blocked)
            phase_status.processors.append(status)
        for day in expected:
            state = worst([state_of(p, day) for p in phase.processors])
            phase_status.counts.add(state)
            phase_status.seasons[season_of[day]].add(state)
        phases.append(phase_status)
    return StatusReport(coverage, phases, season_names)


def _upstream_gap(coverage: Coverage, proc: Processor, day: date) -> bool:
    config = coverage.config
    return any(
        coverage.cell(config.processor(dep), day).state
        not in (CellState.COMPLETE, CellState.SKIPPED, CellState.KNOWN_EMPTY)
        for dep in proc.depends_on
    )


# -- JSON -----------------------------------------------------------------------------------


def _counts_json(counts: Counts) -> dict[str, Any]:
    return {
        "complete": counts.complete,
        "partial": counts.partial,
        "missing": counts.missing,
        "failed": counts.failed,
        "skipped": counts.skipped,
        "blocked": counts.blocked,
        "known_empty": counts.known_empty,
        "expected": counts.expected,
        "coverage": _ratio(counts.coverage),
    }


def _phase_counts_json(counts: Counts) -> dict[str, Any]:
    return {
        f"{key}_dates": value
        for key, value in _counts_json(counts).items()
        if key not in ("blocked", "coverage", "known_empty")
    } | {"coverage": _ratio(counts.coverage)}


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def to_json(report: StatusReport) -> dict[str, Any]:
    config = report.coverage.config
    seasons = {s.name: s for s in config.calendar.seasons}
    expected_per_season = Counter(
        _season_name(report.coverage, d) for d in report.coverage.calendar.expected
    )
    return {
        "name": config.name,
        "config": str(config.path),
        "warehouse": config.warehouse.kind,
        "measured_at": report.coverage.measured_at.isoformat(timespec="seconds"),
        "range": {"start": report.start.isoformat(), "end": report.end.isoformat()},
        "expected_dates": report.expected_dates,
        "seasons": [
            {
                "name": name,
                "start": seasons[name].start.isoformat() if name in seasons else None,
                "end": seasons[name].end.isoformat() if name in seasons else None,
                "expected_dates": expected_per_season[name],
            }
            for name in report.season_names
        ],
        "phases": [
            {
                "name": phase.name,
                "title": phase.title,
                "executor": config.executor_of(config.phase(phase.name)).kind,
                **_phase_counts_json(phase.counts),
                "seasons": [
                    {"name": name, **_phase_counts_json(counts)}
                    for name, counts in phase.seasons.items()
                ],
                "processors": [
                    {
                        "name": p.processor.name,
                        "table": p.processor.table,
                        "date_column": p.processor.date_column,
                        "source": p.processor.is_source,
                        "table_exists": p.table_exists,
                        **_counts_json(p.counts),
                        "seasons": [
                            {"name": name, **_counts_json(counts)}
                            for name, counts in p.seasons.items()
                        ],
                    }
                    for p in phase.processors
                ],
            }
            for phase in report.phases
        ],
    }


def season_counts(report: StatusReport) -> Iterable[tuple[str, list[Counts]]]:
    """Rows of the per-season table: every phase, then its processors."""
    for phase in report.phases:
        yield phase.title, [phase.seasons[s] for s in report.season_names]
        for p in phase.processors:
            yield f"  {p.processor.name}", [p.seasons[s] for s in report.season_names]
