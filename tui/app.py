"""The dashboard App: renders engine snapshots and sends commands; never blocks its loop.

Coverage and its grid load in a thread (the journal's last known state is shown first), the
engine runs as an App-level worker, and a 4 Hz tick folds what changed since the last snapshot
into the widgets: only changed heatmap rows and queue rows are repainted.

Text from outside (names from the config, dates typed, engine errors, job reasons) is drawn
literally: every toast of ours passes `markup=False` (and `notify` below removes control
characters), the banner and the cell line go through `tui.text.literal`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Static, TabbedContent

from core.config import Config
from core.coverage import CellState, Coverage, worst
from core.engine.api import (
    EXCLUDED,
    CancelAll,
    CancelItem,
    Command,
    EngineSnapshot,
    Exclude,
    ItemState,
    ItemView,
    Pause,
    PauseView,
    Resume,
    Retry,
    RunRequest,
    SetConcurrency,
    Stop,
    Who,
)
from core.errors import UserError
from core.notify import ChannelHealth, send_tests
from core.notify.health import journaled_health
from core.preflight import Check, CheckResult, all_checks, gate_record, run_checks
from core.printable import strip_controls
from core.progress import Forecast, describe_phase
from core.report import REPORTS, save_report
from core.service.client import EngineGone
from core.warehouse import describe_scan_cost
from tui.command_line import Parsed
from tui.commands import JumpProvider
from tui.crash import crash_line, write_report
from tui.modals.command_line import CommandLineScreen
from tui.modals.confirm import ConfirmScreen
from tui.modals.help import HelpScreen
from tui.modals.known_empty import KnownEmptyScreen
from tui.modals.quit import QuitScreen
from tui.modals.start_run import StartRunScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.date_detail import DateDetailScreen, KnownEmptyRequested, RetryRequested
from tui.screens.failures import (
    CancelCells,
    Cell,
    ExcludeCells,
    FailuresScreen,
    KnownEmptyCells,
    OpenDate,
    RetryCells,
)
from tui.screens.runs import ReportRequested, RunsScreen
from tui.session import PAGE_GAP, PER_POLL, Refreshed, Session
from tui.text import MARK, literal
from tui.widgets.banner import Banner, Kind
from tui.widgets.coverage_heatmap import CoverageHeatmap
from tui.widgets.log_tail import LogTail
from tui.widgets.notify_pane import SENDING, NotifyPane
from tui.widgets.preflight_pane import PreflightPane
from tui.widgets.queue_table import QueueTable
from tui.widgets.status_bar import StatusBar, pause_badges

TICK_SECONDS = 0.25
#: how often the notify channels' health is read from the journal (in a thread)
HEALTH_SECONDS = 3.0
CONTROLS = {
    "start_run",
    "pause",
    "cancel",
    "cancel_all",
    "retry",
    "more",
    "fewer",
    "known_empty",
    "exclude",
}


class BackfillApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "backfill"
    COMMANDS = App.COMMANDS | {JumpProvider}
    BINDINGS = [
        Binding(
            "s",
            "start_run",
            "Start",
            id="run.start",
            tooltip="Start a run (range, phase, reprocess), or resume an unfinished one",
        ),
        Binding(
            "P",
            "pause",
            "Pause",
            id="run.pause",
            tooltip="Pause: no new attempts start, running ones go on; again to resume",
        ),
        Binding(
            "r",
            "retry",
            "Retry",
            id="run.retry",
            tooltip="Queue the failed cells of the run again (and those blocked behind them)",
        ),
        Binding(
            "c",
            "cancel",
            "Cancel item",
            show=False,
            id="run.cancel",
            tooltip="Cancel the items marked in the queue (space marks), else the highlighted "
            "one (asks first)",
        ),
        Binding(
            "C",
            "cancel_all",
            "Cancel all",
            show=False,
            id="run.cancel_all",
            tooltip="Cancel every running and queued attempt of the run (asks first)",
        ),
        Binding(
            "plus,equals_sign",
            "more",
            "+1 parallel",
            show=False,
            id="run.more",
            tooltip="One more parallel attempt for the cursor's phase, or the highlighted item's",
        ),
        Binding(
            "minus",
            "fewer",
            "-1 parallel",
            show=False,
            id="run.fewer",
            tooltip="One fewer parallel attempt for that phase (running ones finish)",
        ),
        Binding(
            "p",
            "preflight",
            "Preflight",
            show=False,
            id="preflight.run",
            tooltip="Run the preflight checks again",
        ),
        Binding(
            "n",
            "notify_test",
            "Test notify",
            show=False,
            id="notify.test",
            tooltip="Send a test message on every notify channel; the Notify tab shows each "
            "one's outcome and health",
        ),
        Binding(
            "e",
            "known_empty",
            "Known empty",
            show=False,
            id="cells.known_empty",
            tooltip="Mark the chosen cells known empty, with a reason (heatmap: the marked "
            "cells, else the cursor's; queue: the marked items, else the highlighted one)",
        ),
        Binding(
            "E",
            "known_empty(True)",
            "Undo known empty",
            show=False,
            id="cells.undo_known_empty",
            tooltip="Take the known-empty mark off the chosen cells",
        ),
        Binding(
            "X",
            "exclude",
            "Exclude",
            show=False,
            id="cells.exclude",
            tooltip="Take the chosen cells' items out of the live run (it ends incomplete, "
            "naming them)",
        ),
        Binding(
            "slash",
            "filter",
            "Filter",
            show=False,
            id="queue.filter",
            tooltip="Filter what has the focus: the heatmap's rows (processor, phase, or a state "
            "they have) or the queue (words that must all match; a state word is that state)",
        ),
        Binding(
            "f5",
            "refresh_coverage",
            "Refresh",
            show=False,
            id="coverage.refresh",
            tooltip="Read the coverage from the warehouse again",
        ),
        Binding(
            "R",
            "runs",
            "Runs",
            show=False,
            id="app.runs",
            tooltip="Every run the journal holds; enter writes one's hand-off report",
        ),
        Binding(
            "F",
            "failures",
            "Failures",
            show=False,
            id="app.failures",
            tooltip="Every failed cell, grouped by error; space marks, r retries",
        ),
        Binding(
            "w",
            "write_report",
            "Write report",
            show=False,
            id="app.report",
            tooltip="Write the latest run's report and a picture of the heatmap to "
            "state_dir/reports/",
        ),
        Binding(
            "x",
            "dismiss_banner",
            "Dismiss banner",
            show=False,
            id="app.dismiss",
            tooltip="Dismiss the banner (a run's end, the engine stopped or gone); it stays "
            "until then",
        ),
        Binding(
            "b",
            "toggle_bell",
            "Bell on/off",
            show=False,
            id="app.bell",
            tooltip="Terminal bell (off at start): it rings when a run finishes, complete or "
            "not, and when the engine stops or goes away",
        ),
        Binding(
            "colon",
            "command_line",
            "Command",
            id="app.command",
            tooltip="A command: run, retry failed, pause, resume, parallel PHASE N, goto, runs, "
            "failures, report, help, q (tab completes)",
        ),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding(
            "q",
            "quit",
            "Quit",
            id="app.quit",
            tooltip="Quit; with a run on, asks: detach (the run goes on) or stop it",
        ),
    ]

    def __init__(self, config: Config, *, read_only: bool = False) -> None:
        super().__init__()
        self.config = config
        self.read_only = read_only
        self.session = Session.open(config, read_only)
        #: a run the journal says did not finish (the dashboard quit or crashed): `s` offers it
        self._unfinished: tuple[int, RunRequest] | None = None
        #: the forecast the cursor line last saw (a phase row's line says when it ends)
        self._forecast_shown: Forecast | None = None
        #: the banner shows what holds the engine up (it hides again once that clears)
        self._held = False
        self.sub_title = strip_controls(f"{config.name} · {config.path}")
        #: set when the app failed: the one line printed instead of Textual's traceback
        self.crash: str | None = None
        #: who this dashboard's operator is, as the journal records who started a run
        self._who = Who.me("dashboard").describe()
        #: a tick is running: another one asked meanwhile is skipped (the interval comes again)
        self._ticking = False
        #: ring the terminal bell with each new sticky banner (`b` toggles; off at start)
        self.bell_on = False
        #: bells rung (the terminal's own bell is not observable)
        self.bells = 0
        #: the run whose end the banner told (its engine exiting after is no news)
        self._told_end: int | None = None

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """A toast without control characters. Textual's default (markup) is kept for its own
        toasts ("Press [b]ctrl+q[/b] to quit"); every toast of ours passes `markup=False`: they
        carry processor names, dates, engine replies and errors."""
        super().notify(
            strip_controls(message, newlines=True),
            title=strip_controls(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    def _handle_exception(self, error: Exception) -> None:
        """Textual's hook for an unhandled error (it then exits the app): keep its bookkeeping
        (Pilot re-raises the error in tests) but replace the traceback screen by a report file
        and one line."""
        super()._handle_exception(error)
        try:
            report: Path | None = write_report(self.config.state_path, error)
        except OSError:
            report = None
        self.crash = crash_line(error, report)
        self._exit_renderables.clear()

    # -- start-up ------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return DashboardScreen(self.config, self.read_only)

    @on(DashboardScreen.Ready)
    def _start_up(self) -> None:
        self._status().show(refreshing=True)
        self._load_coverage(cached=True)
        self.action_preflight(switch=False)
        self._attach_at_start()
        if self.config.notify:
            self._load_health()
            self.set_interval(HEALTH_SECONDS, self._load_health)

    @work(exclusive=True, group="attach")
    async def _attach_at_start(self) -> None:
        """A run goes on without any dashboard: attach to its engine if one is live."""
        if await self.session.attach():
            self._announce_attached()
        else:
            self._offer_unfinished_run()
        self.set_interval(TICK_SECONDS, self._tick)

    def _announce_attached(self) -> None:
        engine = self.session.engine
        assert engine is not None
        self.notify(
            f"Attached to the engine (pid {engine.info.pid} on {engine.info.host}). Quitting "
            "detaches: the run goes on.",
            timeout=8,
            markup=False,
        )

    def _offer_unfinished_run(self) -> None:
        run = self.session.journal.unfinished_run()
        if run is None:
            self._unfinished = None
            self._status().set_badge("unfinished", None)
            return
        self._unfinished = (run.id, RunRequest.from_key(run.start, run.end, run.request))
        self._status().set_badge("unfinished", f"⚑ run #{run.id} unfinished: s resumes")
        self.notify(
            f"Run #{run.id} ({run.start} → {run.end}) did not finish: s resumes it, adopting "
            "attempts still running; nothing done is run again.",
            title="Unfinished run",
            severity="warning",
            timeout=20,
            markup=False,
        )

    async def on_unmount(self) -> None:
        await self.session.detach()  # the run goes on without us
        self.session.close()

    @work(thread=True, exclusive=True, group="coverage")
    def _load_coverage(self, cached: bool = False) -> None:
        if cached and (known := self.session.cached_coverage()) is not None:
            note = f"cached {known.coverage.measured_at:%H:%M:%S}"
            self.call_from_thread(self._show_coverage, known, note=note)
        try:
            fresh = self.session.refresh_coverage()
        except UserError as exc:
            self.call_from_thread(self._coverage_failed, str(exc))
            return
        self.call_from_thread(self._show_coverage, fresh, note="", save=True)
        try:
            scan_bytes = self.session.refresh_cost()
        except UserError:
            return  # the cost is a courtesy: coverage is on screen, errors were shown above
        if scan_bytes is not None:
            self.call_from_thread(self._show_cost, describe_scan_cost(scan_bytes))

    @work(thread=True, exclusive=True, group="redraw")
    def _redraw_grid(self) -> None:
        fresh = self.session.redraw()
        self.call_from_thread(self._show_redraw, fresh)

    def _show_redraw(self, fresh: Refreshed) -> None:
        grid = self.session.adopt_redraw(fresh)
        seasons = [(s.name, s.start, s.end) for s in self.config.calendar.seasons]
        self._heatmap().set_grid(grid, seasons)
        self._describe_cursor()

    def _show_cost(self, text: str) -> None:
        self._status().show(scan_cost=text)

    def _coverage_failed(self, message: str) -> None:
        self._status().show(refreshing=False, coverage_note="coverage unavailable")
        self.notify(
            message, title="Coverage refresh failed", severity="error", timeout=10, markup=False
        )

    def _show_coverage(self, fresh: Refreshed, *, note: str, save: bool = False) -> None:
        grid = self.session.adopt_refresh(fresh, save=save)
        coverage = fresh.coverage
        heatmap = self._heatmap()
        seasons = [(s.name, s.start, s.end) for s in self.config.calendar.seasons]
        heatmap.set_grid(grid, seasons)
        status = note or f"coverage {coverage.measured_at:%H:%M:%S}"
        self._status().show(refreshing=bool(note), coverage_note=status)
        self._describe_cursor()

    # -- widgets -------------------------------------------------------------------------

    def _dashboard(self) -> DashboardScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, DashboardScreen)
        return screen

    def _heatmap(self) -> CoverageHeatmap:
        return self._dashboard().query_one(CoverageHeatmap)

    def jump_to(self, key: str | None = None, day: date | None = None) -> None:
        """Put the heatmap cursor on a processor and/or a date (the command palette's jumps)."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        heatmap = self._heatmap()
        heatmap.move_to(key=key, day=day)
        heatmap.focus()

    def _queue(self) -> QueueTable:
        return self._dashboard().query_one(QueueTable)

    def _status(self) -> StatusBar:
        return self._dashboard().query_one(StatusBar)

    # -- the engine ----------------------------------------------------------------------

    async def _tick(self) -> None:
        if self._ticking:  # the interval's, a command's and a page's follow-up never overlap
            return
        self._ticking = True
        try:
            await self._tick_once()
        finally:
            self._ticking = False

    async def _tick_once(self) -> None:
        session = self.session
        if session.engine is None or not self.screen_stack:  # not yet attached, or exiting
            return
        try:
            heatmap, queue, status = self._heatmap(), self._queue(), self._status()
            log = self._dashboard().query_one(LogTail)
        except NoMatches:  # quitting: the dashboard's widgets are already gone
            return
        was_busy = session.snapshot is not None and session.snapshot.busy
        rows, taken = await session.poll()
        if session.gone is not None:
            self._engine_gone(session.gone)
            return
        snap = session.snapshot
        assert snap is not None
        if rows:
            heatmap.refresh_rows(rows)
        if session.grid_stale:
            session.grid_stale = False
            self._redraw_grid()
        if len(taken) == PER_POLL:  # a page of a big snapshot: the next one soon, not in 250 ms
            self.set_timer(PAGE_GAP, self._tick)
        if taken:
            self._announce_failures(taken)
            queue.apply(taken)
            self._show_log_of(log, queue.selected_item_id())
            if queue.filter:
                self._dashboard().show_filter_note()
        status.show(snap, engine=_engine_note(session))
        self._show_pauses(status, snap.pauses)
        if snap.forecast != self._forecast_shown:
            # A phase row's line says when that phase ends: it follows the forecast (1 Hz).
            self._forecast_shown = snap.forecast
            cursor = heatmap.cursor_cell()
            if cursor is not None and cursor[0].is_phase:
                self._describe_cursor()
        if self._shows_trouble(snap):
            pass
        elif was_busy and not snap.busy and snap.run_id is not None:
            failed = snap.count(ItemState.FAILED) + snap.count(ItemState.BLOCKED)
            self._told_end = snap.run_id
            if failed:
                self._show_banner(
                    f"Run #{snap.run_id} finished incomplete: {failed} items failed or "
                    "blocked. F lists the failures, r retries them.",
                    error=True,
                )
            else:
                self._show_banner(
                    f"Run #{snap.run_id} complete: all {snap.total} items done.", kind="ok"
                )
            self.notify(
                f"Run #{snap.run_id}: nothing left to run"
                + (f"; {failed} items failed or blocked" if failed else ", all done"),
                severity="warning" if failed else "information",
                timeout=8,
                markup=False,
            )

    @staticmethod
    def _show_pauses(status: StatusBar, pauses: tuple[PauseView, ...]) -> None:
        """Throttling stays in sight as badges for as long as it lasts (a toast went in 6 s)."""
        for key, badge in pause_badges(pauses).items():
            if badge is None:
                status.set_badge(key, None)
            else:
                status.set_badge(key, *badge)

    def _shows_trouble(self, snap: EngineSnapshot) -> bool:
        """The banner says why the engine stopped, or what holds it up (a full disk: that
        banner goes once the engine goes on by itself); True while it does."""
        if snap.state == "failed":
            self._show_banner(f"The engine stopped: {snap.error}", error=True)
            return True
        if snap.error:
            self._held = True
            self._show_banner(f"Dispatch is held up: {snap.error}", error=True, sticky=False)
            return True
        if self._held:
            self._held = False
            self._banner().hide(passing_only=True)
        return False

    def _announce_failures(self, taken: list[ItemView]) -> None:
        """A toast per item that failed for good since the last tick (not for the first
        snapshot of a run attached late: those failures are old news)."""
        if len(taken) > 50:
            return
        for view in taken:
            if view.state is ItemState.FAILED:
                self.notify(
                    f"FAILED {view.processor} {view.dates[0]}: {view.reason or ''}",
                    severity="error",
                    timeout=6,
                    markup=False,
                )

    def _engine_gone(self, why: str) -> None:
        session = self.session
        session.gone = None
        snap = session.snapshot
        self._status().show(snap, engine="")
        self._show_pauses(self._status(), ())  # nothing is held by an engine that is gone
        self._offer_unfinished_run()
        if self._unfinished is None:  # it ended its run
            if snap is None or snap.run_id != self._told_end:  # else the banner told it
                bad = snap is not None and bool(
                    snap.count(ItemState.FAILED) + snap.count(ItemState.BLOCKED)
                )
                self._show_banner(f"The engine exited: {why}.", kind="error" if bad else "ok")
            self._load_coverage()
            return
        self._show_banner(
            f"The engine is gone ({why}): nothing dispatches run #{self._unfinished[0]}. "
            "s resumes it: a new engine adopts the attempts still running.",
            error=True,
        )

    def _banner(self) -> Banner:
        return self._dashboard().query_one("#banner", Banner)

    def _show_banner(
        self, text: str, *, error: bool = False, kind: Kind | None = None, sticky: bool = True
    ) -> None:
        """A sticky banner stays until dismissed (x) and rings the bell, if it is on."""
        shown = self._banner().show(
            text, kind=kind or ("error" if error else "warning"), sticky=sticky
        )
        if shown and sticky and self.bell_on:
            self.bells += 1
            self.bell()

    def action_dismiss_banner(self) -> None:
        self._banner().dismiss()

    def action_toggle_bell(self) -> None:
        self.bell_on = not self.bell_on
        self.notify(
            "Bell on: it rings when a run ends and when the engine stops or goes away."
            if self.bell_on
            else "Bell off.",
            timeout=4,
            markup=False,
        )

    @work(exclusive=True, group="start")
    async def _gate_and_start(self, request: RunRequest) -> None:
        """Preflight first: a failed check needs a knowing override, which is journaled."""
        self.notify("Running preflight before the run…", timeout=3, markup=False)
        results = await run_checks(all_checks(self.config))
        if not self._show_preflight(results):
            return
        failed = [r.name for r in results if r.status == "fail"]
        if failed:
            question = (
                f"Preflight failed: {', '.join(failed)}.\n\nStart the run anyway? "
                "The override and the failing checks are recorded in the journal."
            )
            if not await self.push_screen_wait(ConfirmScreen(question, "Start anyway")):
                refused = gate_record(results, overridden=False, by=self._who)
                self.session.journal.event("run_refused", **refused)
                self.notify("Run not started.", markup=False)
                return
        await self._start_engine(
            request, gate_record(results, overridden=bool(failed), by=self._who)
        )

    async def _start_engine(
        self, request: RunRequest, preflight: dict[str, object] | None = None
    ) -> None:
        snap = self.session.snapshot
        if self.session.engine is not None and snap is not None and snap.busy:
            self.notify(
                "A run is in progress: let it finish, or stop it (C cancels all).", markup=False
            )
            return
        self._banner().hide()
        self._told_end = None
        self._queue().update_items([])
        self.notify(f"Starting a run: {request.start} → {request.end}…", timeout=4, markup=False)
        try:
            started = await self.session.start(request, dict(preflight or {}))
        except UserError as exc:
            self._show_banner(f"The engine stopped: {exc}", error=True)
            return
        self._unfinished = None
        self._status().set_badge("unfinished", None)
        self.notify(
            f"Run #{started.run_id} started: engine pid {started.pid} (it goes on when this "
            "dashboard quits)",
            timeout=6,
            markup=False,
        )
        # Show where the work is: the run's first date, whatever the cursor was on.
        heatmap = self._heatmap()
        cursor = heatmap.cursor_cell()
        if cursor is None or not (request.start <= cursor[1] <= request.end):
            heatmap.move_to(day=request.start)
        await self._tick()

    @work(group="command")
    async def _send(self, command: Command) -> None:
        engine = self.session.engine
        if engine is None:
            self.notify("No run yet: s starts one.", markup=False)
            return
        reply = await engine.submit(command)
        self.notify(reply.message, severity="information" if reply.ok else "warning", markup=False)
        await self._tick()

    @work(group="command")
    async def _send_each(self, commands: list[Command], done: str) -> None:
        """A bulk action: each command in turn, one toast for all ("3 of 3 cancelled"; the
        engine's own reply when there is one command)."""
        engine = self.session.engine
        if engine is None:
            self.notify("No run yet: s starts one.", markup=False)
            return
        replies = [await engine.submit(command) for command in commands]
        refused = [r.message for r in replies if not r.ok]
        ok = len(commands) - len(refused)
        why = f"; refused: {refused[0]}" if refused else ""
        self.notify(
            replies[0].message if len(replies) == 1 else f"{ok} of {len(commands)} {done}{why}",
            severity="warning" if refused else "information",
            markup=False,
        )
        await self._tick()

    # -- controls ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.read_only and action in CONTROLS)  # read-only hides every control

    def action_start_run(self) -> None:
        coverage = self.session.coverage
        if coverage is None:
            self.notify("Coverage is still loading.", markup=False)
            return
        if self._unfinished is not None and self.session.engine is None:
            run_id, unfinished = self._unfinished

            def resume(yes: bool | None) -> None:
                self._unfinished = None  # asked once; a new run abandons it
                if yes:
                    self._gate_and_start(unfinished)
                else:
                    self.action_start_run()

            scope = ", ".join(unfinished.phases + unfinished.processors) or "all phases"
            self.push_screen(
                ConfirmScreen(
                    f"Resume run #{run_id}: {unfinished.start} → {unfinished.end}, {scope}, "
                    f"reprocess {unfinished.reprocess}?\n\nNo: plan a new run instead (the "
                    "unfinished one is then abandoned).",
                    "Resume",
                ),
                resume,
            )
            return
        cursor = self._heatmap().cursor_cell()
        start, end = self.session.range
        if cursor is not None:
            start, end = max(start, cursor[1]), min(end, cursor[2])

        def chosen(request: RunRequest | None) -> None:
            if request is not None:
                self._gate_and_start(request)

        self.push_screen(StartRunScreen(coverage, start, end), chosen)

    def action_pause(self) -> None:
        snap = self.session.snapshot
        if self.session.engine is None or snap is None:
            self.notify("No run yet: s starts one.", markup=False)
            return
        self._send(Resume() if snap.state == "paused" else Pause())

    def action_cancel(self) -> None:
        heatmap = self._heatmap()
        if self.focused is heatmap and heatmap.marked:
            self._cancel_cells(CancelCells(tuple(sorted(heatmap.marked))))
            return
        marked = self._queue().marked
        if marked:
            self._cancel_marked(marked)
            return
        item_id = self._queue().selected_item_id()
        view = self.session.items.get(item_id) if item_id is not None else None
        if view is None:
            self.notify("Select a queued or running item in the queue first.", markup=False)
            return
        if view.state not in (ItemState.PENDING, ItemState.RUNNING):
            self.notify(f"That item is {view.state.value}; nothing to cancel.", markup=False)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send(CancelItem(view.id))

        question = f"Cancel {view.processor} {view.dates[0]}…{view.dates[-1]}?"
        self.push_screen(ConfirmScreen(question), confirmed)

    def _cancel_marked(self, marked: frozenset[int]) -> None:
        views = [self.session.items[i] for i in sorted(marked) if i in self.session.items]
        live = [v for v in views if v.state in (ItemState.PENDING, ItemState.RUNNING)]
        if not live:
            self.notify(
                f"None of the {len(views)} marked items is queued or running; nothing to cancel.",
                markup=False,
            )
            return
        skipped = len(views) - len(live)
        also = f" ({skipped} marked ones are over already)" if skipped else ""

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send_each([CancelItem(view.id) for view in live], "cancelled")
                self._queue().clear_marks()

        question = f"Cancel the {len(live)} marked items{also}?"
        self.push_screen(ConfirmScreen(question, "Cancel marked"), confirmed)

    def action_cancel_all(self) -> None:
        snap = self.session.snapshot
        if self.session.engine is None or snap is None or not snap.busy:
            self.notify("Nothing is running.", markup=False)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send(CancelAll())

        self.push_screen(
            ConfirmScreen("Cancel every running and queued attempt of this run?", "Cancel all"),
            confirmed,
        )

    def action_retry(self) -> None:
        heatmap = self._heatmap()
        if self.focused is heatmap and (marked := heatmap.marked):
            failed = self._cells_in(marked, CellState.FAILED)
            if not failed:
                self.notify(
                    f"None of the {len(marked)} marked cells failed: nothing to retry.",
                    markup=False,
                )
                return
            self.post_message(RetryCells(tuple(sorted(failed))))
            return
        dates = None
        if self.focused is heatmap and (cursor := heatmap.cursor_cell()):
            _, first, last = cursor
            dates = frozenset(first + timedelta(days=i) for i in range((last - first).days + 1))
        snap = self.session.snapshot
        if self.session.engine is None or snap is None or not snap.busy:
            self._retry_from_journal(dates)
            return
        self._send(Retry(dates=dates))

    @work(exclusive=True, group="start")
    async def _retry_from_journal(self, dates: frozenset[date] | None) -> None:
        """No live run: a new run of the cells whose latest attempt failed, as the journal
        records them (of the cursor's dates, when the heatmap has the focus)."""
        start, end = self.session.range
        if dates:
            start, end = max(start, min(dates)), min(end, max(dates))
        journal = self.session.journal
        failed = await asyncio.to_thread(journal.failed_cells, start, end)
        if not failed:
            where = f" on {start} … {end}" if dates else ""
            self.notify(f"No failed cells in the journal{where}: nothing to retry.", markup=False)
            return
        await self._offer_run_of_failed(failed, ())

    async def _offer_run_of_failed(self, chosen: set[Cell], processors: tuple[str, ...]) -> None:
        """A new run, after a confirm, of the journal's failed cells over the chosen ones' dates
        (of `processors` only, when given): a run's request has a range and processors, not
        cells, so the question says what else it takes along."""
        days = sorted(d for _, d in chosen)
        first, last = days[0], days[-1]
        failed = await asyncio.to_thread(self.session.journal.failed_cells, first, last)
        taken = {c for c in failed if not processors or c[0] in processors}
        extra = len(taken - chosen)
        also = f" It also takes {extra} other failed cells of that range along." if extra else ""
        scope = f" of {', '.join(processors)}" if processors else ""
        abandon = (
            f"\n\nRun #{self._unfinished[0]} did not finish: this abandons it (s resumes it)."
            if self._unfinished is not None
            else ""
        )
        cells = f"{len(chosen)} failed cell{'s' if len(chosen) > 1 else ''}"
        question = (
            f"Retry the {cells}{scope} the journal records, {first} → {last}?\n\nA new run of "
            f"failed cells only (--reprocess failed).{also}{abandon}"
        )
        if await self.push_screen_wait(ConfirmScreen(question, "Retry")):
            self._unfinished = None
            self._gate_and_start(RunRequest(first, last, processors=processors, reprocess="failed"))

    def action_command_line(self) -> None:
        if not isinstance(self.screen, CommandLineScreen):
            self.push_screen(CommandLineScreen(self.config), self._run_command)

    async def _run_command(self, parsed: Parsed | None) -> None:
        """What `:` typed, parsed: the same actions as the keys (and their refusals)."""
        if parsed is None:
            return
        name, args = parsed.name, parsed.args
        if self.read_only and name in ("run", "retry", "pause", "resume", "parallel"):
            self.notify(f"Read-only: {name} is not available here.", markup=False)
            return
        if name == "run":
            start, end = args
            assert isinstance(start, date) and isinstance(end, date)
            self._gate_and_start(RunRequest(start, end))
        elif name == "retry":
            snap = self.session.snapshot
            if self.session.engine is not None and snap is not None and snap.busy:
                self._send(Retry())
            else:
                self._retry_from_journal(None)
        elif name in ("pause", "resume"):
            if self.session.engine is None:
                self.notify("No run yet: s starts one.", markup=False)
            else:
                self._send(Pause() if name == "pause" else Resume())
        elif name == "parallel":
            phase, n = args
            assert isinstance(phase, str) and isinstance(n, int)
            if self.session.engine is None:
                self.notify("No run yet: s starts one.", markup=False)
            else:
                self._send(SetConcurrency(phase, n))
        elif name == "goto":
            (where,) = args
            if isinstance(where, date):
                self.jump_to(day=where)
            else:
                self.jump_to(key=str(where))
        else:
            action = {"report": "write_report", "q": "quit"}.get(name, name)
            await self.run_action(action)

    def _cells_in(self, cells: frozenset[Cell], state: CellState) -> set[Cell]:
        """Those of `cells` the heatmap shows in `state`."""
        grid = self.session.grid
        if grid is None:
            return set()
        rows = {r.key: i for i, r in enumerate(grid.rows) if not r.is_phase}
        return {
            (key, day)
            for key, day in cells
            if key in rows
            and (column := grid.column_of(day)) is not None
            and grid.state(rows[key], column) is state
        }

    def _chosen_cells(self, verb: str) -> frozenset[Cell]:
        """The cells a bulk action on the dashboard takes: the heatmap's marked cells (else the
        cursor's) when it has the focus, the queue's marked items' cells (else the highlighted
        item's) when the queue has it."""
        heatmap, queue = self._heatmap(), self._queue()
        if self.focused is heatmap:
            cells = heatmap.chosen_cells()
            if not cells:
                self.notify(f"Nothing under the cursor to {verb}.", markup=False)
            return cells
        if self.focused is queue:
            ids = queue.marked or {i for i in (queue.selected_item_id(),) if i is not None}
            views = [self.session.items[i] for i in sorted(ids) if i in self.session.items]
            cells = frozenset((v.processor, d) for v in views for d in v.dates)
            if not cells:
                self.notify(f"Select an item in the queue to {verb} first.", markup=False)
            return cells
        self.notify(
            f"Focus the heatmap or the queue (tab) and choose the cells to {verb}.", markup=False
        )
        return frozenset()

    def action_known_empty(self, undo: bool = False) -> None:
        cells = self._chosen_cells("unmark" if undo else "mark known empty")
        if cells:
            self._ask_known_empty(set(cells), undo=undo)

    def action_exclude(self) -> None:
        cells = self._chosen_cells("exclude")
        if cells:
            self._exclude_cells(ExcludeCells(tuple(sorted(cells))))

    def action_failures(self) -> None:
        if not isinstance(self.screen, FailuresScreen):
            start, end = self.session.range
            self.push_screen(FailuresScreen(self.session.journal, start, end, self.read_only))

    @on(RetryCells)
    async def _retry_cells(self, event: RetryCells) -> None:
        """From the Failures screen: in the live run if one runs, else a new run."""
        by_processor: dict[str, set[date]] = {}
        for processor, day in event.cells:
            by_processor.setdefault(processor, set()).add(day)
        engine, snap = self.session.engine, self.session.snapshot
        if engine is not None and snap is not None and snap.busy:
            count = 0
            for processor, days in sorted(by_processor.items()):
                reply = await engine.submit(Retry(processor, frozenset(days)))
                count += reply.count
            left = len(event.cells) - count
            self.notify(
                f"{count} failed cells queued again in run #{snap.run_id}"
                + (f"; {left} are not in it: retry them once it ends" if left > 0 else ""),
                markup=False,
            )
            return
        self._retry_chosen(set(event.cells), tuple(sorted(by_processor)))

    @on(CancelCells)
    def _cancel_cells(self, event: CancelCells) -> None:
        """From the Failures screen: cancel, after a confirm, the live run's queued or running
        items that hold any of these cells (an item is a chunk of dates: all of it stops)."""
        snap = self.session.snapshot
        if self.session.engine is None or snap is None or not snap.busy:
            self.notify("No live run: nothing of these cells is queued or running.", markup=False)
            return
        cells = set(event.cells)
        open_items = [
            view
            for view in self.session.items.values()
            if view.state in (ItemState.PENDING, ItemState.RUNNING)
            and any((view.processor, day) in cells for day in view.dates)
        ]
        if not open_items:
            self.notify(
                f"None of the {len(cells)} cells is queued or running in run #{snap.run_id}.",
                markup=False,
            )
            return
        plural = "s" if len(open_items) > 1 else ""
        question = (
            f"Cancel {len(open_items)} queued or running item{plural} of run #{snap.run_id} "
            f"that hold these {len(cells)} failed cells?"
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                commands: list[Command] = [
                    CancelItem(v.id) for v in sorted(open_items, key=lambda v: v.id)
                ]
                self._send_each(commands, "cancelled")

        self.push_screen(ConfirmScreen(question, "Cancel"), confirmed)

    @on(ExcludeCells)
    def _exclude_cells(self, event: ExcludeCells) -> None:
        """From the Failures screen: after a confirm, the live run goes on without the items
        that hold these cells (an item is a chunk of dates: all of it leaves the run)."""
        snap = self.session.snapshot
        if self.session.engine is None or snap is None or snap.state in ("finished", "failed"):
            self.notify("No live run: there is nothing to exclude them from.", markup=False)
            return
        cells = set(event.cells)
        held = [
            view
            for view in self.session.items.values()
            if view.state is not ItemState.DONE
            and not (view.state is ItemState.CANCELLED and view.reason == EXCLUDED)
            and any((view.processor, day) in cells for day in view.dates)
        ]
        if not held:
            self.notify(
                f"None of the {len(cells)} cells is in run #{snap.run_id}: nothing to exclude.",
                markup=False,
            )
            return
        plural = "s" if len(held) > 1 else ""
        question = (
            f"Exclude {len(held)} item{plural} of run #{snap.run_id} that hold these "
            f"{len(cells)} cells? Running ones are cancelled; none runs again in this run, and "
            "the run ends incomplete, naming them."
        )
        by_processor: dict[str, set[date]] = {}
        for view in held:
            by_processor.setdefault(view.processor, set()).update(
                d for d in view.dates if (view.processor, d) in cells
            )

        def confirmed(yes: bool | None) -> None:
            if yes:
                commands: list[Command] = [
                    Exclude(processor, frozenset(days))
                    for processor, days in sorted(by_processor.items())
                ]
                self._send_each(commands, "exclusions made (one per processor)")

        self.push_screen(ConfirmScreen(question, "Exclude"), confirmed)

    @on(KnownEmptyCells)
    def _known_empty_cells(self, event: KnownEmptyCells) -> None:
        self._ask_known_empty(set(event.cells), undo=event.undo)

    @on(KnownEmptyRequested)
    def _known_empty_requested(self, event: KnownEmptyRequested) -> None:
        self._ask_known_empty({(event.processor, event.day)}, undo=event.undo)

    @work(exclusive=True, group="known-empty")
    async def _ask_known_empty(self, cells: set[Cell], *, undo: bool) -> None:
        """Ask (why, for a mark; yes or no, for an undo), then mark or unmark the cells: in
        the live run if one is attached, else in the journal. The heatmap shows it at once."""
        if self.read_only:
            self.notify("Read-only: nothing is marked from this dashboard.", markup=False)
            return
        days = sorted(d for _, d in cells)
        processors = sorted({p for p, _ in cells})
        span = str(days[0]) if days[0] == days[-1] else f"{days[0]} → {days[-1]}"
        what = (
            f"{len(cells)} cell{'s' if len(cells) > 1 else ''} of {', '.join(processors)}, {span}"
        )
        reason = ""
        if undo:
            question = f"Undo known empty for {what}? They are judged by their rows again."
            if not await self.push_screen_wait(ConfirmScreen(question, "Undo")):
                return
        else:
            question = (
                f"Mark {what} known empty?\n\nThey then count as complete (coverage, gates, the "
                "planner) and are not run; E on the date view undoes it."
            )
            answer = await self.push_screen_wait(KnownEmptyScreen(question))
            if answer is None:
                return
            reason = answer
        by_processor: dict[str, set[date]] = {}
        for processor, day in cells:
            by_processor.setdefault(processor, set()).add(day)
        try:
            replies, rows = await self.session.known_empty(by_processor, reason, undo=undo)
        except (UserError, OSError, EngineGone) as exc:
            self.notify(str(exc), title="Not marked", severity="error", markup=False)
            return
        if rows:
            self._heatmap().refresh_rows(rows)
        refused = [r.message for r in replies if not r.ok]
        self.notify(
            " ".join(refused or [r.message for r in replies]),
            severity="warning" if refused else "information",
            markup=False,
        )
        screen = self.screen
        if isinstance(screen, FailuresScreen):
            screen.reload()
        elif isinstance(screen, DateDetailScreen):
            screen.show_coverage(*self._date_view(screen.day))

    def _date_view(self, day: date) -> tuple[Coverage, dict[str, CellState]]:
        coverage, grid = self.session.coverage, self.session.grid
        assert coverage is not None and grid is not None
        column = grid.column_of(day)
        states = (
            {}
            if column is None
            else {r.key: grid.state(i, column) for i, r in enumerate(grid.rows) if not r.is_phase}
        )
        return coverage, states

    @work(exclusive=True, group="start")
    async def _retry_chosen(self, chosen: set[Cell], processors: tuple[str, ...]) -> None:
        await self._offer_run_of_failed(chosen, processors)

    @on(OpenDate)
    def _open_failed_date(self, event: OpenDate) -> None:
        self._open_date(event.day)

    def action_runs(self) -> None:
        if not isinstance(self.screen, RunsScreen):
            snap = self.session.snapshot
            live = snap.run_id if self.session.engine is not None and snap is not None else None
            self.push_screen(RunsScreen(self.session.journal, live))

    def action_write_report(self) -> None:
        self._write_report(None)

    @on(ReportRequested)
    def _report_requested(self, event: ReportRequested) -> None:
        self._write_report(event.run_id)

    @work(exclusive=True, group="report")
    async def _write_report(self, run_id: int | None) -> None:
        """The run's report (the latest run's when None) and, beside it, an SVG of the
        dashboard as it is now (Textual's own export), in state_dir/reports/."""
        journal, state = self.session.journal, self.config.state_path
        if run_id is None:
            latest = await asyncio.to_thread(journal.runs, 1)
            if not latest:
                self.notify("No run yet: nothing to report.", markup=False)
                return
            run_id = latest[0].id
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        picture = f"run-{run_id}-heatmap.svg"
        try:
            folder = state / REPORTS
            await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
            self.save_screenshot(picture, path=str(folder))
            markdown, _ = await asyncio.to_thread(
                save_report, journal, state, run_id, picture=picture
            )
        except (UserError, OSError) as exc:
            self.notify(str(exc), title="Report not written", severity="error", markup=False)
            return
        self.notify(f"Report of run #{run_id}: {markdown}", timeout=10, markup=False)

    def _focused_phase(self) -> str | None:
        """The phase of the heatmap's cursor (when it has the focus), else of the queue's item."""
        if self.focused is self._heatmap() and (cursor := self._heatmap().cursor_cell()):
            return cursor[0].phase
        item_id = self._queue().selected_item_id()
        view = self.session.items.get(item_id) if item_id is not None else None
        return view.phase if view is not None else None

    def _change_concurrency(self, delta: int) -> None:
        snap = self.session.snapshot
        phase = self._focused_phase()
        if phase is not None and all(p.is_source for p in self.config.phase(phase).processors):
            # The engine would refuse it too, but only after journaling the attempt as an
            # operator action: nothing to record for a phase that runs nothing.
            self.notify(
                f"{phase} has no jobs to run: its processors are sources (coverage only).",
                severity="warning",
                markup=False,
            )
            return
        if snap is None or phase is None or phase not in snap.concurrency:
            self.notify(
                "Put the cursor on a phase (heatmap) or an item (queue) of a run.", markup=False
            )
            return
        self._send(SetConcurrency(phase, snap.concurrency[phase][1] + delta))

    def action_more(self) -> None:
        self._change_concurrency(+1)

    def action_fewer(self) -> None:
        self._change_concurrency(-1)

    def action_preflight(self, switch: bool = True) -> None:
        pane = self._dashboard().query_one(PreflightPane)
        checks = all_checks(self.config)
        pane.show_running([c.name for c in checks])
        if switch:
            self._dashboard().query_one(TabbedContent).active = "preflight-tab"
        self._run_preflight(checks)

    @work(exclusive=True, group="preflight")
    async def _run_preflight(self, checks: list[Check]) -> None:
        results = await run_checks(checks)
        if not self._show_preflight(results):
            return
        failed = [r.name for r in results if r.status == "fail"]
        if failed:
            self.notify(f"Preflight failed: {', '.join(failed)}", severity="error", markup=False)

    # -- notifications -------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="notify-health")
    def _load_health(self) -> None:
        """The channels' health as the engine journaled it: the live run's, else the latest
        run's (a journal read, so in a thread)."""
        snap = self.session.snapshot
        run_id = snap.run_id if snap is not None else None
        journal = self.session.journal
        if run_id is None:
            latest = journal.runs(1)
            if not latest:
                return
            run_id = latest[0].id
        health = journaled_health(journal, run_id)
        self.call_from_thread(self._show_health, health)

    def _show_health(self, health: list[ChannelHealth]) -> None:
        try:
            pane = self._dashboard().query_one(NotifyPane)
        except NoMatches:  # quitting
            return
        pane.show_health(health)
        sick = len(pane.unhealthy)
        badge = f"✉ notify: {sick} unhealthy" if sick else None
        self._status().set_badge("notify", badge, "bold white on dark_red")

    def action_notify_test(self) -> None:
        channels = list(self.config.notify)
        if not channels:
            self.notify("No notify: channels in the config: nothing to test.", markup=False)
            return
        pane = self._dashboard().query_one(NotifyPane)
        pane.show_tests(dict.fromkeys((ch.name for ch in channels), SENDING))
        self._dashboard().query_one(TabbedContent).active = "notify-tab"
        self._send_tests()

    @work(exclusive=True, group="notify-test")
    async def _send_tests(self) -> None:
        """Each send runs in a worker thread under the channel's timeout (the loop only
        awaits them), all channels at once."""
        pane = self._dashboard().query_one(NotifyPane)
        outcomes = await send_tests(
            self.config.notify, each=lambda name, error: pane.show_tests({name: error})
        )
        failed = {name: error for name, error in outcomes.items() if error is not None}
        text = "; ".join(
            f"{name}: " + ("delivered" if error is None else f"failed: {error}")
            for name, error in outcomes.items()
        )
        self.notify(
            text,
            title="Test message",
            severity="warning" if failed else "information",
            timeout=10,
            markup=False,
        )

    def _show_preflight(self, results: list[CheckResult]) -> bool:
        """False when the dashboard is being torn down: checks run for up to minutes, and a
        quit while they did must not end in a crash over a pane already gone."""
        try:
            pane = self._dashboard().query_one(PreflightPane)
        except NoMatches:  # quitting
            return False
        pane.show_results(results)
        return True

    def action_refresh_coverage(self) -> None:
        self._status().show(refreshing=True)
        self._load_coverage()

    def action_filter(self) -> None:
        dashboard = self._dashboard()
        if self.screen is dashboard:  # the queue is not on the date screen
            dashboard.open_filter()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.config))

    async def action_quit(self) -> None:
        engine, snap = self.session.engine, self.session.snapshot
        if engine is None or snap is None or not snap.busy or self.read_only:
            self.exit()  # a read-only dashboard changes nothing, not even on its way out
            return

        async def chosen(choice: str | None) -> None:
            if choice == "stop":
                await engine.submit(Stop(cancel_running=True))
                self.exit()
            elif choice == "detach":
                self.exit()

        self.push_screen(QuitScreen(snap.count(ItemState.RUNNING)), chosen)

    # -- messages from widgets -----------------------------------------------------------

    @on(CoverageHeatmap.CellHighlighted)
    @on(CoverageHeatmap.MarksChanged)
    def _cell_highlighted(self) -> None:
        self._describe_cursor()

    def _describe_cursor(self) -> None:
        coverage = self.session.coverage
        if not self.screen_stack:  # exiting: a cursor message still in the queue
            return
        try:
            heatmap = self._heatmap()
            line = self._dashboard().query_one("#cell", Static)
        except NoMatches:  # exiting: the dashboard's widgets are going (a tick was awaiting)
            return
        cursor = heatmap.cursor_cell()
        if coverage is None or cursor is None:
            return
        row, first, last = cursor
        text = self._describe(coverage, row.key, row.is_phase, first, last)
        if marked := len(heatmap.marked):
            text = f"{MARK} {marked} marked (r c e X act on them, esc unmarks) · {text}"
        # A fixed line (height: 1): each cursor move repaints it without a screen relayout.
        line.update(literal(text, newlines=False), layout=False)

    def _describe(
        self, coverage: Coverage, key: str, is_phase: bool, first: date, last: date
    ) -> str:
        grid = self.session.grid
        assert grid is not None
        row = grid.row_index(key)
        columns = [
            c
            for d in range((last - first).days + 1)
            if (c := grid.column_of(first + timedelta(days=d))) is not None
        ]
        states = [grid.state(row, c) for c in columns]
        when = str(first) if first == last else f"{first} … {last}"
        if first != last or is_phase:
            counts = {s: states.count(s) for s in set(states) if s is not CellState.NOT_EXPECTED}
            parts = ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items(), key=str))
            name = key.removeprefix("phase:")
            text = f"{when} · {parts or 'no expected dates'}"
            snap = self.session.snapshot
            ends = describe_phase(snap.forecast, name) if is_phase and snap is not None else None
            # The phase's end first: the counts may run past an 80-column line, it must not.
            return (
                f"{name} · {text}" if ends is None else f"{name}: this run's share {ends} · {text}"
            )
        proc = self.config.processor(key)
        cell = coverage.cell(proc, first)
        state = states[0] if states else cell.state
        rows = f"{cell.rows} rows" + (f" of {cell.required} needed" if cell.required else "")
        last_attempt = ""
        view = self.session.item_at(key, first)
        if view is not None and view.attempt:
            last_attempt = f" · attempt {view.attempt}: {view.outcome or 'running'}" + (
                f" exit {view.exit_code}" if view.exit_code is not None else ""
            )
        return f"{key} · {first:%a %Y-%m-%d} · {state.value} · {rows}{last_attempt}"

    @on(CoverageHeatmap.CellSelected)
    def _cell_selected(self, event: CoverageHeatmap.CellSelected) -> None:
        self._open_date(self._worst_day(event.row.key, event.start, event.end))

    def _worst_day(self, key: str, first: date, last: date) -> date:
        """A week or month opens on its worst day (its first failed date, say), not its first."""
        grid = self.session.grid
        assert grid is not None
        row = grid.row_index(key)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        columns = [(d, c) for d in days if (c := grid.column_of(d)) is not None]
        if not columns:
            return first
        worst_state = worst([grid.state(row, c) for _, c in columns])
        return next(d for d, c in columns if grid.state(row, c) is worst_state)

    @on(QueueTable.ItemHighlighted)
    def _item_highlighted(self, event: QueueTable.ItemHighlighted) -> None:
        if not self.screen_stack:  # exiting: the queue announced a highlight as it went
            return
        self._show_log_of(self._dashboard().query_one(LogTail), event.item_id)

    def _show_log_of(self, log: LogTail, item_id: int | None) -> None:
        """The log pane tails the highlighted item's latest attempt: called when the cursor
        moves and when the item changes (a first or a new attempt has another log file)."""
        view = self.session.items.get(item_id) if item_id is not None else None
        if view is None or view.log_path is None:
            if log.path is not None:
                log.follow(None)  # a queued item has no log yet: not another item's
            return
        log.follow(view.log_path, title=f"{view.processor} {view.dates[0]} attempt {view.attempt}")

    @on(QueueTable.ItemChosen)
    def _item_chosen(self, event: QueueTable.ItemChosen) -> None:
        view = self.session.items.get(event.item_id)
        if view is not None:
            self._open_date(view.dates[0])

    def _open_date(self, day: date) -> None:
        coverage, grid = self.session.coverage, self.session.grid
        if coverage is None or grid is None or (column := grid.column_of(day)) is None:
            return
        states = {r.key: grid.state(i, column) for i, r in enumerate(grid.rows) if not r.is_phase}
        self.push_screen(
            DateDetailScreen(day, coverage, self.session.journal, states, self.read_only)
        )

    @on(RetryRequested)
    async def _retry_date(self, event: RetryRequested) -> None:
        """In the live run if one runs; else a new run of those cells, after a confirm."""
        engine, snap = self.session.engine, self.session.snapshot
        if engine is not None and snap is not None and snap.busy:
            count = 0
            for processor in event.processors:
                reply = await engine.submit(Retry(processor, frozenset({event.day})))
                count += reply.count
            self.notify(
                f"{count} failed items on {event.day} queued again"
                if count
                else "Those cells are not failed in the current run; retry after it ends.",
                markup=False,
            )
            return
        names = ", ".join(event.processors)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._gate_and_start(RunRequest(event.day, event.day, processors=event.processors))

        self.push_screen(ConfirmScreen(f"Run {names} for {event.day}?", "Run"), confirmed)

    def get_system_commands(self, screen: Screen[object]) -> Iterator[SystemCommand]:
        # Textual's "Keys" panel lists bindings without their panes or meaning: ours replaces it.
        yield from (c for c in super().get_system_commands(screen) if c.title != "Keys")
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.action != "quit":
                action = binding.action
                yield SystemCommand(
                    binding.description,
                    f"key {binding.key}" + (f": {binding.tooltip}" if binding.tooltip else ""),
                    lambda a=action: self.run_action(a),
                )


def _engine_note(session: Session) -> str:
    engine = session.engine
    if engine is None:
        return ""
    info = engine.info
    since = time.strftime("%H:%M", time.localtime(info.since))
    others = info.viewers - 1
    watching = f" · {others} other dashboard{'s' if others > 1 else ''}" if others > 0 else ""
    return f"engine {info.pid}@{info.host} since {since}{watching}"


def run_dashboard(config: Config, *, read_only: bool = False) -> int:
    """The dashboard until the operator quits; the exit code (1 when it failed)."""
    app = BackfillApp(config, read_only=read_only)
    app.run()
    if app.crash is not None:
        print(app.crash, file=sys.stderr)
    return app.return_code or 0
