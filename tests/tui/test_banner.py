"""The dashboard's own alerts: a banner that stays until dismissed when a run ends (complete or
not) or the engine goes, and the optional terminal bell. Real detached engines on the demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_config
from core.engine.api import ItemState
from tests.tui.drive import SIZE, items, start_run, until
from tui.app import BackfillApp
from tui.widgets.banner import Banner


@pytest.mark.asyncio
async def test_a_complete_run_leaves_a_banner_until_dismissed_and_rings_once(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        banner = app.screen.query_one("#banner", Banner)
        assert not app.bell_on  # off unless asked for
        await pilot.press("b")
        assert app.bell_on
        await start_run(pilot, app, "2024-02-01", "2024-02-02")
        await until(pilot, lambda: banner.display, timeout=90)
        assert banner.text is not None and "complete: all" in banner.text
        assert banner.has_class("-ok") and not banner.has_class("-error")
        assert app.bells == 1
        # The engine exits after its run: the banner already said so; it stays, no new bell.
        await until(pilot, lambda: app.session.engine is None, timeout=30)
        await pilot.pause(1.0)
        assert banner.display and "complete: all" in (banner.text or "")
        assert app.bells == 1
        await pilot.press("x")
        assert not banner.display
        await pilot.pause(1.0)  # ticks go on: a dismissed banner does not come back
        assert not banner.display


@pytest.mark.asyncio
async def test_an_incomplete_run_leaves_a_red_banner_and_the_bell_stays_off(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        banner = app.screen.query_one("#banner", Banner)
        # The demo's team_offense_game_summary writes 2 of 16 teams on 2024-01-20 (no
        # retries in these tests): the run ends incomplete.
        await start_run(pilot, app, "2024-01-20", "2024-01-20", phase="analytics")
        await until(pilot, lambda: banner.display, timeout=90)
        text = banner.text or ""
        bad = items(app, ItemState.FAILED) + items(app, ItemState.BLOCKED)
        assert items(app, ItemState.FAILED) >= 1
        assert f"finished incomplete: {bad} items failed or blocked" in text, text
        assert banner.has_class("-error")
        assert app.bells == 0
        await until(pilot, lambda: app.session.engine is None, timeout=30)
        await pilot.pause(0.5)
        assert banner.text == text  # still there once the engine has exited
        await pilot.click("#banner")  # a click dismisses it too
        assert not banner.display
        app._show_banner(text, error=True)  # the same news again: not shown again
        assert not banner.display
        app._show_banner("The engine stopped: disk full", error=True)
        assert banner.display and banner.text == "The engine stopped: disk full"
