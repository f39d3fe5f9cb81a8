"""The dashboard driven with Pilot over a real engine running the demo processors."""

from __future__ import annotations

import io
import time
from datetime import date
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Log, Select, Static

from core.config import load_config
from core.coverage import CellState
from core.engine.api import ItemState
from core.grid import CODE
from core.state import EngineLock, Journal
from tests.tui.drive import (
    SIZE,
    headless_run,
    items,
    run_start,
    run_state,
    running_pids,
    start_run,
    stop_engine,
    until,
)
from tui.app import BackfillApp
from tui.modals.command_line import CommandLineScreen
from tui.modals.confirm import ConfirmScreen
from tui.modals.help import HelpScreen, StateTable
from tui.modals.known_empty import KnownEmptyScreen
from tui.modals.quit import QuitScreen
from tui.modals.start_run import StartRunScreen
from tui.screens.date_detail import DateDetailScreen
from tui.screens.failures import CancelCells, FailuresScreen
from tui.screens.runs import RunsScreen
from tui.text import MARK
from tui.widgets.coverage_heatmap import GLYPHS, CoverageHeatmap, state_class
from tui.widgets.log_tail import LogTail
from tui.widgets.preflight_pane import PreflightPane
from tui.widgets.queue_table import COLUMNS, PADDING, REASON_WIDTH, QueueTable


@pytest.mark.asyncio
async def test_opens_on_the_demo_with_its_coverage(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        grid = app.session.grid
        assert grid is not None
        assert len(grid.days) == (date(2024, 11, 29) - date(2021, 10, 19)).days + 1
        raw = grid.row_index("phase:raw")
        assert {grid.state(raw, c) for c in range(len(grid.days))} <= {
            CellState.COMPLETE,
            CellState.NOT_EXPECTED,
        }
        heatmap = app.screen.query_one(CoverageHeatmap)
        assert heatmap.cursor_cell() is not None
        status = str(app.screen.query_one("#status").render())
        assert "idle" in status and "sqlite" in status
        await until(
            pilot,
            lambda: "PASS" in str(app.screen.query_one("#preflight", PreflightPane).get_row_at(0)),
        )


@pytest.mark.asyncio
async def test_start_pause_resume_and_the_run_completes(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2024-02-01", "2024-02-03", enter=True)
        # The heatmap goes to where the work is.
        cell = app.screen.query_one(CoverageHeatmap).cursor_cell()
        assert cell is not None
        assert cell[1] == date(2024, 2, 1)
        await until(pilot, lambda: items(app, ItemState.RUNNING) > 0)
        await pilot.press("P")
        await until(pilot, lambda: run_state(app) == "paused")
        await until(pilot, lambda: items(app, ItemState.RUNNING) == 0)
        assert items(app, ItemState.PENDING) > 0  # nothing new started while paused
        await pilot.press("P")
        await until(pilot, lambda: run_state(app) == "running")
        await until(
            pilot,
            lambda: items(app, ItemState.PENDING) + items(app, ItemState.RUNNING) == 0,
            timeout=90,
        )
        grid = app.session.grid
        assert grid is not None
        column = grid.column_of(date(2024, 2, 1))
        assert column is not None
        analytics = grid.row_index("phase:analytics")
        assert grid.state(analytics, column) is CellState.COMPLETE
        assert app.screen.query_one("#queue", QueueTable).row_count == len(app.session.items)


@pytest.mark.asyncio
async def test_cancel_one_and_cancel_all_ask_first(slow_demo: Path):
    # Attempts that run until cancelled: with the fixture's 6 s stall timeout a 3 s job was
    # killed as stalled before a loaded machine got from c to y, leaving nothing to cancel.
    slow_demo.write_text(slow_demo.read_text().replace("stall_timeout: 6s", "stall_timeout: 30s"))
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2023-03-01", "2023-03-20")
        await until(pilot, lambda: items(app, ItemState.RUNNING) > 0)
        # The Failures screen's c: the live run's item holding a chosen cell, after a confirm.
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FailuresScreen))
        running = next(v for v in app.session.items.values() if v.state is ItemState.RUNNING)
        app.screen.post_message(CancelCells(((running.processor, running.dates[-1]),)))
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Cancel 1 queued or running item of run #" in str(
            app.screen.query_one(".dialog--question").render()
        )
        await pilot.press("y")
        await until(pilot, lambda: app.session.items[running.id].state is ItemState.CANCELLED)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, FailuresScreen))

        app.screen.query_one("#queue").focus()
        await pilot.pause(0.3)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: items(app, ItemState.CANCELLED) == 2)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: items(app, ItemState.RUNNING) == 0)
        journal = app.session.journal
        pids = [a.pid for i in app.session.items for a in journal.attempts_of_item(i) if a.pid]
        assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.asyncio
