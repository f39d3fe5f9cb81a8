"""What the journal holds across runs: every run in a line (the dashboard's Runs screen), and
the cells still failed, grouped by error (its Failures screen)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from core.failures import Failure, FailureGroup, group
from core.state import Journal
from core.state.journal import RunRow


@dataclass(frozen=True)
class RunSummary:
    run: RunRow
    #: cells (processor-dates) per item state: done, failed, blocked, cancelled, pending ...
    cells: dict[str, int] = field(default_factory=dict)
    #: who started it ("ana@host-1 pid 4121 (dashboard)"), where the journal says
    by: str | None = None

    @property
    def id(self) -> int:
        return self.run.id

    @property
    def start(self) -> date:
        return self.run.start

    @property
    def end(self) -> date:
        return self.run.end

    def count(self, state: str) -> int:
        return self.cells.get(state, 0)

    @property
    def total(self) -> int:
        return sum(self.cells.values())

    def describe_request(self) -> str:
        """ "all phases, missing" / "analytics, precompute · failed"."""
        request = self.run.request
        scope = [*request.get("phases", ()), *request.get("processors", ())]
        return f"{', '.join(scope) or 'all phases'} · {request.get('reprocess', 'missing')}"


def run_history(journal: Journal, limit: int = 500) -> list[RunSummary]:
    """The latest runs, newest first. Blocking (a few queries): call it in a worker thread."""
    runs = journal.runs(limit)
    ids = [run.id for run in runs]
    cells, starters = journal.run_cells(ids), journal.run_starters(ids)
    return [RunSummary(run, cells.get(run.id, {}), starters.get(run.id)) for run in runs]


def failure_groups(journal: Journal, start: date, end: date) -> list[FailureGroup]:
    """Every cell still failed (its latest attempt, in any run, failed), grouped by what went
    wrong, the largest group first. Blocking: call it in a worker thread."""
    # A known-empty cell counts as complete: its failed attempt is no longer a failure.
    settled = journal.known_empty_cells(start, end)
    return group(
        Failure(processor, (day,), a.tail, a.reason, a.ended_at, str(a.log_path))
        for (processor, day), a in sorted(journal.failed_attempts(start, end).items())
        if (processor, day) not in settled
    )
