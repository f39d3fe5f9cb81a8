"""Phase gates kept up to date as attempts are verified, instead of recounted per dispatch pass.

A gate holds when the share of the phase's due dates (expected, not bootstrap-skipped) complete
for every processor reaches `min_coverage`. Recounting that share over every date for every
finished attempt was most of the engine's CPU on a big run; here each re-read updates only the
dates it read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from core.config import Phase
from core.coverage import Coverage, counts_complete


def _complete(coverage: Coverage, phase: Phase, day: date) -> bool:
    return all(counts_complete(coverage.cell(p, day).state) for p in phase.processors)


class GateShares:
    def __init__(self, coverage: Coverage) -> None:
        self._phases = [ph for ph in coverage.config.phases if ph.gate is not None]
        expected = coverage.calendar.expected_dates
        self._due = {
            ph.name: frozenset(d for d in expected if d not in coverage.skipped[ph.name])
            for ph in self._phases
        }
        self._complete = {
            ph.name: {d for d in self._due[ph.name] if _complete(coverage, ph, d)}
            for ph in self._phases
        }

    def update(self, coverage: Coverage, days: Iterable[date]) -> None:
        """`coverage` changed on (at most) these days."""
        days = list(days)
        for ph in self._phases:
            due, complete = self._due[ph.name], self._complete[ph.name]
            for day in days:
                if day not in due:
                    continue
                if _complete(coverage, ph, day):
                    complete.add(day)
                else:
                    complete.discard(day)

    def share(self, phase: Phase) -> float | None:
        """None for a phase with no gate or no due dates."""
        due = self._due.get(phase.name)
        if not due:
            return None
        return len(self._complete[phase.name]) / len(due)
