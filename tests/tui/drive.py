"""Driving the dashboard with Pilot, and the engine processes it starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from core.engine.api import ItemState
from core.state import EngineLock
from tui.app import BackfillApp
from tui.modals.start_run import StartRunScreen

ROOT = Path(__file__).parents[2]
SIZE = (140, 45)


def headless_run(
    config: Path, start: str, end: str, *args: str, faults: bool
) -> subprocess.CompletedProcess[str]:
    """`backfill run START END --headless ARGS` on the demo, its injected faults on or off: a
    journal and a warehouse the dashboard then opens on."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "core",
            "run",
            start,
            end,
            "--headless",
            *args,
            "--config",
            str(config),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "BACKFILL_DEMO_FAULTS": "1" if faults else "0"},
    )


def stop_engine(config: Path) -> None:
    """Stop the state_dir's engine, if one lives, and wait until it has exited."""
    state = config.parent / ".backfill"
    if (state / "engine.sock").exists():
        subprocess.run(
            [sys.executable, "-m", "core", "stop", "--cancel-running", "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
    deadline = time.monotonic() + 60
    while EngineLock(state).owner() is not None:
        assert time.monotonic() < deadline, "the engine did not stop"
        time.sleep(0.1)


async def until(pilot, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    waited = 0.0
    while not condition():
        assert waited < timeout, "condition not met in time"
        await pilot.pause(0.1)
        waited += 0.1


async def start_run(
    pilot, app: BackfillApp, start: str, end: str, phase: str | None = None, *, enter: bool = False
) -> None:
    await pilot.press("s")
    await until(pilot, lambda: isinstance(app.screen, StartRunScreen))
    screen = app.screen
    screen.query_one("#start", Input).value = start
    screen.query_one("#end", Input).value = end
    if phase:
        screen.query_one("#phase", Select).value = phase
    await until(pilot, lambda: not screen.query_one("#go").disabled)
    if enter:
        screen.query_one("#end").focus()
        await pilot.press("enter")
    else:
        await pilot.click("#go")
    await until(pilot, lambda: app.session.engine is not None)


def running_pids(app: BackfillApp) -> list[int]:
    """Pids of attempts running now, as journaled (an item is RUNNING a moment before its
    process exists)."""
    snap = app.session.snapshot
    if snap is None or snap.run_id is None:
        return []
    return [a.pid for a in app.session.journal.open_attempts(snap.run_id) if a.pid]


def items(app: BackfillApp, state: ItemState) -> int:
    """Items in that state, as the dashboard shows them."""
    snap = app.session.snapshot
    return 0 if snap is None else snap.count(state)


def run_state(app: BackfillApp) -> str | None:
    snap = app.session.snapshot
    return None if snap is None else snap.state


def run_start(app: BackfillApp) -> date | None:
    """The first date of the run the dashboard shows."""
    snap = app.session.snapshot
    return None if snap is None else snap.request.start


def fault_free(demo: Path, monkeypatch: pytest.MonkeyPatch, seconds_per_date: int) -> Path:
    """The demo with jobs that take `seconds_per_date`, no injected faults, and a stall
    timeout those delays cannot reach."""
    monkeypatch.setenv("BACKFILL_DEMO_DELAY", str(seconds_per_date))
    monkeypatch.setenv("BACKFILL_DEMO_FAULTS", "0")
    demo.write_text(demo.read_text().replace("stall_timeout: 6s", "stall_timeout: 60s"))
    return demo
