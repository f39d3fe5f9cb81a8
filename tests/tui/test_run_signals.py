"""What the dashboard says about a run beyond its cells, through the app: the badge of a run a
crash left unfinished, the rate of a resumed run, when each phase ends, a rate-limit cooldown's
badge and what an incomplete attempt fell short by. Real engine processes, journal, SQLite
warehouse, Pilot."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from textual.widgets import Static

from core.config import load_config
from core.engine.api import ItemState
from core.progress import PhaseEnd
from core.state import Journal
from tests.helpers import span, write_config, write_tables
from tests.tui.drive import ROOT, until
from tests.tui.test_attach import backfill, detach, engine_pid
from tests.tui.test_known_empty import wait_engine_gone
from tui.app import BackfillApp
from tui.modals.confirm import ConfirmScreen
from tui.modals.quit import QuitScreen
from tui.widgets.coverage_heatmap import CoverageHeatmap
from tui.widgets.queue_table import QueueTable

WIDE = (220, 50)
JOB = ROOT / "tests" / "jobs" / "record.py"


def status_text(app: BackfillApp) -> str:
    return str(app.screen.query_one("#status").render())


def done_in_journal(config: Path, run_id: int) -> int:
    journal = Journal(config.parent / ".backfill")
    try:
        return sum(a.outcome == "ok" for a in journal.last_attempts(run_id).values())
    finally:
        journal.close()


@pytest.mark.asyncio
async def test_after_a_kill_9_a_new_dashboard_offers_the_run_and_its_rate_counts_only_the_resume(
    steady_demo: Path,
):
    run_id = detach(steady_demo, "2024-01-15", "2024-01-22")
    deadline = time.monotonic() + 120
    while done_in_journal(steady_demo, run_id) < 8:
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.3)
    pid = engine_pid(steady_demo)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_engine_gone(steady_demo, 30)
    done_before = done_in_journal(steady_demo, run_id)

    app = BackfillApp(load_config(steady_demo))
    async with app.run_test(size=WIDE) as pilot:
        badge = f"⚑ run #{run_id} unfinished: s resumes"
        await until(pilot, lambda: badge in status_text(app))
        assert app.session.engine is None
        await until(pilot, lambda: app.session.coverage is not None, 60)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(
            pilot,
            lambda: (
                app.session.engine is not None
                and app.session.snapshot is not None
                and app.session.snapshot.run_id == run_id
                and app.session.snapshot.state == "running"
            ),
            60,
        )
        first_seen = time.monotonic()  # the resumed engine's clock began before this
        await until(pilot, lambda: badge not in status_text(app))
        # Ten seconds on, the rate is this engine's finishes over its own time: the items done
        # before the kill would make it several times higher (the "358864/h" of a resume).
        await pilot.pause(10.0)
        snap = app.session.snapshot
        assert snap is not None and snap.run_id == run_id
        own = snap.count(ItemState.DONE) - done_before
        rate = snap.forecast.rate_per_hour
        if rate is not None:
            # The engine's snapshot is a forecast's second and a tick older than now, a few more
            # on a loaded machine: still far below what the items done before the kill make.
            elapsed = time.monotonic() - first_seen - 3.0
            assert rate <= max(own, 1) * 3600 / elapsed, (rate, own, done_before)
            assert f"{rate:.0f}/h" in status_text(app)
        else:
            assert own <= 0 and "--/h" in status_text(app)

        # On a phase's row the cursor line says when this run's share of that phase ends.
        def phases() -> tuple[PhaseEnd, ...]:
            snap = app.session.snapshot
            return () if snap is None else snap.forecast.phases

        await until(pilot, lambda: bool(phases()), 60)
        phase = phases()[-1].phase  # open until the run ends
        app.screen.query_one(CoverageHeatmap).move_to(key=f"phase:{phase}", day=date(2024, 1, 20))
        line = app.screen.query_one("#cell", Static)
        shows = f"{phase}: this run's share ends in"
        await until(pilot, lambda: str(line.render()).startswith(shows), 10)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), 5)
        await pilot.press("d")  # detach: the run goes on; the test waits for it below
    wait_engine_gone(steady_demo, 240)


#: a rate limit on one date (`_q` jobs print BigQuery's 403 rate-limit error on a fault) and a
#: processor that asks for more rows than its job writes
THROTTLED = f"""\
name: t
warehouse: {{kind: sqlite, path: wh}}
calendar: {{start: 2024-01-01, end: 2024-01-06}}
phases:
  - name: raw
    processors:
      - {{name: base, table: ds.base, date_column: d}}
  - name: work
    cooldown: 60s
    processors:
      - name: x_q
        table: ds.x_q
        date_column: d
        depends_on: [base]
        command: ["{sys.executable}", "{JOB}", x_q, "{{dates}}", "--sleep", "0.2"]
        retries: 2
        retry_backoff: 0.2s
  - name: short
    processors:
      - name: y
        table: ds.y
        date_column: d
        depends_on: [base]
        min_rows: 3
        retries: 0
        command: ["{sys.executable}", "{JOB}", y, "{{dates}}", "--sleep", "0.2"]
"""


@pytest.fixture
def throttled(tmp_path: Path, monkeypatch) -> Path:
    dates = span("2024-01-01", "2024-01-06")
    write_tables(tmp_path / "wh", {"ds.base": {d: 1 for d in dates}}, date_column="d")
    monkeypatch.setenv("WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("RECORD", str(tmp_path / "record.jsonl"))
    monkeypatch.setenv("FAULTS", "x_q:2024-01-02:fail-once")
    return write_config(tmp_path, THROTTLED)


@pytest.mark.asyncio
async def test_a_cooldown_stays_as_a_badge_and_a_short_attempt_says_by_how_much(throttled):
    detach(throttled, "2024-01-01", "2024-01-06", "--processor", "x_q", "--processor", "y")
    app = BackfillApp(load_config(throttled))
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: app.session.engine is not None)
        # The throttled attempt puts its phase in a 60 s cooldown: a badge for as long as it
        # lasts, naming the phase and when it ends (a toast went in 6 s).
        await until(pilot, lambda: "❄ cooling down: rate limit · work until" in status_text(app))
        await pilot.pause(7.0)
        assert "❄ cooling down: rate limit · work until" in status_text(app)

        # y writes one row a date where three are asked for: the queue row says so.
        queue = app.screen.query_one("#queue", QueueTable)

        def short_rows() -> list[str]:
            lines = [queue.render_line(y).text for y in range(queue.size.height)]
            return [line for line in lines if " y " in line and "1 of 3 rows" in line]

        await until(pilot, lambda: bool(short_rows()))
        assert "failed" in short_rows()[0]
        assert any(
            v.state is ItemState.FAILED and "(1 of 3 rows)" in (v.reason or "")
            for v in app.session.items.values()
            if v.processor == "y"
        )
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), 5)
        await pilot.press("d")
    backfill_stop(throttled)


def backfill_stop(config: Path) -> None:
    """The cooldown holds x_q's retry for a minute: stop the run rather than wait it out."""
    assert backfill(config, "stop", "--cancel-running").returncode == 0
    wait_engine_gone(config, 60)
