"""The operator's home for a day: status, coverage heatmap, queue, log and preflight.

The queue filter is the screen's own state. `/` shows its input; Enter keeps the filter and
hides the input, Esc clears it (from the input or anywhere on the dashboard). While a filter is
on and its input hidden, a line over the queue says so: a filter nobody can see made a later run
look as if most of its items were missing. A hidden input is disabled too, so no focus move
(tab, shift+tab, a click) can land in it and have `q` typed there.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from core.config import Config
from tui.text import literal
from tui.widgets.banner import Banner
from tui.widgets.coverage_heatmap import CoverageHeatmap, HeatmapLegend
from tui.widgets.log_tail import LogTail
from tui.widgets.notify_pane import NotifyPane
from tui.widgets.preflight_pane import PreflightPane
from tui.widgets.queue_table import QueueTable
from tui.widgets.status_bar import StatusBar


class DashboardScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Clear filter", id="app.back"),
    ]

    class Ready(Message):
        """Composed and mounted: the App may fill it."""

    def __init__(self, config: Config, read_only: bool) -> None:
        super().__init__()
        self._config = config
        self._read_only = read_only

    def compose(self) -> ComposeResult:
        yield StatusBar(self._config, self._read_only, id="status")
        # What must not be missed (a run's end, the engine stopped or gone): stays until
        # dismissed.
        yield Banner(id="banner")
        with Vertical(id="coverage"):
            yield CoverageHeatmap(id="heatmap")
            yield HeatmapLegend(id="legend")
            yield Static("Loading coverage…", id="cell", markup=False)
        with Horizontal(id="bottom"):
            with Vertical(id="queue-pane"):
                yield Input(
                    placeholder="filter: words of processor, date, state, reason · "
                    "enter keeps · esc clears",
                    id="filter",
                    disabled=True,
                )
                yield Static("", id="filter-note", markup=False)
                yield QueueTable(id="queue")
            with TabbedContent(id="side"):
                with TabPane("Log", id="log-tab"):
                    yield LogTail(id="log")
                with TabPane("Preflight", id="preflight-tab"):
                    yield PreflightPane(id="preflight")
                with TabPane("Notify", id="notify-tab"):
                    yield NotifyPane([ch.name for ch in self._config.notify], id="notify")
        # ^p is in the help and the : prompt: its footer entry pushed keys off at 80 columns.
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.post_message(self.Ready())

    # -- the queue filter -----------------------------------------------------------------

    @property
    def _input(self) -> Input:
        return self.query_one("#filter", Input)

    @property
    def _queue(self) -> QueueTable:
        return self.query_one(QueueTable)

    def open_filter(self) -> None:
        """Show the filter's input (with the filter in effect, to edit) and focus it."""
        field = self._input
        field.disabled = False
        field.display = True
        field.focus()
        field.cursor_position = len(field.value)
        self.show_filter_note()

    def clear_filter(self) -> None:
        self._input.value = ""
        self._queue.set_filter("")
        self._close_filter()

    def _close_filter(self) -> None:
        field = self._input
        was_focused = field.has_focus
        field.display = False
        field.disabled = True
        if was_focused:
            self._queue.focus()
        self.show_filter_note()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        was_on = bool(self._queue.filter)
        self._queue.set_filter(event.value)
        if bool(self._queue.filter) != was_on:
            # Only then does a binding change (esc); the footer recomposes on every refresh.
            self.refresh_bindings()

    @on(Input.Submitted, "#filter")
    @on(Input.Blurred, "#filter")
    def _filter_done(self) -> None:
        # Enter, or focus moved elsewhere (a click, tab): the filter stays, its note shows it.
        self._close_filter()

    def show_filter_note(self) -> None:
        """The line saying a filter hides items; called again when the queue changes."""
        note = self.query_one("#filter-note", Static)
        queue = self._queue
        shown = bool(queue.filter) and self._input.disabled
        if shown:
            total = queue.total_count
            text = f"filter: {queue.filter} · {queue.row_count} of {total} items · esc clears"
            note.update(literal(text, newlines=False))
        note.display = shown
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            # Nothing to go back from: let Esc be (hidden from the footer, free for others).
            return bool(self._queue.filter) or not self._input.disabled
        return True

    def action_back(self) -> None:
        self.clear_filter()