async def test_space_marks_queue_rows_and_c_cancels_just_those(slow_demo: Path):
    slow_demo.write_text(slow_demo.read_text().replace("stall_timeout: 6s", "stall_timeout: 30s"))
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2023-03-01", "2023-03-20")
        await until(pilot, lambda: items(app, ItemState.PENDING) > 3)
        queue = app.screen.query_one("#queue", QueueTable)
        queue.focus()
        queue.move_cursor(row=queue.row_count - 1)
        await pilot.pause(0.2)
        await pilot.press("space")  # marks the last row; the cursor stays on the last row
        queue.move_cursor(row=queue.row_count - 2)
        await pilot.press("space")
        marked = queue.marked
        assert len(marked) == 2
        # The mark is drawn where the operator sees it, and esc clears it (then means "back").
        shown = [queue.row_of(i) for i in marked]
        lines = [
            "".join(seg.text for seg in queue.render_line(row - queue.scroll_offset.y + 1))
            for row in shown
            if row is not None
        ]
        assert len(lines) == 2 and all(line.lstrip().startswith(MARK) for line in lines)
        await pilot.press("escape")
        assert not queue.marked
        for row in (queue.row_count - 1, queue.row_count - 2):
            queue.move_cursor(row=row)
            await pilot.press("space")
        marked = queue.marked
        assert app.session.items.keys() >= marked
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Cancel the 2 marked items?" in str(
            app.screen.query_one(".dialog--question").render()
        )
        await pilot.press("y")
        await until(
            pilot,
            lambda: all(app.session.items[i].state is ItemState.CANCELLED for i in marked),
        )
        others = [v for i, v in app.session.items.items() if i not in marked]
        assert not any(v.state is ItemState.CANCELLED for v in others)
        assert not queue.marked
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: items(app, ItemState.RUNNING) == 0)


@pytest.mark.asyncio
async def test_drill_into_a_failed_date_read_its_log_and_retry_it(demo: Path):
    # Phase 3 of the window first, headless and without faults, so Phase 4 may start.
    filled = headless_run(demo, "2024-01-15", "2024-01-28", "--phase", "analytics", faults=False)
    assert filled.returncode == 0, filled.stdout + filled.stderr
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        # Phase 4 only: the demo's player_daily_cache hangs on 2024-01-24 and, with no
        # retries here, the stall timeout leaves it failed.
        await start_run(pilot, app, "2024-01-15", "2024-01-28", phase="precompute")
        await until(pilot, lambda: items(app, ItemState.FAILED) == 1, timeout=120)
        heatmap = app.screen.query_one(CoverageHeatmap)
        heatmap.move_to(key="player_daily_cache", day=date(2024, 1, 24))
        heatmap.focus()
        await until(pilot, lambda: heatmap.cursor_state() is CellState.FAILED)  # next UI tick
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DateDetailScreen))
        detail = app.screen
        assert isinstance(detail, DateDetailScreen)
        assert detail.day == date(2024, 1, 24)  # the month's failed date, not its first
        table = detail.query_one("#processors", DataTable)
        await until(pilot, lambda: table.row_count == 15)
        table.focus()
        await pilot.press("G")  # the last processor, then back to the first
        assert table.cursor_row == 14
        await pilot.press("g")
        assert table.cursor_row == 0
        table.move_cursor(row=table.get_row_index("player_daily_cache"))
        await until(pilot, lambda: detail.query_one("#attempts", DataTable).row_count == 1)
        log = detail.query_one(LogTail)
        await until(pilot, lambda: "stalled" in "\n".join(log.query_one("Log", Log).lines))
        await pilot.press("r")  # retry this processor on this date: a new run, after a confirm
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: run_start(app) == date(2024, 1, 24))
        await until(pilot, lambda: items(app, ItemState.DONE) == 1, timeout=60)
        pdc = app.config.processor("player_daily_cache")

        def repaired() -> bool:
            coverage = app.session.coverage
            assert coverage is not None
            return coverage.cell(pdc, date(2024, 1, 24)).state is CellState.COMPLETE

        await until(pilot, repaired)  # the next UI tick folds the engine's re-read in


