"""`?`: the keys of each pane, the heatmap's states as it draws them, gates, blocked, quitting.

Keys are read from the bindings themselves (the App's, the heatmap's, the queue's, the log's,
the date screen's), so the help cannot drift from what the keys do; a few lines that are not one
binding (tab, esc, the palette) are added per pane. The state glyphs and colours are the
heatmap's own (`GLYPHS`, `STATE_CSS`), applied through the same component classes.

Names from the config (phase labels) are drawn literally.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.config import Config
from core.coverage import CellState
from tui.screens.dashboard import DashboardScreen
from tui.screens.date_detail import DateDetailScreen
from tui.screens.failures import FailuresScreen
from tui.screens.runs import RunsScreen
from tui.text import literal
from tui.widgets.coverage_heatmap import BARS, GLYPHS, STATE_CSS, CoverageHeatmap, state_class
from tui.widgets.log_tail import LogTail
from tui.widgets.queue_table import QueueTable
from tui.widgets.row_table import RowTable

#: What each cell state means (DESIGN.md "Cell states"), in the legend's order.
STATE_MEANING: dict[CellState, str] = {
    CellState.COMPLETE: "rows for the date reach the processor's completeness rule",
    CellState.PARTIAL: "rows exist but fall short of the rule (successful is not complete)",
    CellState.MISSING: "an expected date with no rows",
    CellState.NOT_EXPECTED: "not a date of the calendar (off-day, break): drawn blank",
    CellState.SKIPPED: "expected but excluded on purpose (bootstrap days of a season)",
    CellState.QUEUED: "a work item of the run will fill it",
    CellState.RUNNING: "an attempt for it is running now",
    CellState.FAILED: "the last attempt failed (exit, timeout, stall); still not complete",
    CellState.BLOCKED: "something it needs for that date will not be complete in this run",
    CellState.KNOWN_EMPTY: "no rows, and an operator marked that right (e, with a reason): "
    "counted complete; E undoes it",
    CellState.CANCELLED: "the last attempt was cancelled (c, C, a stopped run) and the date is "
    "still not complete: the next run plans it again",
}

#: Per pane: keys that are not one binding of its own.
EXTRA_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "global": (
        ("tab shift+tab", "Next / previous pane"),
        ("esc", "Back: clears the queue filter, closes a dialog, leaves the date screen"),
        ("^p", "Command palette: jump to a processor or a date; every command"),
    ),
    "heatmap": (
        ("r", "Retry failed: the marked cells that failed, else those of the cursor's dates"),
        ("c", "Cancel the queued or running items holding the marked cells (asks first)"),
        ("e E X", "Known empty / undo / exclude: the marked cells, else the cursor's"),
    ),
    "queue": (("c", "Cancel the highlighted item (asks first)"),),
    "logs": (
        ("↑↓ j k pgup pgdn g", "Scroll (g: the top): reading further up pauses following"),
        ("end", "Follow the end again"),
    ),
    "date": (),
    "runs": (
        ("enter", "Write the highlighted run's report (and a picture) to state_dir/reports/"),
    ),
    "failures": (("enter", "Open the highlighted cell's date"),),
    "command": (
        (":run START [END]", "Plan and start a run (dates may be partial: jan 2024)"),
        (":retry failed", "Retry failed cells (in the live run, else a new run)"),
        (":pause :resume", "Dispatch off / on"),
        (":parallel PHASE N", "That phase's concurrency in the live run"),
        (":goto DATE|NAME", "Move the heatmap cursor to a date (2024-01) or a processor"),
        (":notify test", "A test message on every notify channel (the Notify tab shows each)"),
        (":runs :failures", "The Runs and Failures screens"),
        (":report :help :q", "Write the latest run's report; this help; quit"),
    ),
}

QUITTING = (
    "q quits. While a run is on it asks first: Detach (the default, and what Enter picks) "
    "quits the dashboard and the engine goes on with the run (run backfill again to attach to "
    "it); Stop the run (s) cancels the running attempts and ends the run (starting it again "
    "resumes it, nothing done is run again); Stay (esc). The engine runs in a process of its "
    "own: a closed terminal or a crashed dashboard does not stop it either. A read-only "
    "dashboard quits at once and changes nothing."
)

BLOCKED = (
    "blocked: a cell (and its item) cannot run in this run because something it needs for that "
    "date will not be complete: an upstream processor failed for good, a source table has a "
    "gap, or an earlier phase's gate can no longer be met. The queue's Exit/reason column says "
    "which. Nothing waits forever: the run ends incomplete. r (retry failed) queues the failed "
    "cells again, and the ones blocked behind them with them."
)


def key_rows(
    app: App[Any],
    bindings: Iterable[BindingType],
    keep: Callable[[Binding], bool] = lambda binding: True,
) -> list[tuple[str, str]]:
    """(keys, what they do) per binding with a description, keys as the footer shows them."""
    rows = []
    for binding in bindings:
        if not isinstance(binding, Binding) or not binding.description or not keep(binding):
            continue
        keys = " ".join(
            app.get_key_display(dataclasses.replace(binding, key=key.strip()))
            for key in binding.key.split(",")
        )
        rows.append((keys, binding.tooltip or binding.description))
    return rows


def gate_lines(config: Config) -> list[str]:
    gated = [phase for phase in config.phases if phase.gate is not None]
    lines = [
        "A phase gate holds the phases after a phase back until that phase is complete enough: "
        "its share of the run's expected dates complete for every processor must reach the "
        "gate's min_coverage. While the gated phase still has work queued or running, later "
        "items wait (queued); once it cannot get there, they end blocked, with the reason "
        '"<phase> gate: 80% complete, needs 95%".'
    ]
    if not gated:
        lines.append("This config has no gates.")
    for phase in gated:
        assert phase.gate is not None
        lines.append(
            f"· {phase.label}: later phases start once {phase.gate.min_coverage:.0%} of its "
            "dates are complete."
        )
    return lines


class StateTable(Static):
    """Each state's glyph in the heatmap's colour (its component classes), name and meaning."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {state_class(state) for state in CellState}

    DEFAULT_CSS = "StateTable { height: auto; }\n" + "\n".join(
        f"StateTable > .{state_class(state)} {{ {css} }}" for state, css in STATE_CSS.items()
    )

    def render(self) -> RenderableType:
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        for state in CellState:
            style = self.get_component_rich_style(state_class(state), partial=True)
            table.add_row(
                Text(f" {GLYPHS[state]} ", style),
                Text(state.value.replace("_", " "), "bold"),
                Text(STATE_MEANING[state]),
            )
        partial = self.get_component_rich_style(state_class(CellState.PARTIAL), partial=True)
        table.add_row(
            Text(BARS[::2], partial),
            Text("share done", "bold"),
            Text(
                "a week or month column shows its worst day; when that is partial or missing "
                "but some days are complete, a bar says how much is done. A phase row shows "
                "the worst of its processors."
            ),
        )
        return table

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.refresh()  # a theme change recolours the glyphs


