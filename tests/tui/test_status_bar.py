"""The status bar: one line at every width, what matters kept when the width runs out."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from rich.cells import cell_len
from textual.app import App, ComposeResult

from core.config import load_config
from core.engine.api import EngineSnapshot, ItemState, PauseView, RunRequest
from core.progress import Forecast
from tui.widgets.status_bar import StatusBar, pause_badges

CONFIG = load_config(Path(__file__).parents[2] / "backfill.yaml")

BUSY = EngineSnapshot(
    version=7,
    state="running",
    run_id=12,
    request=RunRequest(date(2021, 10, 19), date(2024, 11, 29)),
    counts={ItemState.DONE: 1234, ItemState.RUNNING: 5, ItemState.PENDING: 4321},
    concurrency={"raw": (0, 0), "analytics": (5, 5), "precompute": (0, 1)},
    forecast=Forecast(
        "running",
        rate_per_hour=187.0,
        eta_seconds=23 * 3600 + 20 * 60,
        eta_low=23 * 3600 + 5 * 60,
        eta_high=23 * 3600 + 40 * 60,
    ),
)
FAILING = replace(BUSY, counts={**BUSY.counts, ItemState.FAILED: 3})
ENGINE = "engine 48211@backfill-host-01 since 09:12 · 2 other dashboards"


class StatusApp(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar(CONFIG, read_only=True, id="status")


def fill(status: StatusBar, snapshot: EngineSnapshot = BUSY) -> None:
    """Everything the dashboard ever puts on the line at once."""
    status.show(
        snapshot,
        refreshing=True,
        coverage_note="cached 09:53:52",
        scan_cost="a refresh scans 1.2 GB",
        engine=ENGINE,
    )


def shown(status: StatusBar) -> str:
    return str(status.render())


@pytest.mark.asyncio
@pytest.mark.parametrize("width", [80, 100, 160])
async def test_one_line_at_every_width_with_the_marks_that_change_what_keys_do(width: int):
    app = StatusApp()
    async with app.run_test(size=(width, 10)) as pilot:
        status = app.query_one(StatusBar)
        fill(status, FAILING)
        status.set_badge("unfinished", "⚑ run #11 unfinished")
        await pilot.pause()
        assert status.region.height == 1
        text = shown(status)
        assert cell_len(text) <= status.content_size.width
        done = f"1234/{FAILING.total}"
        for part in ("● running", "READ-ONLY", "⚑ run #11 unfinished", done, "3 failed"):
            assert part in text, (width, text)


@pytest.mark.asyncio
async def test_low_priority_parts_go_first_and_come_back_with_the_width():
    app = StatusApp()
    async with app.run_test(size=(320, 10)) as pilot:
        status = app.query_one(StatusBar)
        fill(status)
        await pilot.pause()
        wide = shown(status)
        for part in (
            ENGINE,
            "analytics 5/5",
            "a refresh scans 1.2 GB",
            "sqlite .backfill/warehouse",
        ):
            assert part in wide, wide
        assert "raw 0/0" not in wide  # a phase of sources has nothing to run

        await pilot.resize_terminal(80, 10)
        await pilot.pause()
        narrow = shown(status)
        assert "a refresh scans" not in narrow and "analytics 5/5" not in narrow
        assert "ETA 23h" in narrow  # progress outranks where the data lives
        assert "⟳" in narrow  # a refresh in progress stays visible, if only as a mark

        await pilot.resize_terminal(320, 10)
        await pilot.pause()
        assert shown(status) == wide


@pytest.mark.asyncio
async def test_badges_stay_until_cleared_and_text_is_drawn_literally():
    app = StatusApp()
    async with app.run_test(size=(100, 10)) as pilot:
        status = app.query_one(StatusBar)
        fill(status)
        status.set_badge("cooldown", "❄ analytics cooling [bold]5m\x1b[2J")
        await pilot.pause()
        assert "❄ analytics cooling [bold]5m[2J" in shown(status)
        status.show(BUSY)  # a new snapshot leaves the badges alone
        assert "❄ analytics" in shown(status)
        status.set_badge("cooldown", None)
        assert "❄" not in shown(status)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("forecast", "says"),
    [
        (Forecast("paused"), "paused: no ETA"),
        (Forecast("measuring"), "ETA measuring"),
        (Forecast("stalled", rate_per_hour=40.0, stalled_for=20 * 60), "stalled: nothing finished"),
    ],
)
async def test_the_eta_says_paused_measuring_or_stalled_when_that_is_the_truth(
    forecast: Forecast, says: str
):
    app = StatusApp()
    async with app.run_test(size=(100, 10)) as pilot:
        status = app.query_one(StatusBar)
        status.show(replace(BUSY, forecast=forecast))
        await pilot.pause()
        text = shown(status)
        assert says in text, text
        assert "ETA 0s" not in text and "ETA 23h" not in text


@pytest.mark.asyncio
async def test_a_daily_quota_pause_and_a_cooldown_are_badges_that_stay_at_80_columns():
    until = time.time() + 15 * 60
    pauses = (
        PauseView("precompute", ("player_daily_cache",), "daily", until, "Quota exceeded: ..."),
        PauseView("analytics", ("player_game_summary",), "rate", until - 600, "Exceeded rate"),
    )
    badges = pause_badges(pauses)
    daily, cooldown = badges["daily"], badges["cooldown"]
    assert daily is not None and cooldown is not None
    hhmm = time.strftime("%H:%M", time.localtime(until))
    assert daily[0] == f"⏸ paused: daily quota · precompute until {hhmm}"
    assert cooldown[0].startswith("❄ cooling down: rate limit · analytics until ")
    assert pause_badges(()) == {"daily": None, "cooldown": None}

    app = StatusApp()
    async with app.run_test(size=(80, 10)) as pilot:
        status = app.query_one(StatusBar)
        fill(status, FAILING)
        for key, badge in badges.items():
            assert badge is not None
            status.set_badge(key, *badge)
        await pilot.pause()
        text = shown(status)
        assert "paused: daily quota" in text and status.region.height == 1, text
