"""The dashboard on BigQuery: what a refresh costs in the status bar, and a start that never waits
on BigQuery (the journal's last coverage at once, the refresh behind it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_config
from tests.bigquery.conftest import bigquery_config
from tui.app import BackfillApp

SIZE = (160, 45)


async def until(pilot, condition, timeout: float = 30.0) -> None:
    waited = 0.0
    while not condition():
        assert waited < timeout, "condition not met in time"
        await pilot.pause(0.1)
        waited += 0.1


def status_text(app: BackfillApp) -> str:
    return str(app.screen.query_one("#status").render())


@pytest.mark.asyncio
async def test_cost_is_shown_and_a_dead_bigquery_never_holds_up_the_start(
    both, project: str, tmp_path: Path
):
    _, bq = both
    app = BackfillApp(load_config(bq))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await until(pilot, lambda: "a refresh bills" in status_text(app))
        assert f"bigquery {project}" in status_text(app)
        grid = app.session.grid
        assert grid is not None
        days = len(grid.days)

    # The same state folder, but BigQuery now unreachable and slow to give up.
    down = bigquery_config(
        bq.parent, project, "http://127.0.0.1:9", extra="  retry_deadline: 20s\n"
    )
    app = BackfillApp(load_config(down))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None, timeout=5)
        grid = app.session.grid
        assert grid is not None
        assert len(grid.days) == days  # the journal's coverage, at once
        text = status_text(app)
        assert "cached" in text and "refreshing" in text
        await pilot.press("z")  # and the dashboard answers keys meanwhile
        await until(pilot, lambda: "coverage unavailable" in status_text(app), timeout=60)
