"""The row table of every drill-down screen: a DataTable whose g/G (and Home/End) go to the
first and last row, as in the queue and in less/k9s; DataTable's own Home/End only scroll."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable


class RowTable(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g,home", "first_row", "Top", show=False),
        Binding("G,end", "last_row", "Bottom", show=False),
    ]

    def action_first_row(self) -> None:
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self.move_cursor(row=max(0, self.row_count - 1))
