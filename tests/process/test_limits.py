"""Limits the attempt enforces on itself: timeout, stall, and SIGKILL after the grace period."""

from __future__ import annotations

import time

import anyio
import pytest

from core import process
from tests.process.support import (
    IGNORES_SIGTERM,
    SPAWNS_GRANDCHILDREN,
    grandchildren,
    py,
    running,
    spec,
    wait_for_file,
)


@pytest.mark.anyio
async def test_timeout_kills_the_job_and_its_grandchildren(tmp_path):
    pid_file = tmp_path / "pids"
    attempt = await process.start(
        spec(tmp_path, py(SPAWNS_GRANDCHILDREN, str(pid_file)), timeout=1.5, grace=2.0)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt.wait)
        pids = await grandchildren(pid_file)
    outcome = attempt.outcome
    assert outcome is not None
    assert (outcome.reason, outcome.exit_code, outcome.ok) == ("timeout", 143, False)
    assert 1.5 <= outcome.duration < 4
    assert not any(running(p) for p in [*pids, attempt.launched.pid])
    assert "[backfill] timed out after 1.5s; killing process group" in outcome.tail[-1]


@pytest.mark.anyio
async def test_a_job_ignoring_sigterm_is_killed_after_grace(tmp_path):
    attempt = await process.start(spec(tmp_path, py(IGNORES_SIGTERM), grace=0.3))
    await wait_for_file(attempt.launched.log_path, "ready")
    began = time.monotonic()
    await attempt.cancel()
    assert 0.3 <= time.monotonic() - began < 3
    assert not running(attempt.launched.pid)
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("cancelled", 137)
    assert "SIGKILLed" in outcome.tail[-1]


@pytest.mark.anyio
async def test_a_silent_job_is_killed_as_stalled(tmp_path):
    job = py("import time; print('hello', flush=True); time.sleep(300)")
    attempt = await process.start(spec(tmp_path, job, stall_timeout=0.8))
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("stall", 143)
    assert 0.8 <= outcome.duration < 3
    assert outcome.tail[0] == "hello"
    assert outcome.tail[-1].startswith("[backfill] stalled: no output for 0.8s; killing process")


@pytest.mark.anyio
async def test_a_slow_but_steady_job_is_not_a_stall(tmp_path):
    job = py(
        """
        import time
        for i in range(12):
            print(f"tick {i}", flush=True)
            time.sleep(0.15)
        """
    )
    attempt = await process.start(spec(tmp_path, job, stall_timeout=0.6))
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    assert outcome.duration > 1.5  # well past the stall timeout
    assert outcome.tail[-1] == "tick 11"
