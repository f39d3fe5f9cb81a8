"""Cancelled cells: a cell whose latest attempt was cancelled is drawn cancelled (⊘) by the
dashboard of the live run and, after the run ended, by a new dashboard that reads it from the
journal, until an attempt fills it. Real engine process, journal, SQLite warehouse, Pilot."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core.config import load_config
from core.coverage import CellState
from core.engine.api import ItemState
from core.state import Journal
from tests.helpers import day, write_config, write_tables
from tests.tui.drive import SIZE, until
from tests.tui.test_attach import backfill, detach
from tests.tui.test_known_empty import wait_engine_gone
from tui.app import BackfillApp

#: a job that writes nothing for a minute: cancelled, its cells stay not complete
CONFIG = """\
name: t
warehouse: {kind: sqlite, path: wh}
calendar: {start: 2024-01-01, end: 2024-01-05}
phases:
  - name: raw
    processors:
      - {name: src, table: ds.src, date_column: d}
  - name: work
    processors:
      - name: slow
        table: ds.slow
        date_column: d
        depends_on: [src]
        command: ["sleep", "60"]
"""
DAY = day("2024-01-02")


def state_of(app: BackfillApp, processor: str, when: date) -> CellState:
    grid = app.session.grid
    assert grid is not None
    column = grid.column_of(when)
    assert column is not None
    return grid.state(grid.row_index(processor), column)


@pytest.mark.asyncio
async def test_a_cancelled_cell_is_drawn_cancelled_live_and_after_a_restart(tmp_path: Path):
    write_tables(tmp_path / "wh", {"ds.src": {DAY: 1, day("2024-01-03"): 1}}, date_column="d")
    path = write_config(tmp_path, CONFIG)
    detach(path, "2024-01-02", "2024-01-03", "--processor", "slow")
    app = BackfillApp(load_config(path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None and app.session.engine is not None)
        await until(
            pilot, lambda: any(v.state is ItemState.RUNNING for v in app.session.items.values())
        )
        assert state_of(app, "slow", DAY) is CellState.RUNNING
        cancelled = backfill(path, "cancel", "--all")
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        await until(pilot, lambda: state_of(app, "slow", DAY) is CellState.CANCELLED)
    wait_engine_gone(path, 60)
    journal = Journal(tmp_path / ".backfill")
    try:
        assert journal.latest_outcomes(DAY, DAY)[("slow", DAY)] == "cancelled"
        assert ("slow", DAY) not in journal.failed_cells(DAY, DAY)  # not a failure
    finally:
        journal.close()

    # A new dashboard, no engine: the journal says the cell's latest attempt was cancelled.
    again = BackfillApp(load_config(path))
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: again.session.grid is not None)
        assert again.session.engine is None
        await until(pilot, lambda: state_of(again, "slow", DAY) is CellState.CANCELLED)
        assert state_of(again, "src", DAY) is CellState.COMPLETE  # never run: as it is
