"""A dashboard that fails never takes the run with it: the engine is another process, the
error goes to a private report and one line."""

from __future__ import annotations

import stat

import pytest

from core.config import load_config
from core.state import EngineLock, Journal
from tests.tui.drive import SIZE, start_run, until
from tui.app import BackfillApp


class Boom(RuntimeError):
    pass


def _fail() -> None:
    raise Boom("a bug in a key handler")


@pytest.mark.asyncio
async def test_an_error_in_the_dashboard_leaves_the_run_running_and_writes_a_report(slow_demo):
    state = slow_demo.parent / ".backfill"
    app = BackfillApp(load_config(slow_demo))
    with pytest.raises(Boom):
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.session.grid is not None, timeout=60)
            await start_run(pilot, app, "2024-01-15", "2024-01-17")
            await until(pilot, lambda: app.session.engine is not None)
            engine = app.session.engine
            assert engine is not None
            pid = engine.info.pid
            app.call_later(_fail)
            await pilot.pause(5)
    assert app.crash is not None and "\n" not in app.crash
    assert "Boom: a bug in a key handler" in app.crash
    report = next((state / "crash-reports").iterdir())
    assert str(report) in app.crash
    assert "raise Boom" in report.read_text()  # the traceback is in the report
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert EngineLock(state).owner() == pid  # the engine lives on ...
    run = Journal(state).unfinished_run()
    assert run is not None and run.status == "running"  # ... and so does its run
