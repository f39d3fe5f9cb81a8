"""Cancellation: by cancel(), by cancelling the waiting task, by someone else; and detaching."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import anyio
import pytest

from core import process
from core.process import groups
from tests.process.support import (
    HAVE_PROC,
    IGNORES_SIGTERM,
    SPAWNS_GRANDCHILDREN,
    grandchildren,
    py,
    running,
    spec,
    wait_for_file,
)


@pytest.mark.anyio
async def test_cancel_kills_the_whole_group(tmp_path):
    pid_file = tmp_path / "pids"
    attempt = await process.start(spec(tmp_path, py(SPAWNS_GRANDCHILDREN, str(pid_file))))
    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt.wait)
        pids = await grandchildren(pid_file)
        await attempt.cancel()
        assert not any(running(p) for p in [*pids, attempt.launched.pid])
    outcome = attempt.outcome
    assert outcome is not None
    assert (outcome.reason, outcome.exit_code, outcome.ok) == ("cancelled", 143, False)
    assert outcome.tail[-1].startswith("[backfill] cancelled; killing process group")


@pytest.mark.anyio
async def test_cancelling_the_waiting_task_kills_the_group(tmp_path):
    pid_file = tmp_path / "pids"
    attempt = await process.start(spec(tmp_path, py(SPAWNS_GRANDCHILDREN, str(pid_file))))
    pids = await grandchildren(pid_file)
    with anyio.move_on_after(0.2):
        await attempt.wait()
    assert not any(running(p) for p in [*pids, attempt.launched.pid])
    outcome = await attempt.wait()
    assert outcome.reason == "cancelled"
    assert "the engine stopped waiting" in outcome.tail[-1]


@pytest.mark.anyio
async def test_our_own_attempt_killed_by_someone_else_reports_the_signal(tmp_path):
    attempt = await process.start(spec(tmp_path, ["sleep", "30"]))
    await anyio.sleep(0.05)
    os.killpg(attempt.launched.pgid, signal.SIGKILL)
    outcome = await attempt.wait()
    # As a shell reports it: 128 + 9. An OOM kill reads the same, and operators know 137.
    assert (outcome.reason, outcome.exit_code, outcome.ok) == ("exit", 137, False)


@pytest.mark.anyio
async def test_a_timeout_kill_completes_even_if_the_waiter_is_cancelled_mid_grace(tmp_path):
    attempt = await process.start(spec(tmp_path, py(IGNORES_SIGTERM), timeout=1.0, grace=0.6))
    await wait_for_file(attempt.launched.log_path, "ready")
    # Lands between SIGTERM (at 1 s) and SIGKILL (at 1.6 s).
    with anyio.move_on_after(attempt.launched.started_at + 1.3 - time.time()):
        await attempt.wait()
    assert not process.alive(attempt.launched)
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("timeout", 137)
    assert outcome.tail[-1].endswith("outlived SIGTERM by 0.6s; SIGKILLed")


@pytest.mark.anyio
async def test_attempts_cancelled_together_all_end_within_one_grace(tmp_path):
    # What the engine does on "cancel all": if kills queued behind each other, three jobs that
    # ignore SIGTERM would take three grace periods.
    grace = 1.0
    attempts = [
        await process.start(
            spec(tmp_path, py(IGNORES_SIGTERM), log_path=tmp_path / f"{n}.log", grace=grace)
        )
        for n in range(3)
    ]
    for attempt in attempts:
        await wait_for_file(attempt.launched.log_path, "ready")

    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        for attempt in attempts:
            tg.start_soon(attempt.cancel)
    elapsed = time.monotonic() - began

    assert grace <= elapsed < 2 * grace
    for attempt in attempts:
        pid = attempt.launched.pid
        assert not running(pid)
        if HAVE_PROC:
            assert not Path(f"/proc/{pid}").exists()  # reaped by cancel(), not left a zombie
        outcome = await attempt.wait()
        assert (outcome.reason, outcome.exit_code) == ("cancelled", 137)


@pytest.mark.anyio
@pytest.mark.skipif(not HAVE_PROC, reason="the /proc scan only runs where there is a /proc")
async def test_the_proc_scan_while_killing_runs_off_the_event_loop(tmp_path, monkeypatch) -> None:
    scanned_in: list[threading.Thread] = []
    scan = groups.scan_group

    def recording_scan(pgid: int) -> bool:
        scanned_in.append(threading.current_thread())
        return scan(pgid)

    monkeypatch.setattr(groups, "scan_group", recording_scan)
    attempt = await process.start(spec(tmp_path, py(IGNORES_SIGTERM), grace=0.3))
    await wait_for_file(attempt.launched.log_path, "ready")
    await attempt.cancel()
    assert scanned_in  # the group outlived SIGTERM, so it was scanned while we waited
    assert threading.current_thread() not in scanned_in
    await attempt.wait()  # as the engine does: what the attempt left (its cgroup) goes too
