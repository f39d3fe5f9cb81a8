"""Every run the journal holds, in a line each: what the dashboard's Runs screen lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

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
