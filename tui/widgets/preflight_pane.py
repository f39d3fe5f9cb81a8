"""Preflight results: each check with pass/warn/fail, its duration and a one-line detail."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from core.preflight import CheckResult
from tui.text import literal

STATUS_STYLE = {
    "pass": "bold green",
    "warn": "bold yellow",
    "fail": "bold red",
    "info": "cyan",
    "skipped": "dim",
    "running": "dim italic",
}


class PreflightPane(DataTable[Text]):
    """A str cell would be parsed as markup: every cell is a Text (names and details come from
    the config and the warehouse)."""

    DEFAULT_CSS = """
    PreflightPane { height: 1fr; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_column("Status", key="status", width=8)
        self.add_column("Check", key="name", width=36)
        self.add_column("Time", key="time", width=7)
        self.add_column("Detail", key="detail")

    def show_running(self, names: Sequence[str]) -> None:
        self.clear()
        for name in names:
            self.add_row(
                Text("…", STATUS_STYLE["running"]),
                literal(name, newlines=False),
                Text(""),
                Text("running"),
                key=name,
            )

    def show_results(self, results: Sequence[CheckResult]) -> None:
        self.clear()
        for r in results:
            self.add_row(
                Text(r.status.upper(), STATUS_STYLE[r.status]),
                literal(r.name, newlines=False),
                Text(f"{r.duration_s:.2f}s"),
                literal(r.detail),
                key=r.name,
            )