@pytest.mark.asyncio
async def test_read_only_refuses_every_control(demo: Path):
    app = BackfillApp(load_config(demo), read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        for key in ("s", "P", "r", "c", "C", "plus", "minus"):
            await pilot.press(key)
        await pilot.pause(0.3)
        assert app.session.engine is None
        assert not isinstance(app.screen, StartRunScreen | ConfirmScreen)
        assert "READ-ONLY" in str(app.screen.query_one("#status").render())
        enabled = {key for key, b in app.screen.active_bindings.items() if b.enabled}
        assert "s" not in enabled and "P" not in enabled and "c" not in enabled


@pytest.mark.asyncio
async def test_quit_while_running_can_stop_the_run(slow_demo: Path):
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2023-03-01", "2023-03-20")
        await until(pilot, lambda: bool(running_pids(app)))
        running = running_pids(app)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("s")
        await until(pilot, lambda: not app.is_running, timeout=30)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in running):
        assert time.monotonic() < deadline, "the stopped run's attempts live on"
        time.sleep(0.1)
    stop_engine(slow_demo)  # waits for the engine to end the run
    journal = Journal(slow_demo.parent / ".backfill")
    assert journal.unfinished_run() is None  # the run ended: nothing to adopt


@pytest.mark.asyncio
async def test_quit_detaches_and_the_next_dashboard_attaches_to_the_run_that_went_on(
    slow_demo: Path,
):
    slow_demo.write_text(slow_demo.read_text().replace("stall_timeout: 6s", "stall_timeout: 30s"))
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2023-03-01", "2023-03-05")
        await until(pilot, lambda: bool(running_pids(app)))
        snap = app.session.snapshot
        assert snap is not None
        run_id = snap.run_id
        assert run_id is not None
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("enter")  # the default: detach, never stop
        await until(pilot, lambda: not app.is_running, timeout=30)
    journal = Journal(slow_demo.parent / ".backfill")
    done_then = sum(a.outcome == "ok" for a in journal.last_attempts(run_id).values())

    # The engine went on alone; the next dashboard attaches to it and sees the run progress.
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.snapshot is not None)
        snap = app.session.snapshot
        assert snap is not None
        assert snap.run_id == run_id
        engine = app.session.engine
        assert engine is not None
        assert engine.info.pid == EngineLock(slow_demo.parent / ".backfill").owner()
        await until(pilot, lambda: items(app, ItemState.DONE) > done_then, timeout=60)
        status = str(app.screen.query_one("#status").render())
        engine = app.session.engine
        assert engine is not None
        assert f"engine {engine.info.pid}@" in status


@pytest.mark.asyncio
async def test_command_palette_jumps_to_a_date_and_a_processor(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        heatmap = app.screen.query_one(CoverageHeatmap)
        for query, row, day in [
            ("2024-01-15", None, date(2024, 1, 15)),
            ("player_daily", "player_daily_cache", None),
            ("2023-02", None, date(2023, 2, 1)),  # partial dates: a month's first day
            ("mar 2022", None, date(2022, 3, 1)),
        ]:
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*query)
            await pilot.pause(0.5)
            await pilot.press("enter")
            await pilot.pause(0.3)
            cell = heatmap.cursor_cell()
            assert cell is not None
            got_row, first, last = cell
            if day:
                assert first <= day <= last
            if row:
                assert got_row.key == row
        assert app.focused is heatmap


