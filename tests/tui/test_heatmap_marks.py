"""Marks on the heatmap: space marks the cursor's cells (a phase row: its processors'), they
are drawn where the operator looks, and r, e, E and X act on them (the cursor's cells when none
is marked); esc unmarks. Driven with Pilot over a real journal and the demo warehouse."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import Static

from core.config import load_config
from core.coverage import CellState
from tests.tui.drive import SIZE, until
from tests.tui.test_history import HANGS, cell_state, toasts, two_runs  # noqa: F401
from tui.app import BackfillApp
from tui.modals.confirm import ConfirmScreen
from tui.modals.known_empty import KnownEmptyScreen
from tui.text import MARK
from tui.widgets.coverage_heatmap import CoverageHeatmap


def line_of(heatmap: CoverageHeatmap, key: str) -> int:
    """The screen line (of the widget) drawing the row `key`."""
    grid = heatmap.grid
    assert grid is not None
    place = heatmap._place[grid.row_index(key)]
    return heatmap.HEADER_HEIGHT + place - round(heatmap.scroll_y)


def marked_characters(heatmap: CoverageHeatmap, key: str) -> int:
    styles = set(heatmap._get_styles().marked)
    strip = heatmap.render_line(line_of(heatmap, key))
    return sum(len(s.text) for s in strip if s.style in styles)


def cell_line(app: BackfillApp) -> str:
    return str(app.screen.query_one("#cell", Static).render())


@pytest.mark.asyncio
async def test_space_marks_cells_that_r_e_and_E_then_act_on(two_runs: Path):  # noqa: F811
    processor, hang = HANGS
    before = hang - timedelta(days=1)
    app = BackfillApp(load_config(two_runs))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        assert cell_state(app) is CellState.FAILED
        heatmap = app.screen.query_one(CoverageHeatmap)
        heatmap.zoom = "day"
        app.jump_to(key=processor, day=before)
        await pilot.pause()
        assert heatmap.cursor_cells() == {(processor, before)}
        await pilot.press("space", "space")  # marks a date and steps on to the next one
        await pilot.pause()
        assert heatmap.marked == {(processor, before), (processor, hang)}
        # Drawn: the row's label carries the mark, its two cells the mark's background.
        label = "".join(s.text for s in heatmap.render_line(line_of(heatmap, processor)))
        assert label.startswith(f" {MARK} ")
        assert marked_characters(heatmap, processor) == 2 * heatmap._layout().cell
        assert "2 marked" in cell_line(app)

        # r takes the marked cells that failed: the hanging one, in a new run of failed cells.
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one(".dialog--question").render())
        assert f"Retry the 1 failed cell of {processor}" in question
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))

        # e marks both known empty, with a reason, in the journal (no engine is live).
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, KnownEmptyScreen))
        asked = app.screen.query_one(".dialog--question")
        question = str(asked.render())
        assert f"Mark 2 cells of {processor}, {before} → {hang} known empty" in question
        # A long question wraps inside its dialog (it ran out of it, cut, at any width).
        dialog = app.screen.query_one(".dialog")
        assert asked.region.right <= dialog.content_region.right and asked.size.height >= 3
        await pilot.press(*"holiday", "enter")
        await until(pilot, lambda: cell_state(app) is CellState.KNOWN_EMPTY)
        cells = app.session.journal.known_empty_cells(before, hang)
        assert cells == {(processor, before), (processor, hang)}
        assert any("2 cells marked known empty" in t for t in toasts(app))

        # E undoes the marks of the marked cells, after a confirm.
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Undo known empty for 2 cells" in str(
            app.screen.query_one(".dialog--question").render()
        )
        await pilot.press("y")
        await until(pilot, lambda: cell_state(app) is CellState.FAILED)
        assert not app.session.journal.known_empty_cells(before, hang)

        # esc unmarks everything; a second esc is the screen's again (nothing to unmark).
        await pilot.press("escape")
        await pilot.pause()
        assert not heatmap.marked
        assert marked_characters(heatmap, processor) == 0
        assert "marked" not in cell_line(app)
        await pilot.press("escape")
        assert not heatmap.marked


@pytest.mark.asyncio
async def test_space_on_a_phase_row_marks_its_processors_and_x_needs_a_live_run(
    two_runs: Path,  # noqa: F811
):
    processor, hang = HANGS
    config = load_config(two_runs)
    phase = config.phase_of(processor)
    app = BackfillApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        heatmap = app.screen.query_one(CoverageHeatmap)
        heatmap.zoom = "day"
        app.jump_to(key=f"phase:{phase.name}", day=hang)
        await pilot.press("space")
        await pilot.pause()
        assert heatmap.marked == {(p.name, hang) for p in phase.processors}
        assert all(marked_characters(heatmap, p.name) > 0 for p in phase.processors)
        # The same key on the same column again unmarks it.
        app.jump_to(key=f"phase:{phase.name}", day=hang)
        await pilot.press("space")
        await pilot.pause()
        assert not heatmap.marked
        # X with nothing marked takes the cursor's cells; without a live run it says so.
        app.jump_to(key=processor, day=hang)
        await pilot.press("X")
        await until(pilot, lambda: any("No live run" in t for t in toasts(app)))
