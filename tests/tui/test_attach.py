"""A run outlives its dashboard: the engine as a process that dashboards and the CLI attach to.

Everything here is real: `backfill run --detach` starts an engine process, dashboards (Pilot)
and `backfill pause` reach it through its socket, and `kill -9` kills it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from core.config import load_config
from core.engine.api import ItemState, Pause, Who
from core.service.client import RemoteEngine
from core.service.protocol import decode, encode
from core.state import EngineLock, Journal
from tests.tui.drive import ROOT, SIZE, items, run_state, running_pids, until
from tui.app import BackfillApp
from tui.modals.confirm import ConfirmScreen

CLI = [sys.executable, "-m", "core"]


def backfill(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def detach(config: Path, start: str, end: str, *extra: str) -> int:
    """`backfill run --detach`: the run id it printed."""
    done = backfill(config, "run", start, end, "--detach", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is running in the background: engine pid" in done.stdout
    return int(done.stdout.split("Run #")[1].split()[0])


def engine_pid(config: Path) -> int | None:
    return EngineLock(config.parent / ".backfill").owner()


def run_status(config: Path) -> str | None:
    row = Journal(config.parent / ".backfill").unfinished_run()
    return None if row is None else row.status


STARTER = """
import signal, sys
# A terminal's program: SIGHUP kills it (a parent under nohup would hand it down ignored).
signal.signal(signal.SIGHUP, signal.SIG_DFL)
from core.config import load_config
from tui.app import BackfillApp
from tests.tui.drive import start_run, until

async def main():
    app = BackfillApp(load_config(sys.argv[1]))
    async with app.run_test(size=(140, 45)) as pilot:
        await until(pilot, lambda: app.session.grid is not None, timeout=60)
        await start_run(pilot, app, "2024-01-15", "2024-01-17")
        print("STARTED", app.session.engine.info.pid, flush=True)
        await pilot.pause(600)

