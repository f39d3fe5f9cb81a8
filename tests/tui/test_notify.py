"""The dashboard's view of notifications: each channel's health from the journal the engine
wrote (a real headless run to real HTTP receivers), and a test message per channel sent off the
UI loop, with each outcome shown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Static, TabbedContent

from core.config import load_config
from tests.receiver import receiving
from tests.tui.drive import SIZE, headless_run, until
from tests.tui.test_app import plain
from tui.app import BackfillApp
from tui.modals.command_line import CommandLineScreen
from tui.modals.help import HelpScreen
from tui.widgets.notify_pane import SENDING, NotifyPane
from tui.widgets.status_bar import StatusBar

WINDOW = ("2024-01-15", "2024-01-16")


def channels(**hooks: str) -> str:
    out = "\nnotify:\n"
    for name, spec in hooks.items():
        out += f"  - {{name: {name}, {spec}}}\n"
    return out


def toasts(app: BackfillApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pytest.mark.asyncio
async def test_the_dashboard_shows_channel_health_and_sends_a_test_on_each(demo: Path):
    base = demo.read_text()
    with receiving() as ok, receiving(status=500) as sick, receiving(hang=True) as hung:
        # The engine's run: every message to `sick` fails, so it ends unhealthy in the journal.
        demo.write_text(
            base + channels(ok=f"webhook: '{ok.url}'", sick=f"webhook: '{sick.url}', retries: 0")
        )
        ran = headless_run(demo, *WINDOW, "--phase", "analytics", faults=False)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "run_finished" in ok.events()
        engine_bodies = len(ok.bodies)
        # The dashboard's config has a third channel, whose receiver never answers.
        demo.write_text(
            base
            + channels(
                ok=f"webhook: '{ok.url}'",
                sick=f"webhook: '{sick.url}', retries: 0",
                hung=f"webhook: '{hung.url}', timeout: 4s",
            )
        )
        app = BackfillApp(load_config(demo))
        async with app.run_test(size=SIZE) as pilot:
            pane = app.screen.query_one(NotifyPane)
            status = app.screen.query_one(StatusBar)
            await until(pilot, lambda: not pane.health("sick").healthy)
            assert pane.health("sick").last_error == "HTTP 500 Internal Server Error: nope"
            assert pane.health("ok").healthy and pane.health("ok").sent == engine_bodies
            assert pane.health("hung").sent == 0  # not a channel of that run
            assert pane.unhealthy == ["sick"]
            await until(pilot, lambda: "notify: 1 unhealthy" in status.render().plain)
            row = pane.get_row("sick")
            assert [str(c) for c in row[:2]] == ["sick", "UNHEALTHY"]
            assert str(row[-1]) == "HTTP 500 Internal Server Error: nope"

            await pilot.press("n")
            await until(pilot, lambda: pane.tests["ok"] == "delivered", timeout=10)
            assert app.screen.query_one("#side", TabbedContent).active == "notify-tab"
            assert pane.tests["sick"] == "failed: HTTP 500 Internal Server Error: nope"
            # The hung channel is still sending, and the dashboard answers keys meanwhile.
            assert pane.tests["hung"] == SENDING
            began = time.monotonic()
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), timeout=2)
            assert time.monotonic() - began < 2.0
            assert pane.tests["hung"] == SENDING
            keys = plain(app.screen.query_one("#help-keys", Static))
            assert "Send a test message on every notify channel" in keys
            assert ":notify test" in keys
            palette = [c.title for c in app.get_system_commands(app.screen)]
            assert {"Test notify", "Dismiss banner", "Bell on/off"} <= set(palette)
            await pilot.press("escape")
            await until(pilot, lambda: pane.tests["hung"] != SENDING, timeout=15)
            assert (
                pane.tests["hung"]
                == f"failed: {hung.url.removesuffix('/hook')} did not answer within 4s"
            )
            assert ok.bodies[-1]["event"] == "test"
            assert ok.bodies[-1]["message"].startswith("backfill test message to channel ok")
            # The toast follows the last channel's outcome by a loop turn or more: wait for it.
            await until(pilot, lambda: any(t.startswith("ok: delivered") for t in toasts(app)))
            said = next(t for t in toasts(app) if t.startswith("ok: delivered"))
            assert "sick: failed: HTTP 500" in said and "hung: failed: http" in said

            # The same from the command line.
            await pilot.press("colon")
            await until(pilot, lambda: isinstance(app.screen, CommandLineScreen))
            await pilot.press(*"notify test", "enter")
            await until(pilot, lambda: len(ok.bodies) == engine_bodies + 2, timeout=10)
            assert ok.bodies[-1]["event"] == "test"
            await pilot.press("q")


@pytest.mark.asyncio
async def test_without_channels_the_pane_says_so_and_a_test_sends_nothing(demo: Path):
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        pane = app.screen.query_one(NotifyPane)
        assert "no notify: channels" in str(pane.get_row_at(0)[1])
        await pilot.press("n")
        await until(pilot, lambda: any("nothing to test" in t for t in toasts(app)))
        assert "notify:" not in app.screen.query_one(StatusBar).render().plain
