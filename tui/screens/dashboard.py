"""The operator's home for a day: status, coverage heatmap, queue, log and preflight."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from core.config import Config
from tui.widgets.coverage_heatmap import CoverageHeatmap, HeatmapLegend
from tui.widgets.log_tail import LogTail
from tui.widgets.preflight_pane import PreflightPane
from tui.widgets.queue_table import QueueTable
from tui.widgets.status_bar import StatusBar


class DashboardScreen(Screen[None]):
    class Ready(Message):
        """Composed and mounted: the App may fill it."""

    def __init__(self, config: Config, read_only: bool) -> None:
        super().__init__()
        self._config = config
        self._read_only = read_only

    def compose(self) -> ComposeResult:
        yield StatusBar(self._config, self._read_only, id="status")
        # What must not be missed (the engine stopped on an error): stays until the next run.
        yield Static("", id="banner", markup=False)
        with Vertical(id="coverage"):
            yield CoverageHeatmap(id="heatmap")
            yield HeatmapLegend(id="legend")
            yield Static("Loading coverage…", id="cell", markup=False)
        with Horizontal(id="bottom"):
            with Vertical(id="queue-pane"):
                yield Input(placeholder="filter the queue (esc to clear)", id="filter")
                yield QueueTable(id="queue")
            with TabbedContent(id="side"):
                with TabPane("Log", id="log-tab"):
                    yield LogTail(id="log")
                with TabPane("Preflight", id="preflight-tab"):
                    yield PreflightPane(id="preflight")
        yield Footer()

    def on_mount(self) -> None:
        self.post_message(self.Ready())
