"""Known-empty cells against a live engine: `backfill known-empty` goes through the engine's
socket, the engine settles pending items of those cells instead of running them, and dashboards
attached to it show the new state at once. Everything is real: a detached engine process, its
socket, the journal, the demo warehouse, Textual Pilot."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import anyio
import pytest
from textual.widgets import DataTable, Label

from core.config import load_config
from core.coverage import CellState
from core.engine.api import ItemState
from core.state import Journal
from tests.tui.drive import SIZE, fault_free, until
from tests.tui.test_attach import backfill, detach, engine_pid
from tests.tui.test_history import HANGS, WINDOW, cell_state, toasts, two_runs  # noqa: F401
from tui.app import BackfillApp
from tui.modals.confirm import ConfirmScreen
from tui.modals.known_empty import KnownEmptyScreen
from tui.screens.date_detail import DateDetailScreen
from tui.screens.failures import FailuresScreen


@pytest.fixture
def slow_demo(demo: Path, monkeypatch) -> Path:
    """Two seconds per date and no injected faults: items wait long enough to be marked."""
    return fault_free(demo, monkeypatch, 2)


def wait_engine_gone(config: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while engine_pid(config) is not None:
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(0.5)


@pytest.mark.asyncio
async def test_known_empty_with_a_live_engine_settles_pending_items_and_the_run_completes(
    slow_demo,
):
    processor = "upcoming_team_game_context"
    run_id = detach(
        slow_demo, "2024-01-15", "2024-01-22", "--processor", processor,
        "--reprocess", "all", "--max-parallel", "1",
    )  # fmt: skip
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None and app.session.engine is not None)
        await until(pilot, lambda: app.session.snapshot is not None and app.session.snapshot.busy)
        marked = await anyio.to_thread.run_sync(
            lambda: backfill(
                slow_demo,
                "known-empty",
                processor,
                "2024-01-19",
                "2024-01-22",
                "--reason",
                "no games that week",
                "--json",
            )
        )
        assert marked.returncode == 0, marked.stdout + marked.stderr
        reply = json.loads(marked.stdout)
        assert reply["ok"] is True and reply["engine"]["pid"] == engine_pid(slow_demo)
        assert "4 cells marked known empty" in reply["message"]
        assert "pending items settled" in reply["message"]

        # The dashboard attached to that engine sees the marks through its snapshots.
        grid = app.session.grid
        assert grid is not None
        row, column = grid.row_index(processor), grid.column_of(date(2024, 1, 21))
        assert column is not None
        await until(pilot, lambda: grid.state(row, column) is CellState.KNOWN_EMPTY, 5)
    wait_engine_gone(slow_demo)

    journal = Journal(slow_demo.parent / ".backfill")
    try:
        (run,) = [r for r in journal.runs() if r.id == run_id]
        assert run.status == "finished"  # complete: the marked cells count as complete
        items = journal.items(run_id)
        attempts = journal.last_attempts(run_id)
        late = [i for i in items if min(i.dates).isoformat() >= "2024-01-19"]
        assert late and all(i.state == "done" and i.reason == "known empty" for i in late)
        assert not any(i.id in attempts for i in late)  # never run
        early = [i for i in items if max(i.dates).isoformat() < "2024-01-19"]
        assert early and all(i.id in attempts for i in early)
        events = [e for _, _, kind, e in journal.events(run_id) if kind == "operator_knownempty"]
        assert events and "(cli)" in events[0]["who"] and events[0]["ok"] is True
    finally:
        journal.close()
    status = json.loads(backfill(slow_demo, "status", "--json").stdout)
    procs = {p["name"]: p for ph in status["phases"] for p in ph["processors"]}
    assert procs[processor]["known_empty"] >= 1
    report = json.loads(backfill(slow_demo, "report", "--format", "json").stdout)
    assert report["known_empty"]["count"] == 4
    assert {c["reason"] for c in report["known_empty"]["cells"]} == {"no games that week"}
    assert [c["date"] for c in report["known_empty"]["cells"]] == [
        "2024-01-19",
        "2024-01-20",
        "2024-01-21",
        "2024-01-22",
    ]
    markdown = backfill(slow_demo, "report").stdout
    assert "## Known empty" in markdown and "4 cells, counted complete:" in markdown
    assert f"- {processor} 2024-01-19..2024-01-22 (4): no games that week" in markdown

    # With the engine gone, the undo goes to the journal directly (and exits 0, not 3).
    undone = backfill(slow_demo, "known-empty", processor, "2024-01-19", "2024-01-22", "--undo")
    assert undone.returncode == 0, undone.stderr
    assert "4 known-empty marks undone" in undone.stdout
    status = json.loads(backfill(slow_demo, "status", "--json").stdout)
    procs = {p["name"]: p for ph in status["phases"] for p in ph["processors"]}
    assert procs[processor]["known_empty"] == 0


@pytest.mark.asyncio
async def test_e_on_the_failures_screen_marks_a_group_known_empty_and_e_on_the_date_undoes_it(
    two_runs: Path,  # noqa: F811  (the fixture of tests/tui/test_history.py)
):
    app = BackfillApp(load_config(two_runs))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        assert cell_state(app) is CellState.FAILED
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FailuresScreen))
        failures = app.screen
        assert isinstance(failures, FailuresScreen)
        await until(pilot, lambda: bool(failures.groups))
        (group,) = failures.groups
        await pilot.press("e")  # the whole group: nothing is marked
        await until(pilot, lambda: isinstance(app.screen, KnownEmptyScreen))
        question = str(app.screen.query_one(".dialog--question").render())
        assert f"Mark {group.count} cells of {HANGS[0]}" in question
        await pilot.press("enter")  # no reason yet: refused, the dialog stays
        await pilot.pause(0.2)
        assert isinstance(app.screen, KnownEmptyScreen)
        problem = str(app.screen.query_one("#reason-problem", Label).render())
        assert "A reason is needed" in problem
        await pilot.press(*"nogames", "enter")
        await until(pilot, lambda: app.screen is failures)
        await until(pilot, lambda: not failures.groups)  # they count as complete now
        assert cell_state(app) is CellState.KNOWN_EMPTY  # drawn at once, no refresh
        rows = app.session.journal.known_empty(date(2024, 1, 1), date(2024, 2, 28))
        assert {(r.processor, r.day) for r in rows} == set(group.cells)
        assert {r.reason for r in rows} == {"nogames"} and "(dashboard)" in rows[0].who
        assert any("cells marked known empty" in t for t in toasts(app))

        await pilot.press("escape")
        app._open_date(HANGS[1])
        await until(pilot, lambda: isinstance(app.screen, DateDetailScreen))
        detail = app.screen
        assert isinstance(detail, DateDetailScreen)
        await until(pilot, lambda: bool(detail.query("#processors")))
        table = detail.query_one("#processors", DataTable)
        await until(pilot, lambda: table.row_count == 15)
        table.focus()
        table.move_cursor(row=table.get_row_index(HANGS[0]))
        assert "known_empty" in [str(c) for c in table.get_row(HANGS[0])]
        await pilot.press("e")  # on a known-empty cell: undo, after a confirm
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Undo known empty for 1 cell" in str(
            app.screen.query_one(".dialog--question").render()
        )
        await pilot.press("y")
        await until(pilot, lambda: app.screen is detail)
        await until(pilot, lambda: cell_state(app) is CellState.FAILED)
        await until(pilot, lambda: "failed" in [str(c) for c in table.get_row(HANGS[0])])
        left = app.session.journal.known_empty_cells(date(2024, 1, 1), date(2024, 2, 28))
        assert HANGS not in left and len(left) == group.count - 1


@pytest.mark.asyncio
async def test_x_on_the_failures_screen_excludes_cells_from_the_live_run(
    two_runs: Path,  # noqa: F811  (the fixture of tests/tui/test_history.py)
    monkeypatch,
):
    # A slow, fault-free retry of run 2's failed cells, so they are in the live run to exclude.
    monkeypatch.setenv("BACKFILL_DEMO_DELAY", "3")
    monkeypatch.setenv("BACKFILL_DEMO_FAULTS", "0")
    run_id = detach(two_runs, *WINDOW, "--processor", HANGS[0], "--reprocess", "failed")
    app = BackfillApp(load_config(two_runs))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None and app.session.engine is not None)
        await until(pilot, lambda: bool(app.session.items))
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FailuresScreen))
        failures = app.screen
        assert isinstance(failures, FailuresScreen)
        await until(pilot, lambda: bool(failures.groups))
        (group,) = failures.groups
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one(".dialog--question").render())
        assert f"of run #{run_id} that hold these {group.count} cells" in question
        await pilot.press("y")
        await until(
            pilot,
            lambda: (
                bool(app.session.items)
                and all(v.state is ItemState.CANCELLED for v in app.session.items.values())
            ),
            timeout=30,
        )
        await until(pilot, lambda: any("Excluded" in t for t in toasts(app)))
    wait_engine_gone(two_runs, 60)
    journal = Journal(two_runs.parent / ".backfill")
    try:
        (run,) = [r for r in journal.runs() if r.id == run_id]
        assert run.status == "incomplete"  # the run ended without them, not complete
        reasons = {i.reason for i in journal.items(run_id)}
        assert "excluded by operator" in reasons
        events = [e for _, _, k, e in journal.events(run_id) if k == "operator_exclude"]
        assert events and "(dashboard)" in events[0]["who"]
        # Excluded is not known empty: the cells are still not complete.
        assert not journal.known_empty_cells(date(2024, 1, 1), date(2024, 2, 28))
    finally:
        journal.close()
