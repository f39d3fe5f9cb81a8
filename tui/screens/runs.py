"""Every run the journal holds: range, request, status, when, done/failed, who started it.

The journal outlives every engine and dashboard, so this is the history after any restart.
Enter (or w) writes the highlighted run's hand-off report; esc goes back. Cells are `Text`: a
DataTable parses a str as markup, and requests hold names from the config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from core.progress import format_duration
from core.run_history import RunSummary, run_history
from core.state import Journal
from tui.text import literal
from tui.widgets.row_table import RowTable
from tui.widgets.steady_footer import SteadyFooter

STATUS_STYLE = {
    "running": "bold green",
    "finished": "green",
    "incomplete": "yellow",
    "stopped": "yellow",
    "abandoned": "dim",
}


@dataclass
class ReportRequested(Message):
    run_id: int


class RunsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("w", "report", "Write report"),
    ]

    def __init__(self, journal: Journal, live_run: int | None) -> None:
        super().__init__()
        self._journal = journal
        self._live_run = live_run
        self.runs: list[RunSummary] = []

    def compose(self) -> ComposeResult:
        yield Static("Runs", id="runs-title")
        yield RowTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield SteadyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in [
            ("id", "#"),
            ("range", "Range"),
            ("request", "Request"),
            ("status", "Status"),
            ("started", "Started"),
            ("ended", "Ended"),
            ("took", "Took"),
            ("done", "Done"),
            ("failed", "Failed"),
            ("by", "Started by"),
        ]:
            table.add_column(label, key=key)
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        runs = run_history(self._journal)
        self.app.call_from_thread(self._show, runs)

    def _show(self, runs: list[RunSummary]) -> None:
        self.runs = runs
        table = self.query_one(DataTable)
        table.clear()
        for summary in runs:
            table.add_row(*self._cells(summary), key=str(summary.id))
        title = f"Runs · {len(runs)} in the journal" if runs else "Runs · none yet: s starts one"
        self.query_one("#runs-title", Static).update(title + " · enter writes a report")
        table.focus()

    def _cells(self, s: RunSummary) -> list[Text]:
        run = s.run
        status = "live" if run.id == self._live_run else run.status
        ended = run.ended_at if run.ended_at is not None else None
        took = format_duration(ended - run.created_at) if ended is not None else "—"
        failed = s.count("failed") + s.count("blocked")
        done = f"{s.count('done')}/{s.total}"
        return [
            Text(str(run.id)),
            Text(f"{run.start} → {run.end}"),
            literal(s.describe_request(), newlines=False),
            Text(status, STATUS_STYLE.get(status, "bold green")),
            Text(time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at))),
            Text("—" if ended is None else time.strftime("%m-%d %H:%M", time.localtime(ended))),
            Text(took),
            Text(done),
            Text(str(failed), "bold red" if failed else "dim"),
            literal(s.by or "—", newlines=False),
        ]

    @on(DataTable.RowSelected)
    def _chosen(self) -> None:
        self.action_report()

    def action_report(self) -> None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            self.notify("No run yet.", markup=False)
            return
        self.post_message(ReportRequested(self.runs[table.cursor_row].id))
