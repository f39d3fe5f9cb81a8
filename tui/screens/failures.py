"""Triage: every cell still failed, in any run, grouped by what went wrong.

Groups come from the journal (the latest attempt of each cell, normalised last error line:
`core.failures`), largest first, with first and last seen and a sample log. Below, the cells of
the highlighted group; space marks cells, r retries the marked cells, or the whole group when
none is marked, c cancels their retries queued or running in the live run, e marks them known
empty (after asking why; they then count as complete and leave this list), X takes their items
out of the live run (after a confirm; they stay not complete); enter opens a cell's date.
Cells are `Text`: a DataTable parses a str as markup, and error lines are a job's own words.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from core.failures import FailureGroup
from core.run_history import failure_groups
from core.state import Journal
from tui.text import MARK, literal
from tui.widgets.log_tail import LogTail
from tui.widgets.row_table import RowTable
from tui.widgets.steady_footer import SteadyFooter

Cell = tuple[str, date]


@dataclass
class RetryCells(Message):
    """Run these failed cells again (in the live run, or a new one)."""

    cells: tuple[Cell, ...]


@dataclass
class CancelCells(Message):
    """Stop these cells' queued or running retries in the live run."""

    cells: tuple[Cell, ...]


@dataclass
class KnownEmptyCells(Message):
    """Mark these cells known empty (after asking why), or with `undo` take the mark back."""

    cells: tuple[Cell, ...]
    undo: bool = False


@dataclass
class ExcludeCells(Message):
    """Take these cells' items out of the live run (they stay not complete)."""

    cells: tuple[Cell, ...]


@dataclass
class OpenDate(Message):
    day: date


class FailuresScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("r", "retry", "Retry group/marked"),
        Binding("c", "cancel", "Cancel group/marked"),
        Binding("e", "known_empty", "Known empty"),
        # x is the dashboard's dismiss-banner key; X here, as C is cancel-all beside c.
        Binding("X", "exclude", "Exclude from run"),
        Binding("space", "mark", "Mark cell"),
    ]

    def __init__(self, journal: Journal, start: date, end: date, read_only: bool) -> None:
        super().__init__()
        self._journal = journal
        self._range = (start, end)
        self._read_only = read_only
        self.groups: list[FailureGroup] = []
        self.marked: set[Cell] = set()

    def compose(self) -> ComposeResult:
        yield Static("Failures · loading…", id="failures-title")
        yield RowTable(id="groups", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="failure-detail"):
            with Vertical(id="failure-cells-pane"):
                yield RowTable(id="failure-cells", cursor_type="row")
            with Vertical(id="failure-sample-pane"):
                yield Static("", id="failure-sample")
                yield LogTail(id="failure-log")
        yield SteadyFooter()

    def on_mount(self) -> None:
        groups = self.query_one("#groups", DataTable)
        for key, label in [
            ("count", "Cells"),
            ("signature", "Error"),
            ("processors", "Processors"),
            ("first", "First seen"),
            ("last", "Last seen"),
        ]:
            groups.add_column(label, key=key)
        cells = self.query_one("#failure-cells", DataTable)
        for key, label in [("mark", " "), ("processor", "Processor"), ("date", "Date")]:
            cells.add_column(label, key=key)
        self._load()

    def reload(self) -> None:
        """Read the groups again (cells marked known empty leave them)."""
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        found = failure_groups(self._journal, *self._range)
        self.app.call_from_thread(self._show, found)

    def _show(self, groups: list[FailureGroup]) -> None:
        self.groups = groups
        self.marked &= {cell for g in groups for cell in g.cells}
        table = self.query_one("#groups", DataTable)
        table.clear()
        for g in groups:
            processors = sorted({p for p, _ in g.cells})
            table.add_row(
                Text(str(g.count), "bold red"),
                literal(g.signature, newlines=False),
                literal(", ".join(processors), newlines=False),
                Text(_clock(g.first_seen)),
                Text(_clock(g.last_seen)),
            )
        total = sum(g.count for g in groups)
        title = (
            f"Failures · {total} cells in {len(groups)} groups · space marks, r retries, "
            "c cancels, e marks known empty, X excludes from the run"
            if groups
            else "Failures · none: every cell's latest attempt succeeded"
        )
        self.query_one("#failures-title", Static).update(title)
        self._show_group(0 if groups else None)
        table.focus()

    @on(DataTable.RowHighlighted, "#groups")
    def _group_changed(self, event: DataTable.RowHighlighted) -> None:
        self._show_group(event.cursor_row)

    def _group(self) -> FailureGroup | None:
        row = self.query_one("#groups", DataTable).cursor_row
        return self.groups[row] if 0 <= row < len(self.groups) else None

    def _show_group(self, row: int | None) -> None:
        cells = self.query_one("#failure-cells", DataTable)
        cells.clear()
        log = self.query_one("#failure-log", LogTail)
        if row is None or row >= len(self.groups):
            self.query_one("#failure-sample", Static).update("")
            log.follow(None)
            return
        g = self.groups[row]
        for processor, day in g.cells:
            cells.add_row(*self._cell_row((processor, day)), key=f"{processor}|{day}")
        self.query_one("#failure-sample", Static).update(
            literal(f"{g.count} cells · sample: {g.sample_line}")
        )
        log.follow(None if g.sample_log is None else Path(g.sample_log), title="sample log")

    def _cell_row(self, cell: Cell) -> list[Text]:
        mark = Text(MARK, "bold yellow") if cell in self.marked else Text(" ")
        return [mark, literal(cell[0], newlines=False), Text(str(cell[1]))]

    def _highlighted_cell(self) -> Cell | None:
        g = self._group()
        row = self.query_one("#failure-cells", DataTable).cursor_row
        return g.cells[row] if g is not None and 0 <= row < len(g.cells) else None

    @on(DataTable.RowSelected, "#failure-cells")
    def _cell_chosen(self) -> None:
        cell = self._highlighted_cell()
        if cell is not None:
            self.post_message(OpenDate(cell[1]))

    def action_mark(self) -> None:
        """Marks (or unmarks) the highlighted cell, then steps down, as k9s does."""
        cells = self.query_one("#failure-cells", DataTable)
        if not cells.has_focus:
            cells.focus()
        cell = self._highlighted_cell()
        if cell is None:
            return
        self.marked ^= {cell}
        cells.update_cell(f"{cell[0]}|{cell[1]}", "mark", self._cell_row(cell)[0])
        cells.move_cursor(row=cells.cursor_row + 1)

    def action_retry(self) -> None:
        self._act_on_chosen("retried", "retry", RetryCells)

    def action_cancel(self) -> None:
        self._act_on_chosen("cancelled", "cancel", CancelCells)

    def action_known_empty(self) -> None:
        self._act_on_chosen("marked", "mark known empty", KnownEmptyCells)

    def action_exclude(self) -> None:
        self._act_on_chosen("excluded", "exclude", ExcludeCells)

    def _act_on_chosen(
        self,
        done: str,
        verb: str,
        message: type[RetryCells] | type[CancelCells] | type[KnownEmptyCells] | type[ExcludeCells],
    ) -> None:
        if self._read_only:
            self.notify(f"Read-only: nothing is {done} from this dashboard.", markup=False)
            return
        chosen = self._chosen()
        if not chosen:
            self.notify(f"No failed cells to {verb}.", markup=False)
            return
        self.post_message(message(chosen))

    def _chosen(self) -> tuple[Cell, ...]:
        """The marked cells, or the highlighted group's when none is marked."""
        g = self._group()
        return tuple(sorted(self.marked)) or (tuple(g.cells) if g is not None else ())


def _clock(at: float | None) -> str:
    return "-" if at is None else time.strftime("%m-%d %H:%M", time.localtime(at))
