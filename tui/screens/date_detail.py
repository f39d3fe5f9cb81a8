"""One date, every processor: state, rows against the rule, attempts and their logs.

Names (config), reasons (engine, jobs) and the season are drawn literally: a DataTable parses a
str cell as markup, so every cell is a `Text` (`tui.text.literal`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from core.coverage import CellState, Coverage
from core.progress import format_duration
from core.state import AttemptRow, Journal
from tui.text import literal
from tui.widgets.log_tail import LogTail
from tui.widgets.row_table import RowTable
from tui.widgets.steady_footer import SteadyFooter

STATE_STYLE = {
    CellState.COMPLETE: "green",
    CellState.PARTIAL: "yellow",
    CellState.MISSING: "red",
    CellState.FAILED: "bold red",
    CellState.SKIPPED: "dim",
    CellState.NOT_EXPECTED: "dim",
    CellState.QUEUED: "cyan",
    CellState.RUNNING: "bold blue",
    CellState.BLOCKED: "magenta",
    CellState.KNOWN_EMPTY: "green",
    CellState.CANCELLED: "bold cyan",
}


@dataclass
class RetryRequested(Message):
    day: date
    processors: tuple[str, ...]


@dataclass
class KnownEmptyRequested(Message):
    """Mark the processor's cell of the date known empty, or with `undo` take the mark back."""

    day: date
    processor: str
    undo: bool


class DateDetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("r", "retry_one", "Retry processor"),
        Binding("a", "retry_all", "Retry date"),
        Binding("e", "known_empty", "Known empty (toggle)"),
        Binding("E", "undo_known_empty", "Undo known empty"),
    ]

    def __init__(
        self,
        day: date,
        coverage: Coverage,
        journal: Journal,
        states: dict[str, CellState],
        read_only: bool,
    ) -> None:
        super().__init__()
        self.day = day
        self._coverage = coverage
        self._journal = journal
        self._states = states  # the grid's view, engine overlay included
        self._read_only = read_only
        self._attempts: dict[str, list[AttemptRow]] = {}

    def compose(self) -> ComposeResult:
        cov = self._coverage
        games = cov.calendar.expected.get(self.day)
        season = cov.config.calendar.season_of(self.day)
        header = f"{self.day:%A %Y-%m-%d}"
        header += f" · season {season.name}" if season else ""
        header += f" · {games} calendar rows (games)" if games else " · not an expected date"
        with Vertical():
            yield Static(literal(header, newlines=False), id="detail-title")
            yield RowTable(id="processors", cursor_type="row")
            yield Static("Attempts", classes="detail--heading")
            yield RowTable(id="attempts", cursor_type="row")
            yield LogTail(id="detail-log")
        yield SteadyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#processors", DataTable)
        for key, label in [
            ("phase", "Phase"),
            ("processor", "Processor"),
            ("state", "State"),
            ("rows", "Rows"),
            ("need", "Needs"),
            ("tries", "Attempts"),
            ("last", "Last attempt"),
        ]:
            table.add_column(label, key=key)
        attempts = self.query_one("#attempts", DataTable)
        for key, label in [
            ("n", "#"),
            ("started", "Started"),
            ("duration", "Duration"),
            ("exit", "Exit"),
            ("reason", "Reason"),
            ("outcome", "Outcome"),
        ]:
            attempts.add_column(label, key=key)
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        loaded = {
            p.name: self._journal.attempts_for_cell(p.name, self.day)
            for p in self._coverage.config.processors
        }
        self.app.call_from_thread(self._show, loaded)

    def _show(self, loaded: dict[str, list[AttemptRow]]) -> None:
        self._attempts = loaded
        table = self.query_one("#processors", DataTable)
        table.clear()
        cov = self._coverage
        for phase in cov.config.phases:
            for proc in phase.processors:
                cell = cov.cell(proc, self.day)
                state = self._states.get(proc.name, cell.state)
                tries = loaded[proc.name]
                last = tries[-1] if tries else None
                table.add_row(
                    literal(phase.label, newlines=False),
                    literal(proc.name + ("" if proc.command else " (source)"), newlines=False),
                    Text(state.value, STATE_STYLE.get(state, "")),
                    Text(str(cell.rows)),
                    Text(str(cell.required or "-")),
                    Text(str(len(tries))),
                    literal(_describe(last) if last else ""),
                    key=proc.name,
                )
        self._show_attempts(self._highlighted())

    def _highlighted(self) -> str | None:
        table = self.query_one("#processors", DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowHighlighted, "#processors")
    def _processor_changed(self, event: DataTable.RowHighlighted) -> None:
        self._show_attempts(str(event.row_key.value))

    def _show_attempts(self, processor: str | None) -> None:
        table = self.query_one("#attempts", DataTable)
        table.clear()
        tries = self._attempts.get(processor or "", [])
        for attempt in tries:
            table.add_row(
                Text(str(attempt.number)),
                Text(time.strftime("%H:%M:%S", time.localtime(attempt.started_at))),
                Text(format_duration(attempt.duration)),
                Text("" if attempt.exit_code is None else str(attempt.exit_code)),
                literal((attempt.reason or "running") + attempt.leftovers_note),
                literal(attempt.outcome or "", newlines=False),
                key=str(attempt.id),
            )
        if tries:
            table.move_cursor(row=len(tries) - 1)
            self._follow(tries[-1])
        else:
            self.query_one("#detail-log", LogTail).follow(None)

    @on(DataTable.RowHighlighted, "#attempts")
    def _attempt_changed(self, event: DataTable.RowHighlighted) -> None:
        for tries in self._attempts.values():
            for attempt in tries:
                if str(attempt.id) == event.row_key.value:
                    self._follow(attempt)

    def _follow(self, attempt: AttemptRow) -> None:
        self.query_one("#detail-log", LogTail).follow(
            attempt.log_path, title=f"attempt {attempt.number}"
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (
            self._read_only
            and action in ("retry_one", "retry_all", "known_empty", "undo_known_empty")
        )

    def _incomplete(self, names: list[str]) -> tuple[str, ...]:
        cov = self._coverage
        return tuple(
            n
            for n in names
            if cov.config.processor(n).command
            and cov.cell(cov.config.processor(n), self.day).state
            not in (CellState.COMPLETE, CellState.SKIPPED, CellState.KNOWN_EMPTY)
        )

    def action_retry_one(self) -> None:
        name = self._highlighted()
        targets = self._incomplete([name] if name else [])
        if not targets:
            self.notify(
                "Nothing to retry: that cell is complete, skipped or a source.", markup=False
            )
            return
        self.post_message(RetryRequested(self.day, targets))

    def show_coverage(self, coverage: Coverage, states: dict[str, CellState]) -> None:
        """The date again after its cells changed (a known-empty mark): rows, states."""
        self._coverage, self._states = coverage, states
        table = self.query_one("#processors", DataTable)
        cursor = table.cursor_row
        self._show(self._attempts)
        table.move_cursor(row=cursor)

    def action_known_empty(self) -> None:
        """On a known-empty cell it takes the mark back; on any other, it marks it."""
        name = self._highlighted()
        if name is None:
            return
        state = self._states.get(name)
        if state is None:
            state = self._coverage.cell(self._coverage.config.processor(name), self.day).state
        self._request_known_empty(name, undo=state is CellState.KNOWN_EMPTY)

    def action_undo_known_empty(self) -> None:
        name = self._highlighted()
        if name is not None:
            self._request_known_empty(name, undo=True)

    def _request_known_empty(self, name: str, *, undo: bool) -> None:
        if not self._coverage.calendar.is_expected(self.day):
            self.notify("Not an expected date: nothing is due, nothing to mark.", markup=False)
            return
        if undo and (name, self.day) not in self._coverage.known_empty:
            self.notify(f"{name} on {self.day} is not marked known empty.", markup=False)
            return
        self.post_message(KnownEmptyRequested(self.day, name, undo))

    def action_retry_all(self) -> None:
        targets = self._incomplete([p.name for p in self._coverage.config.processors])
        if not targets:
            self.notify("Nothing to retry on this date.", markup=False)
            return
        self.post_message(RetryRequested(self.day, targets))


def _describe(attempt: AttemptRow) -> str:
    if attempt.outcome is None:
        return f"#{attempt.number} running"
    code = "" if attempt.exit_code is None else f" exit {attempt.exit_code}"
    why = f" ({attempt.reason})" if attempt.reason not in (None, "exit") else ""
    duration = format_duration(attempt.duration)
    return f"#{attempt.number} {attempt.outcome}{code}{why}{attempt.leftovers_note} {duration}"
