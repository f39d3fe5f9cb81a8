"""The operator's home for a day: status, coverage heatmap, queue, log and preflight.

`/` filters what has the focus: the heatmap (its processor rows, by name, phase or a state
they have) or the queue (its items). Each filter is the screen's own state, with its own input
over its pane. `/` shows the input; Enter keeps the filter and hides the input, Esc clears it
(from the input or anywhere on the dashboard: both filters). While a filter is on and its
input hidden, a line over its pane says so: a filter nobody can see made a later run look as
if most of its items were missing. A hidden input is disabled too, so no focus move (tab,
shift+tab, a click) can land in it and have `q` typed there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Static, TabbedContent, TabPane

from core.config import Config
from tui.text import literal
from tui.widgets.banner import Banner
from tui.widgets.coverage_heatmap import CoverageHeatmap, HeatmapLegend
from tui.widgets.log_tail import LogTail
from tui.widgets.notify_pane import NotifyPane
from tui.widgets.preflight_pane import PreflightPane
from tui.widgets.queue_table import QueueTable
from tui.widgets.scrolling import KeystrokeInput
from tui.widgets.status_bar import StatusBar
from tui.widgets.steady_footer import SteadyFooter


class Filtered(Protocol):
    @property
    def filter(self) -> str: ...

    def set_filter(self, text: str) -> None: ...


@dataclass(frozen=True)
class _Filter:
    """One pane's filter: the input over it, the note saying it is on, and the pane."""

    input_id: str
    note_id: str
    #: what the note counts ("items", "processors")
    noun: str
    #: what the words match
    matches: str

    def widgets(self, on_change: Callable[[KeystrokeInput, str], None]) -> ComposeResult:
        yield KeystrokeInput(
            placeholder=f"filter: {self.matches} · enter keeps · esc clears",
            id=self.input_id,
            classes="filter",
            disabled=True,
            on_change=on_change,
        )
        yield Static("", id=self.note_id, classes="filter-note", markup=False)


QUEUE = _Filter("filter", "filter-note", "items", "words of processor, date, state, reason")
HEATMAP = _Filter(
    "heatmap-filter",
    "heatmap-filter-note",
    "processors",
    "words of processor, phase, or a state they have (failed)",
)


class DashboardScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Clear filter", id="app.back"),
    ]
    # Narrower than 160 columns the queue's columns and the log do not both fit side by side:
    # on a screen tall enough for it the log goes under the queue (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (160, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]

    class Ready(Message):
        """Composed and mounted: the App may fill it."""

    def __init__(self, config: Config, read_only: bool) -> None:
        super().__init__()
        self._config = config
        self._read_only = read_only
        #: whether esc ("back") was available when the footer last heard (see `_refresh_back`)
        self._back: bool | None = None
        #: the text each filter note shows, by its id: the note is updated only when it changes
        self._notes: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar(self._config, self._read_only, id="status")
        # What must not be missed (a run's end, the engine stopped or gone): stays until
        # dismissed.
        yield Banner(id="banner")
        with Vertical(id="coverage"):
            yield from HEATMAP.widgets(self._filter_changed)
            yield CoverageHeatmap(id="heatmap")
            yield HeatmapLegend(id="legend")
            yield Static("Loading coverage…", id="cell", markup=False)
        with Horizontal(id="bottom"):
            with Vertical(id="queue-pane"):
                yield from QUEUE.widgets(self._filter_changed)
                yield QueueTable(id="queue")
            with TabbedContent(id="side"):
                with TabPane("Log", id="log-tab"):
                    yield LogTail(id="log")
                with TabPane("Preflight", id="preflight-tab"):
                    yield PreflightPane(id="preflight")
                with TabPane("Notify", id="notify-tab"):
                    yield NotifyPane([ch.name for ch in self._config.notify], id="notify")
        # ^p is in the help and the : prompt: its footer entry pushed keys off at 80 columns.
        yield SteadyFooter(show_command_palette=False)

    def on_mount(self) -> None:
        self.post_message(self.Ready())

    # -- the filters ----------------------------------------------------------------------

    def _target(self, which: _Filter) -> Filtered:
        return self.query_one(CoverageHeatmap) if which is HEATMAP else self.query_one(QueueTable)

    def _input(self, which: _Filter) -> Input:
        return self.query_one(f"#{which.input_id}", Input)

    def _which(self, field: Input) -> _Filter:
        return HEATMAP if field.id == HEATMAP.input_id else QUEUE

    def open_filter(self) -> None:
        """Show the input of the focused pane's filter (the heatmap's, or else the queue's),
        with the filter in effect to edit, and focus it."""
        which = HEATMAP if isinstance(self.focused, CoverageHeatmap) else QUEUE
        field = self._input(which)
        field.disabled = False
        field.display = True
        field.focus()
        field.cursor_position = len(field.value)
        self.show_filter_note(which)

    def clear_filter(self) -> None:
        for which in (QUEUE, HEATMAP):
            self._input(which).value = ""
            self._target(which).set_filter("")
            self._close_filter(which)

    def _close_filter(self, which: _Filter) -> None:
        field = self._input(which)
        was_focused = field.has_focus
        field.display = False
        field.disabled = True
        if was_focused:
            self.query_one(CoverageHeatmap if which is HEATMAP else QueueTable).focus()
        self.show_filter_note(which)

    def _filter_changed(self, field: KeystrokeInput, value: str) -> None:
        target = self._target(self._which(field))
        was_on = bool(target.filter)
        target.set_filter(value)
        if bool(target.filter) != was_on:
            self._refresh_back()
        if field.id == HEATMAP.input_id:
            self.show_filter_note(HEATMAP)

    @on(Input.Submitted, ".filter")
    @on(Input.Blurred, ".filter")
    def _filter_done(self, event: Input.Submitted | Input.Blurred) -> None:
        # Enter, or focus moved elsewhere (a click, tab): the filter stays, its note shows it.
        self._close_filter(self._which(event.input))

    @on(CoverageHeatmap.FilterChanged)
    def _heatmap_filter_changed(self) -> None:
        heatmap = self.query_one(CoverageHeatmap)
        if heatmap.filter != " ".join(self._input(HEATMAP).value.split()):
            self._input(HEATMAP).value = heatmap.filter  # a jump cleared it
        self.show_filter_note(HEATMAP)

    def show_filter_note(self, which: _Filter = QUEUE) -> None:
        """The line saying a filter hides rows; called again when they change."""
        note = self.query_one(f"#{which.note_id}", Static)
        target = self._target(which)
        shown = bool(target.filter) and self._input(which).disabled
        if shown:
            if which is HEATMAP:
                kept, total = self.query_one(CoverageHeatmap).filter_counts
            else:
                queue = self.query_one(QueueTable)
                kept, total = queue.row_count, queue.total_count
            text = f"filter: {target.filter} · {kept} of {total} {which.noun} · esc clears"
            if self._notes.get(which.note_id) != text:
                # Each update lays the screen out again: the queue's note is shown every tick.
                self._notes[which.note_id] = text
                note.update(literal(text, newlines=False))
        note.display = shown
        self._refresh_back()

    def _refresh_back(self) -> None:
        """Tell the footer when esc's binding comes or goes (see `check_action`), and only
        then: the footer recomposes on every refresh_bindings (20-70 ms with a 30,000-item
        queue), and the queue's note is shown again every tick while a filter is on."""
        back = bool(self.check_action("back", ()))
        if back != self._back:
            self._back = back
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            # Nothing to go back from: let Esc be (hidden from the footer, free for others).
            return any(
                bool(self._target(w).filter) or not self._input(w).disabled
                for w in (QUEUE, HEATMAP)
            )
        return True

    def action_back(self) -> None:
        self.clear_filter()