@pytest.mark.asyncio
async def test_an_engine_that_fails_says_why_in_a_banner_and_frees_the_state_dir(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        # The warehouse goes away (and is no demo that would seed itself again).
        demo.write_text(demo.read_text().replace("demo: true", "demo: false"))
        warehouse = demo.parent / ".backfill" / "warehouse"
        warehouse.rename(warehouse.with_name("warehouse.away"))
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, StartRunScreen))
        app.screen.query_one("#start", Input).value = "2024-02-01"
        app.screen.query_one("#end", Input).value = "2024-02-03"
        await until(pilot, lambda: not app.screen.query_one("#go").disabled)
        await pilot.click("#go")
        # Preflight fails on the missing warehouse: start anyway, as an operator might.
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        banner = app.screen.query_one("#banner")
        await until(pilot, lambda: banner.display)
        text = str(banner.render())
        assert "The engine stopped" in text and "does not exist" in text
        assert banner.has_class("-error")
        assert EngineLock(demo.parent / ".backfill").owner() is None  # free for the next start
        await pilot.pause(0.5)
        assert not any("all done" in str(n.message) for n in app._notifications)


# -- issue 13: keys that do what they say ---------------------------------------------------


def toasts(app: BackfillApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def plain(widget: Static) -> str:
    """What a Static shows, as plain text (its content may be a Rich renderable)."""
    console = Console(width=110, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


async def queue_of_a_short_run(pilot: Pilot[None], app: BackfillApp) -> QueueTable:
    """The queue once a six-day run started from the dialog shows all its items."""
    await until(pilot, lambda: app.session.grid is not None)
    await start_run(pilot, app, "2023-03-01", "2023-03-06")
    queue = app.screen.query_one("#queue", QueueTable)
    await until(pilot, lambda: queue.row_count == len(app.session.items) > 10)
    return queue


@pytest.mark.asyncio
async def test_the_queue_filter_esc_clears_enter_keeps_and_shows_it_and_hides_its_input(
    demo: Path,
):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        queue = await queue_of_a_short_run(pilot, app)
        field = app.screen.query_one("#filter", Input)
        queue.focus()

        # Esc in the input: the filter is gone and so is the input
        await pilot.press("slash", *"team_")
        await until(pilot, lambda: 0 < queue.row_count < len(app.session.items))
        assert field.display and app.focused is field
        await pilot.press("escape")
        await pilot.pause()
        assert queue.filter == "" and queue.row_count == len(app.session.items)
        assert not field.display and field.disabled
        assert app.focused is queue
        note = app.screen.query_one("#filter-note")
        assert not note.display

        # Enter: the filter stays, the input goes, and a line over the queue says so
        await pilot.press("slash", *"team_", "enter")
        await pilot.pause()
        assert queue.filter == "team_" and queue.row_count < len(app.session.items)
        assert not field.display and app.focused is queue
        assert note.display
        text = str(note.render())
        assert "filter: team_" in text and "esc clears" in text
        assert f"{queue.row_count} of {len(app.session.items)}" in text

        # the hidden input never takes the focus, so letters never land in it
        for key in ["tab"] * 6 + ["shift+tab"] * 6:
            await pilot.press(key)
            assert app.focused is not field
        await pilot.press("x")
        assert field.value == "team_"

        # Esc anywhere on the dashboard clears it (here: from the heatmap)
        app.screen.query_one(CoverageHeatmap).focus()
        await pilot.press("escape")
        await pilot.pause()
        assert queue.filter == "" and not note.display and field.value == ""

        # a state word filters to that state (`/` filters what has the focus: the queue)
        queue.focus()
        await pilot.press("slash", *"done", "enter")
        await until(pilot, lambda: queue.row_count > 0)
        assert {app.session.items[queue.item_id_at(r)].state for r in range(queue.row_count)} == {
            ItemState.DONE
        }

        # what is typed is drawn as typed, never as markup
        await pilot.press("slash", "ctrl+u", *"[b]x[/]", "enter")
        await pilot.pause()
        assert "filter: [b]x[/] · 0 of" in str(note.render())


@pytest.mark.asyncio
async def test_a_typed_filter_character_filters_in_its_own_call_so_one_frame_draws_both(
    demo: Path,
):
    # Filtered from Input's posted Changed message, the character was drawn first and the
    # filtered queue a frame period (16 ms) later: typing on a busy dashboard took ~30 ms a key.
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        queue = await queue_of_a_short_run(pilot, app)
        queue.focus()
        await pilot.press("slash")
        field = app.screen.query_one("#filter", Input)
        assert app.focused is field
        field.insert_text_at_cursor("team_")  # no await: nothing else runs in between
        assert queue.filter == "team_" and 0 < queue.row_count < len(app.session.items)
        field.value = ""
        assert queue.filter == "" and queue.row_count == len(app.session.items)

        heatmap = app.screen.query_one(CoverageHeatmap)
        await pilot.press("escape")
        heatmap.focus()
        await pilot.press("slash")
        assert app.focused is app.screen.query_one("#heatmap-filter", Input)
        app.screen.query_one("#heatmap-filter", Input).insert_text_at_cursor("team")
        assert heatmap.filter == "team"


@pytest.mark.asyncio
async def test_slash_on_the_heatmap_filters_its_rows_and_a_jump_clears_it(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        heatmap = app.screen.query_one(CoverageHeatmap)
        field = app.screen.query_one("#heatmap-filter", Input)
        note = app.screen.query_one("#heatmap-filter-note")
        heatmap.focus()
        kept, total = heatmap.filter_counts
        assert kept == total == len(app.config.processors)

        await pilot.press("slash", *"team", "enter")
        await pilot.pause()
        assert heatmap.filter == "team" and not field.display and app.focused is heatmap
        teams = [p.name for p in app.config.processors if "team" in p.name]
        assert heatmap.filter_counts == (len(teams), total)
        assert f"filter: team · {len(teams)} of {total} processors" in str(note.render())
        assert app.screen.query_one(QueueTable).filter == ""  # the queue's own stays off
        await pilot.press("G")  # the last row shown is the last team processor
        row = heatmap.cursor_cell()
        assert row is not None and row[0].key == teams[-1]

        app.jump_to(key="player_daily_cache")  # a jump to a row the filter hides shows it
        await pilot.pause()
        assert heatmap.filter == "" and field.value == "" and not note.display
        row = heatmap.cursor_cell()
        assert row is not None and row[0].key == "player_daily_cache"

        await pilot.press("slash", *"complete", "escape")  # a state word, then esc: all back
        await pilot.pause()
        assert heatmap.filter == "" and heatmap.filter_counts == (total, total)

        # A state word keeps the processors that have that state somewhere, and only them.
        grid = app.session.grid
        assert grid is not None
        partial = CODE[CellState.PARTIAL]
        having = [
            r.key for i, r in enumerate(grid.rows) if not r.is_phase and partial in grid.codes[i]
        ]
        assert 0 < len(having) < total
        await pilot.press("slash", *"partial", "enter")
        await pilot.pause()
        assert heatmap.filter_counts == (len(having), total)
        shown = {grid.rows[i].key for i in heatmap._shown if not grid.rows[i].is_phase}
        assert shown == set(having)


@pytest.mark.asyncio
async def test_the_highlighted_item_stays_put_while_others_change_and_c_cancels_it(
    slow_demo: Path,
):
    # Jobs that end well (not killed as stalled): their rows sink below the cursor's.
    slow_demo.write_text(slow_demo.read_text().replace("stall_timeout: 6s", "stall_timeout: 30s"))
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2023-03-01", "2023-03-20")
        await until(pilot, lambda: items(app, ItemState.RUNNING) > 0)
        queue = app.screen.query_one("#queue", QueueTable)
        log = app.screen.query_one(LogTail)
        await until(pilot, lambda: queue.row_count == len(app.session.items) > 50)
        queue.focus()
        # the operator puts the cursor on the last queued item, well below the first screen
        # (in one step: keys pressed one by one would race the run's own moves)
        last_pending = max(
            r
            for r in range(queue.row_count)
            if app.session.items[queue.item_id_at(r)].state is ItemState.PENDING
        )
        queue.move_cursor(row=last_pending)
        target = queue.selected_item_id()
        assert target is not None and app.session.items[target].state is ItemState.PENDING
        await pilot.pause()
        line = queue.cursor_row - queue.scroll_offset.y  # type: ignore[operator]
        assert queue.scroll_offset.y > 0

        # other items start (their rows rise above it) and finish (theirs sink below it): the
        # highlighted one keeps its item, its line on screen and the log pane (a queued item
        # has no log yet: not the log of the item that was there before)
        done = items(app, ItemState.DONE)
        ticks = 0
        while items(app, ItemState.DONE) < done + 3:
            await pilot.pause(0.1)
            ticks += 1
            assert ticks < 900, "the run made no progress"
            assert queue.selected_item_id() == target
            assert queue.cursor_row - queue.scroll_offset.y == line  # type: ignore[operator]
            assert log.path is None
        assert ticks > 10  # several UI ticks (4 a second) went by
        assert app.session.items[target].state is ItemState.PENDING

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: items(app, ItemState.CANCELLED) == 1)
        assert app.session.items[target].state is ItemState.CANCELLED
        assert queue.selected_item_id() == target


@pytest.mark.asyncio
async def test_the_log_pane_follows_the_highlighted_item_to_its_attempt(slow_demo: Path):
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2023-03-01", "2023-03-05")
        queue = app.screen.query_one("#queue", QueueTable)
        log = app.screen.query_one(LogTail)
        await until(pilot, lambda: items(app, ItemState.RUNNING) > 0)
        await until(pilot, lambda: queue.row_count == len(app.session.items))
        # not moved yet, the cursor rides the top row: the first running item, and its log
        top = app.session.items[queue.item_id_at(0)]
        await until(pilot, lambda: log.path == app.session.items[queue.item_id_at(0)].log_path)
        assert queue.selected_item_id() == queue.item_id_at(0) and top.log_path is not None
        # the first queued item: no log of its own yet; once it starts, its attempt's log
        queue.focus()
        first_pending = next(
            r
            for r in range(queue.row_count)
            if app.session.items[queue.item_id_at(r)].state is ItemState.PENDING
        )
        await pilot.press("g", *["j"] * first_pending)
        chosen = queue.selected_item_id()
        assert chosen is not None
        await pilot.pause(0.3)
        if app.session.items[chosen].state is ItemState.PENDING:
            assert log.path is None
        await until(pilot, lambda: app.session.items[chosen].log_path is not None, timeout=60)
        await until(pilot, lambda: log.path == app.session.items[chosen].log_path)
        assert queue.selected_item_id() == chosen


@pytest.mark.asyncio
async def test_the_footer_shows_at_most_eight_keys_and_they_fit_at_80_columns(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        shown = [b for b in app.screen.active_bindings.values() if b.binding.show]
        keys = sorted({b.binding.description for b in shown})
        assert len(keys) <= 8, keys
        footer = app.screen.query_one("Footer")
        assert footer.region.height == 1 and footer.virtual_size.width <= 80


@pytest.mark.asyncio
async def test_question_mark_opens_a_help_screen_with_the_heatmap_states(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        heatmap = app.screen.query_one(CoverageHeatmap)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert not help_screen.query("HelpPanel")  # not Textual's generic key list
        keys = plain(help_screen.query_one("#help-keys", Static))
        for heading in ("Global", "Heatmap", "Queue", "Logs", "Runs (R)", "Failures (F)"):
            assert heading in keys
        for key, what in [("c", "Cancel"), ("z", "Zoom"), ("G", "Follow"), ("/", "Filter")]:
            assert what in keys and key in keys
        assert ":parallel PHASE N" in keys and ":retry failed" in keys
        table = help_screen.query_one(StateTable)
        console = Console(width=110, file=io.StringIO(), record=True, color_system=None)
        console.print(table.render())
        lines = console.export_text()
        for state in CellState:
            assert GLYPHS[state] in lines and state.value.replace("_", " ") in lines
        # the glyphs in the heatmap's own colours
        for state in (CellState.FAILED, CellState.COMPLETE, CellState.QUEUED):
            assert table.get_component_rich_style(
                state_class(state)
            ) == heatmap.get_component_rich_style(state_class(state))
        gates = plain(help_screen.query_one("#help-gates", Static))
        assert "Phase 3 (Analytics)" in gates and "95%" in gates
        assert "upstream" in plain(help_screen.query_one("#help-blocked", Static))
        assert "Detach" in plain(help_screen.query_one("#help-quit", Static))
        # ? or esc closes it; q too, without quitting
        for key in ("question_mark", "escape", "q"):
            if not isinstance(app.screen, HelpScreen):
                await pilot.press("question_mark")
                await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.press(key)
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        assert app.is_running


@pytest.mark.asyncio
async def test_more_or_fewer_on_a_source_phase_is_refused_by_name(slow_demo: Path):
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2023-03-01", "2023-03-20")
        await until(pilot, lambda: items(app, ItemState.RUNNING) > 0)
        heatmap = app.screen.query_one(CoverageHeatmap)
        heatmap.focus()
        for key in ("phase:raw", "nbac_schedule"):
            heatmap.move_to(key=key)
            await pilot.press("plus", "minus")
            await pilot.pause(0.3)
        refused = "raw has no jobs to run: its processors are sources (coverage only)."
        assert toasts(app).count(refused) == 4

        def limit(phase: str) -> int:
            snap = app.session.snapshot
            assert snap is not None
            return snap.concurrency[phase][1]

        # a phase that runs jobs takes it
        heatmap.move_to(key="player_game_summary")
        await pilot.press("plus")
        await until(pilot, lambda: limit("analytics") == 6)
        snap = app.session.snapshot
        assert snap is not None and snap.run_id is not None
        actions = [
            fields
            for _, _, kind, fields in app.session.journal.events(snap.run_id)
            if kind == "operator_setconcurrency"
        ]
        assert [a["phase"] for a in actions] == ["analytics"]  # nothing recorded for raw


@pytest.mark.asyncio
async def test_esc_goes_back_from_every_dialog_and_the_date_screen(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await until(pilot, lambda: app.session.coverage is not None)
        dashboard = app.screen
        for key, screen in [
            ("s", StartRunScreen),
            ("question_mark", HelpScreen),
            ("enter", DateDetailScreen),  # on the heatmap's cell
            ("R", RunsScreen),
            ("F", FailuresScreen),
            ("colon", CommandLineScreen),
            ("e", KnownEmptyScreen),  # the cursor's cells: why are they empty?
            ("E", ConfirmScreen),  # undo their marks?
        ]:
            app.screen.query_one(CoverageHeatmap).focus()
            await pilot.press(key)
            await until(pilot, lambda s=screen: isinstance(app.screen, s))  # type: ignore[misc]
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is dashboard)
        assert app.is_running


@pytest.mark.asyncio
async def test_the_start_dialog_keeps_its_fields_and_buttons_on_screen_at_80x24(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, StartRunScreen))
        screen = app.screen
        screen.query_one("#start", Input).value = "2021-10-19"
        screen.query_one("#end", Input).value = "2024-11-29"
        screen.query_one("#reprocess", Select).value = "all"  # the longest plan there is
        await until(pilot, lambda: not screen.query_one("#go").disabled, timeout=60)
        summary = str(screen.query_one("#summary", Static).render())
        assert summary.count("\n") >= 6, summary  # longer than what fits: it scrolls
        for widget in ("#start", "#end", "#phase", "#reprocess", "#go", "#cancel"):
            region = screen.query_one(widget).region
            assert region.right <= 80 and region.bottom <= 24 and region.height > 0, widget
        assert screen.query_one("#start", Input).region.width >= 14  # a whole date shows


@pytest.mark.asyncio
async def test_at_120x40_the_queue_shows_its_first_six_columns_whole_and_the_log_goes_under(
    slow_demo: Path,
):
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await start_run(pilot, app, "2024-01-15", "2024-01-20", "analytics")
        queue = app.screen.query_one(QueueTable)
        await until(pilot, lambda: queue.row_count > 0)
        # State, processor, dates, attempt, duration and reason (at least its own width) fit.
        assert [label for label, _, _ in COLUMNS[:6]][-1] == "Exit/reason"
        widths = queue._widths[:6]
        assert widths[-1] >= REASON_WIDTH
        assert sum(widths) + 2 * PADDING * 6 <= queue.scrollable_content_region.width
        side = app.screen.query_one("#side")
        assert side.region.y >= queue.region.bottom and side.region.width == 120
    # A short screen keeps them side by side: stacked, neither would show enough.
    short = BackfillApp(load_config(slow_demo))
    async with short.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: short.session.grid is not None)
        queue, side = short.screen.query_one(QueueTable), short.screen.query_one("#side")
        assert side.region.x >= queue.region.right


def test_a_queue_highlight_that_arrives_once_the_screens_are_gone_is_dropped(demo: Path) -> None:
    """Seen in CI: a dashboard quitting at 80x24 got the queue's highlight after its screens
    had gone, and died looking for the dashboard's log pane (IndexError on the screen stack)."""
    app = BackfillApp(load_config(demo))
    assert app.screen_stack == []  # as while the app exits
    app._item_highlighted(QueueTable.ItemHighlighted(1))
