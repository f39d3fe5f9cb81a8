"""The `:` command language: what each command parses to, partial dates, completion, errors."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from core.config import load_config
from tests.tui.drive import SIZE, until
from tui.app import BackfillApp
from tui.command_line import CommandError, Parsed, complete, parse, parse_when
from tui.modals.command_line import CommandLineScreen
from tui.modals.quit import QuitScreen
from tui.screens.failures import FailuresScreen
from tui.screens.runs import RunsScreen
from tui.widgets.coverage_heatmap import CoverageHeatmap

CONFIG = load_config(Path(__file__).parents[2] / "backfill.yaml")


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("2024-01-15", (date(2024, 1, 15), date(2024, 1, 15))),
        ("2024-01", (date(2024, 1, 1), date(2024, 1, 31))),
        ("jan 2024", (date(2024, 1, 1), date(2024, 1, 31))),
        ("February 2024", (date(2024, 2, 1), date(2024, 2, 29))),
        ("2024 feb", (date(2024, 2, 1), date(2024, 2, 29))),
        ("2023", (date(2023, 1, 1), date(2023, 12, 31))),
        ("2024-02-30", None),
        ("2024-13", None),
        ("soon", None),
    ],
)
def test_partial_dates_name_the_days_they_cover(text: str, span: tuple[date, date] | None):
    assert parse_when(text) == span


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("run 2024-01-15 2024-01-28", Parsed("run", (date(2024, 1, 15), date(2024, 1, 28)))),
        ("run jan 2024", Parsed("run", (date(2024, 1, 1), date(2024, 1, 31)))),
        ("run dec 2023 jan 2024", Parsed("run", (date(2023, 12, 1), date(2024, 1, 31)))),
        ("retry failed", Parsed("retry")),
        ("  PAUSE ", Parsed("pause")),
        ("parallel precompute 3", Parsed("parallel", ("precompute", 3))),
        ("goto jan 2024", Parsed("goto", (date(2024, 1, 1),))),
        ("goto player_daily", Parsed("goto", ("player_daily_cache",))),
        ("quit", Parsed("q")),
        ("failures", Parsed("failures")),
        ("notify test", Parsed("notify_test")),
    ],
)
def test_commands_parse_to_what_the_dashboard_runs(text: str, parsed: Parsed):
    assert parse(text, CONFIG) == parsed


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "type a command"),
        ("rnu 2024-01-01", "no command 'rnu'"),
        ("run 2024-01-28 2024-01-15", "before it starts"),
        ("run tomorrow", "usage: run START [END]"),
        ("parallel raw 2", "raw has no jobs to run"),
        ("parallel nowhere 2", "no phase 'nowhere'"),
        ("parallel precompute many", "usage: parallel PHASE N"),
        ("goto player", "several processors"),
        ("pause now", "pause takes nothing"),
        ("notify", "usage: notify test"),
        ("notify all", "usage: notify test"),
    ],
)
def test_a_wrong_command_says_what_is_wrong(text: str, says: str):
    with pytest.raises(CommandError, match=re.escape(says)):
        parse(text, CONFIG)


def test_completion_fills_the_last_word_or_its_common_start():
    assert complete("fa", CONFIG) == "failures "
    assert complete("r", CONFIG) is None  # run, retry, resume, report: nothing in common to add
    assert complete("res", CONFIG) == "resume "
    assert complete("pa", CONFIG) is None  # pause, parallel
    assert complete("par", CONFIG) == "parallel "
    assert complete("parallel pre", CONFIG) == "parallel precompute "
    assert complete("retry f", CONFIG) == "retry failed "
    assert complete("goto player_da", CONFIG) == "goto player_daily_cache "
    assert complete("no", CONFIG) == "notify "
    assert complete("notify t", CONFIG) == "notify test "
    assert complete("zzz", CONFIG) is None


@pytest.mark.asyncio
async def test_colon_completes_runs_goto_and_keeps_a_wrong_command_with_its_error(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        heatmap = app.screen.query_one(CoverageHeatmap)

        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, CommandLineScreen))
        prompt = app.screen.query_one(Input)
        await pilot.press("g", "o", "t", "tab")  # tab completes the command's name
        assert prompt.value == "goto "
        await pilot.press(*"mar 2023", "enter")  # a partial date: the month's first day
        await until(pilot, lambda: not isinstance(app.screen, CommandLineScreen))
        cell = heatmap.cursor_cell()
        assert cell is not None and cell[1] <= date(2023, 3, 1) <= cell[2]

        await pilot.press("colon", *"parallel raw 2", "enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, CommandLineScreen)  # refused, still there to fix
        hint = app.screen.query_one("#command-hint", Static)
        assert "raw has no jobs to run" in str(hint.render()) and hint.has_class("-error")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, CommandLineScreen))

        await pilot.press("colon", *"failures", "enter")
        await until(pilot, lambda: isinstance(app.screen, FailuresScreen))


@pytest.mark.asyncio
async def test_colon_runs_run_pause_resume_and_q_do_what_their_keys_do(slow_demo: Path):
    app = BackfillApp(load_config(slow_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        await pilot.press("colon", *"runs", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RunsScreen))

        await pilot.press("colon", *"run 2024-01-15 2024-01-22", "enter")
        await until(pilot, lambda: state(app) in ("running", "measuring"), timeout=60)
        await pilot.press("colon", *"pause", "enter")
        await until(pilot, lambda: state(app) == "paused")
        await pilot.press("colon", *"resume", "enter")
        await until(pilot, lambda: state(app) == "running")

        await pilot.press("colon", *"q", "enter")  # a run is on: q asks, as the key does
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("escape")  # stay
        await until(pilot, lambda: not isinstance(app.screen, QuitScreen))
        assert app.is_running and state(app) == "running"


def state(app: BackfillApp) -> str | None:
    snap = app.session.snapshot
    return None if snap is None else snap.state