class HelpScreen(ModalScreen[None]):
    """Esc, ? or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close"),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self._config = config

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog dialog--wide", id="help"):
            yield Static("Help · esc, ? or q closes", classes="dialog--title")
            yield Static(self._keys(), id="help-keys")
            yield Static("Cell states, as the heatmap draws them", classes="help--heading")
            yield StateTable(id="help-states")
            yield Static("Phase gates", classes="help--heading")
            yield Static(literal("\n".join(gate_lines(self._config))), id="help-gates")
            yield Static("Blocked", classes="help--heading")
            yield Static(BLOCKED, id="help-blocked", markup=False)
            yield Static("Quitting and detaching", classes="help--heading")
            yield Static(QUITTING, id="help-quit", markup=False)

    def _keys(self) -> RenderableType:
        app = self.app
        # The controls a read-only dashboard hides are left out here too.
        shown = key_rows(app, app.BINDINGS, lambda b: app.check_action(b.action, ()) is not False)
        queue = key_rows(app, QueueTable.BINDINGS) + key_rows(app, DashboardScreen.BINDINGS)

        def on_rows(screen: Iterable[BindingType]) -> list[tuple[str, str]]:
            return key_rows(app, screen) + key_rows(app, RowTable.BINDINGS)

        panes: Sequence[tuple[str, str, list[tuple[str, str]]]] = (
            ("Global", "global", shown),
            ("Heatmap", "heatmap", key_rows(app, CoverageHeatmap.BINDINGS)),
            ("Queue", "queue", queue),
            ("Logs", "logs", key_rows(app, LogTail.BINDINGS)),
            ("Date screen (enter on a cell)", "date", on_rows(DateDetailScreen.BINDINGS)),
            ("Runs (R)", "runs", on_rows(RunsScreen.BINDINGS)),
            ("Failures (F)", "failures", on_rows(FailuresScreen.BINDINGS)),
            ("Commands (:, tab completes)", "command", []),
        )
        tables: list[RenderableType] = []
        for title, pane, rows in panes:
            table = Table.grid(padding=(0, 2))
            table.add_column(width=18, no_wrap=True, style="bold")
            table.add_column(ratio=1)
            for keys, what in [*rows, *EXTRA_KEYS[pane]]:
                table.add_row(Text(keys), Text(what))
            tables += [Text(title, "bold underline"), table, Text("")]
        return Group(*tables)

    def action_close(self) -> None:
        self.dismiss(None)
