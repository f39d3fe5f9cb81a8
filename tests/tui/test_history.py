"""History across restarts: the Runs screen, failed cells of earlier runs, `r` from the journal,
and the hand-off report written from the dashboard. Runs are made headless first: the dashboard
opens on a journal it did not write."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from core.config import load_config
from core.coverage import CellState
from core.engine.api import ItemState
from tests.tui.drive import SIZE, headless_run, items, run_start, until
from tui.app import BackfillApp
from tui.modals.confirm import ConfirmScreen
from tui.screens.failures import FailuresScreen
from tui.screens.runs import RunsScreen
from tui.widgets.log_tail import LogTail

HANGS = ("player_daily_cache", date(2024, 1, 24))  # the demo's injected hang on that date
WINDOW = ("2024-01-15", "2024-01-28")


@pytest.fixture
def two_runs(demo: Path) -> Path:
    """Run 1 fills Phase 3 of the window; run 2, Phase 4, leaves the hanging date failed."""
    filled = headless_run(demo, *WINDOW, "--phase", "analytics", faults=False)
    assert filled.returncode == 0, filled.stdout + filled.stderr
    failed = headless_run(demo, *WINDOW, "--phase", "precompute", faults=True)
    assert failed.returncode != 0 and "player_daily_cache" in failed.stdout, failed.stdout
    return demo


def cell_state(app: BackfillApp) -> CellState:
    """The hanging cell as the heatmap draws it (whatever the zoom shows of it)."""
    grid = app.session.grid
    assert grid is not None
    column = grid.column_of(HANGS[1])
    assert column is not None
    return grid.state(grid.row_index(HANGS[0]), column)


def toasts(app: BackfillApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pytest.mark.asyncio
async def test_runs_screen_lists_the_journals_runs_and_writes_a_report(two_runs: Path):
    app = BackfillApp(load_config(two_runs))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2)
        newest, oldest = screen.runs
        assert (newest.id, oldest.id) == (2, 1)  # newest first
        assert oldest.run.status == "finished" and newest.run.status == "incomplete"
        assert newest.count("failed") >= 1 and oldest.count("failed") == 0
        assert newest.by is not None and "(headless)" in newest.by
        shown = [str(cell) for cell in table.get_row("2")]
        assert "incomplete" in shown and "precompute · missing" in shown
        # Its range, when it started and ended, and how long it took, each in its column.
        columns = [str(c.label) for c in table.columns.values()]
        cell = dict(zip(columns, shown, strict=True))
        assert cell["Range"] == "2024-01-15 → 2024-01-28"
        assert cell["Started"][:2] == "20" and cell["Ended"] != "—" and cell["Took"] != "—"
        assert cell["Done"].endswith(f"/{newest.total}") and cell["Failed"] != "0"

        await pilot.press("enter")  # the highlighted run: the newest
        reports = two_runs.parent / ".backfill" / "reports"
        await until(pilot, lambda: (reports / "run-2.md").exists())
        await until(pilot, lambda: any("Report of run #2" in t for t in toasts(app)))
        markdown = (reports / "run-2.md").read_text()
        assert "# Run #2: 2024-01-15 → 2024-01-28, incomplete" in markdown
        assert "player_daily_cache 2024-01-24" in markdown  # its failure group
        assert "](run-2-heatmap.svg)" in markdown
        assert (reports / "run-2-heatmap.svg").read_text().lstrip().startswith("<svg")
        assert not isinstance(app.screen, RunsScreen)  # the picture is of the dashboard
        assert oct((reports / "run-2.md").stat().st_mode & 0o777) == "0o600"

        # Triage: the journal's failed cells, grouped by error, across runs.
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FailuresScreen))
        failures = app.screen
        assert isinstance(failures, FailuresScreen)
        await until(pilot, lambda: bool(failures.groups))
        (group,) = failures.groups
        assert HANGS in group.cells and "stall" in group.signature
        assert group.count == len(app.session.journal.failed_cells(*app.session.range))
        # Its row: cells, error, processors, first and last seen; its sample line and log.
        row = [str(c) for c in failures.query_one("#groups", DataTable).get_row_at(0)]
        assert row[0] == str(group.count) and row[2] == HANGS[0]
        assert group.first_seen is not None and group.last_seen is not None
        assert group.first_seen <= group.last_seen and "-" not in (row[3], row[4])
        sample = str(failures.query_one("#failure-sample", Static).render())
        assert f"{group.count} cells · sample: {group.sample_line}" in sample
        sample_log = group.sample_log
        assert sample_log is not None
        log = failures.query_one("#failure-log", LogTail)
        await until(pilot, lambda: log.path == Path(sample_log))
        cells = failures.query_one("#failure-cells", DataTable)
        assert cells.row_count == group.count
        await pilot.press("space")  # marks the first cell and steps down
        assert failures.marked == {group.cells[0]} and cells.cursor_row == 1
        await pilot.press("G", "space")  # and the last: the chunk's first and last dates
        assert failures.marked == {group.cells[0], group.cells[-1]}
        await pilot.press("r")  # the marked cells only: a new run, after a confirm
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one(".dialog--question").render())
        assert f"2 failed cells of {HANGS[0]}" in question
        # a run has a range, not cells: the question says what the range takes along
        assert f"{group.count - 2} other failed cells" in question
        await pilot.press("n")
        await until(pilot, lambda: app.screen is failures)
        await pilot.press("c")  # no engine lives: nothing of them is queued or running
        await until(pilot, lambda: any("No live run" in t for t in toasts(app)))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, FailuresScreen))


@pytest.mark.asyncio
async def test_an_earlier_runs_failure_is_on_the_heatmap_and_r_retries_only_it(two_runs: Path):
    app = BackfillApp(load_config(two_runs))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        assert cell_state(app) is CellState.FAILED  # drawn from the journal, no engine lives

        app.screen.query_one("QueueTable").focus()  # not the heatmap: every failed cell
        await pilot.press("r")  # no engine lives: a new run of the journal's failed cells
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one(".dialog--question").render())
        failed = app.session.journal.failed_cells(date(2024, 1, 1), date(2024, 2, 28))
        assert HANGS in failed and {p for p, _ in failed} == {HANGS[0]}  # its item's chunk
        first, last = min(d for _, d in failed), max(d for _, d in failed)
        assert f"{len(failed)} failed cells the journal records, {first} → {last}" in question
        assert "Run #" not in question  # run 2 ended (incomplete): nothing is abandoned
        await pilot.press("y")
        await until(pilot, lambda: run_start(app) == first, timeout=60)
        await until(pilot, lambda: items(app, ItemState.DONE) == 1, timeout=60)
        snap = app.session.snapshot
        assert snap is not None and snap.total == 1  # only the failed chunk, not the window
        assert snap.request.reprocess == "failed"
        await until(pilot, lambda: cell_state(app) is CellState.COMPLETE)
        assert not any("Run #None" in t for t in toasts(app))