import asyncio
asyncio.run(main())
"""


def test_a_run_started_from_a_dashboard_goes_on_after_the_dashboard_gets_sighup(steady_demo):
    dashboard = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(steady_demo)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: SIGHUP it as a closed terminal would
    )
    assert dashboard.stdout is not None
    line = dashboard.stdout.readline()
    assert line.startswith("STARTED"), line
    pid = int(line.split()[1])
    os.killpg(dashboard.pid, signal.SIGHUP)
    dashboard.wait(timeout=30)
    assert dashboard.returncode != 0  # the dashboard died of it ...
    assert engine_pid(steady_demo) == pid  # ... the engine did not
    deadline = time.monotonic() + 240
    while engine_pid(steady_demo) is not None:
        assert time.monotonic() < deadline, "the detached run never ended"
        time.sleep(0.5)
    runs = Journal(steady_demo.parent / ".backfill").runs()
    assert runs[0].status == "finished"  # it ended complete, with nobody watching


@pytest.mark.asyncio
async def test_two_dashboards_see_the_same_run_and_a_cli_pause_shows_in_both(steady_demo):
    run_id = detach(steady_demo, "2024-01-15", "2024-01-20")
    first, second = BackfillApp(load_config(steady_demo)), BackfillApp(load_config(steady_demo))
    async with first.run_test(size=SIZE) as one, second.run_test(size=SIZE) as two:
        for pilot, app in ((one, first), (two, second)):
            await until(pilot, lambda app=app: items(app, ItemState.RUNNING) > 0)
            assert app.session.snapshot.run_id == run_id

        def states(app: BackfillApp) -> dict[int, ItemState]:
            return {i: v.state for i, v in app.session.items.items()}

        # Within a second of each other they show the same items in the same states.
        await until(one, lambda: states(first) == states(second) and bool(states(first)), 5)
        status = second.screen.query_one("#status")
        await until(two, lambda: "1 other dashboard" in str(status.render()))

        paused = backfill(steady_demo, "pause", "--json")
        assert paused.returncode == 0, paused.stderr
        assert json.loads(paused.stdout)["ok"] is True
        await until(one, lambda: run_state(first) == "paused", 1.5)
        await until(two, lambda: run_state(second) == "paused", 1.5)
        assert "paused" in str(first.screen.query_one("#status").render())
        journal = Journal(steady_demo.parent / ".backfill")
        started = len(journal.last_attempts(run_id))
        await one.pause(2.5)
        assert len(journal.last_attempts(run_id)) == started  # nothing new started
        events = [e for _, _, kind, e in journal.events(run_id) if kind == "operator_pause"]
        assert events and "(cli)" in events[-1]["who"]
        assert backfill(steady_demo, "resume").returncode == 0


@pytest.mark.asyncio
async def test_a_read_only_dashboard_sees_everything_and_changes_nothing(steady_demo):
    detach(steady_demo, "2024-01-15", "2024-01-20")
    app = BackfillApp(load_config(steady_demo), read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: items(app, ItemState.RUNNING) > 0)
        app.screen.query_one("#queue").focus()
        for key in ("P", "c", "C", "plus", "minus", "r"):
            await pilot.press(key)
        await pilot.pause(1.0)
        assert run_state(app) == "running"
        assert not isinstance(app.screen, ConfirmScreen)
        # The engine refuses it too, whatever a read-only client sends.
        engine = await RemoteEngine.connect(
            steady_demo.parent / ".backfill", Who.me("dashboard"), read_only=True
        )
        reply = await engine.submit(Pause())
        await engine.aclose()
        assert not reply.ok and "read-only" in reply.message
        await pilot.pause(0.5)
        assert run_state(app) == "running"
        await pilot.press("q")  # quits at once: a read-only dashboard has nothing to stop


@pytest.mark.asyncio
async def test_kill_9_of_the_engine_shows_a_banner_and_the_resume_adopts_running_attempts(
    steady_demo,
):
    run_id = detach(steady_demo, "2024-01-15", "2024-01-20")
    app = BackfillApp(load_config(steady_demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: items(app, ItemState.DONE) > 0 and bool(running_pids(app)))
        running = running_pids(app)
        pid = app.session.engine.info.pid
        os.kill(pid, signal.SIGKILL)
        banner = app.screen.query_one("#banner")
        # Shown without a restart of anything; how fast is not for a unit test on a loaded CI
        # machine to judge (it took 2-3 s at load 13 here).
        await until(pilot, lambda: banner.display, 30.0)
        text = str(banner.render())
        assert "The engine is gone" in text and f"run #{run_id}" in text and "s resumes" in text
        assert backfill(steady_demo, "pause").returncode == 3  # no engine: exit 3
        status = json.loads(backfill(steady_demo, "status", "--json").stdout)["run"]
        assert (status["id"], status["pid"], status["state"]) == (run_id, None, "stopped")

        await pilot.press("s")  # the dashboard offers to resume that very run
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: app.session.engine is not None, 60)
        assert app.session.engine.info.pid != pid
        # The new engine's first snapshot may not be in yet.
        await until(pilot, lambda: getattr(app.session.snapshot, "run_id", None) == run_id)
        await until(pilot, lambda: engine_pid(steady_demo) is None, 240)
    journal = Journal(steady_demo.parent / ".backfill")
    assert journal.runs()[0].id == run_id and journal.runs()[0].status == "finished"
    adopted = [e for _, _, kind, e in journal.events(run_id) if kind == "attempt_adopted"]
    assert {e["pid"] for e in adopted} >= {p for p in running if p in {e["pid"] for e in adopted}}
    assert adopted, "the resumed engine adopted the attempts the dead one left running"
    # Nothing done was run again: one successful attempt per item, at most.
    for attempts in (journal.attempts_of_item(i) for i in journal.last_attempts(run_id)):
        assert sum(a.outcome == "ok" for a in attempts) <= 1


def test_the_socket_is_the_owners_and_speaks_one_protocol(steady_demo):
    detach(steady_demo, "2024-01-15", "2024-01-16")
    path = steady_demo.parent / ".backfill" / "engine.sock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(path))
        raw.sendall(encode({"hello": {"protocol": 99, "who": {}}}))
        answer = decode(raw.makefile("rb").readline())
    assert "protocol 1" in answer["refused"] and "99" in answer["refused"]


def test_a_stale_socket_of_a_dead_engine_never_blocks_a_new_one(steady_demo):
    state = steady_demo.parent / ".backfill"
    state.mkdir(exist_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(state / "engine.sock"))  # bound, never listening: what a dead engine leaves
    stale.close()
    refused = backfill(steady_demo, "pause")
    assert refused.returncode == 3 and "no engine is running" in refused.stderr
    run_id = detach(steady_demo, "2024-01-15", "2024-01-16")
    assert backfill(steady_demo, "pause").returncode == 0
    assert Journal(state).unfinished_run().id == run_id


def test_control_commands_answer_within_a_second_and_say_what_happened(steady_demo):
    detach(steady_demo, "2024-01-15", "2024-01-20")
    for args, words in [
        (("pause",), "Paused"),
        (("parallel", "analytics", "2"), "analytics: up to 2 at once"),
        (("retry", "--processor", "player_game_summary"), "No failed items"),
        (("resume",), "Resumed"),
    ]:
        began = time.monotonic()
        done = backfill(steady_demo, *args)
        assert done.returncode == 0, done.stderr
        assert words in done.stdout
        # A hang guard, not a speed target (that is benchmarks/control_latency.py): a loaded
        # 2-core machine took 7 s for a Python start-up here.
        assert time.monotonic() - began < 20.0
    assert backfill(steady_demo, "parallel", "nope", "2").returncode == 2
    assert backfill(steady_demo, "cancel", "999999").returncode == 2
    status = backfill(steady_demo, "status")
    assert status.stdout.startswith("Run #") and "engine pid" in status.stdout
    stopped = backfill(steady_demo, "stop", "--cancel-running", "--json")
    assert json.loads(stopped.stdout)["ok"] is True
    deadline = time.monotonic() + 60
    while engine_pid(steady_demo) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert Journal(steady_demo.parent / ".backfill").runs()[0].status == "stopped"


def test_no_engine_means_exit_3_and_one_line(demo):
    done = backfill(demo, "resume")
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "no engine is running" in done.stderr
    anyio.run(anyio.sleep, 0)
