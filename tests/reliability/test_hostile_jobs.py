"""Jobs that misbehave on purpose, against the real engine: an attempt owns every process it
started, and after a crash only the attempt's own process is adopted.

Jobs are tests/jobs/record.py; their grandchildren carry this test's $RECORD in their argv, so a
test looks only at its own leftovers, and kills whatever of them survives, even when it fails.
Each leftover test runs twice: with a cgroup per attempt (where this machine allows one) and
with the tag scan of /proc that is used elsewhere (BACKFILL_CGROUPS=off).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from core.config import Config, load_config
from core.engine.api import CancelAll, ItemState, RunRequest
from core.engine.engine import Engine
from core.process import TAG_VAR, cgroups, start_ticks
from core.state import Journal
from core.warehouse import open_warehouse
from tests.helpers import day, invoke, span, write_config, write_tables

ROOT = Path(__file__).parents[2]
JOB = ROOT / "tests" / "jobs" / "record.py"
DATES = [d.isoformat() for d in span("2024-01-01", "2024-01-03")]
REQUEST = RunRequest(day(DATES[0]), day(DATES[-1]), processors=("x",))


def pipeline(*, stall: str, timeout: str, grace: str, retries: int) -> str:
    return f"""
name: hostile
warehouse: {{kind: sqlite, path: wh}}
calendar: {{start: {DATES[0]}, end: {DATES[-1]}}}
phases:
  - name: src
    processors:
      - {{name: base, table: ds.base, date_column: d}}
  - name: work
    max_parallel: 3
    processors:
      - name: x
        table: ds.x
        date_column: d
        depends_on: [base]
        command: ["{{python}}", "{JOB}", x, "{{dates}}"]
        retries: {retries}
        retry_backoff: 0.2s
        stall_timeout: {stall}
        kill_grace: {grace}
        timeout: {timeout}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["cgroup", "tag scan"])
def containment(request, monkeypatch) -> str:
    if request.param == "cgroup":
        group, why = cgroups.probe()
        if group is None:
            pytest.skip(f"no cgroup v2 for attempts here: {why}")
    else:
        monkeypatch.setenv(cgroups.SWITCH_VAR, "off")
    return str(request.param)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch) -> Iterator[Any]:
    """A factory of configs (faults, limits); afterwards ends this test's leftovers, if any."""
    record = tmp_path / "record.jsonl"

    def make(
        faults: str = "",
        *,
        stall: str = "30s",
        timeout: str = "60s",
        grace: str = "1s",
        retries: int = 0,
    ) -> Config:
        write_tables(tmp_path / "wh", {"ds.base": {day(d): 1 for d in DATES}}, date_column="d")
        monkeypatch.setenv("WAREHOUSE", str(tmp_path / "wh"))
        monkeypatch.setenv("RECORD", str(record))
        monkeypatch.setenv("FAULTS", faults)
        text = pipeline(stall=stall, timeout=timeout, grace=grace, retries=retries)
        return load_config(write_config(tmp_path, text))

    yield make
    for pid in leftovers():
        os.kill(pid, signal.SIGKILL)
    journal_path = tmp_path / ".backfill" / "journal.sqlite"
    if journal_path.exists():  # cgroups of attempts that a failing test left behind
        journal = Journal(journal_path.parent)
        for row in journal.conn.execute("SELECT id FROM attempts").fetchall():
            cgroups.remove(cgroups.existing(f"{row[0]}@{journal.path}"))
        journal.close()


def leftovers() -> list[int]:
    """Pids of this test's grandchildren still running (they carry $RECORD in their argv)."""
    found = subprocess.run(
        ["pgrep", "-f", "-x", f".* {os.environ['RECORD']}"], capture_output=True, text=True
    )
    return [int(p) for p in found.stdout.split()]


def records() -> list[dict[str, Any]]:
    path = Path(os.environ["RECORD"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def left_the_group(pid: int) -> bool:
    """It has called setsid(): it leads a group of its own."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return int(fields[2]) == pid


def engine(config: Config, events: list[str] | None = None) -> Engine:
    return Engine(
        config,
        open_warehouse(config),
        REQUEST,
        journal=Journal(config.state_path),
        on_event=lambda event: None if events is None else events.append(event.message),
    )


def item_of(eng: Engine, date_text: str):
    assert eng.store is not None
    return next(i for i in eng.store.items.values() if day(date_text) in i.dates)


async def until(condition, limit: float = 20.0) -> None:
    with anyio.fail_after(limit):
        while not condition():
            await anyio.sleep(0.05)


# -- an attempt owns every process it started -----------------------------------------------


@pytest.mark.anyio
async def test_a_setsid_escapee_is_ended_after_a_stall_kill_and_the_item_stays_failed(
    setup, containment
):
    config = setup("x:2024-01-02:setsid-escapee", stall="1s", retries=1)
    events: list[str] = []
    eng = engine(config, events)
    result = await eng.run()

    escapees = [r["escapee"] for r in records() if r["kind"] == "escapee"]
    assert len(escapees) == 2  # one per attempt: 1 + 1 retry
    assert not any(running(pid) for pid in escapees)
    assert leftovers() == []
    # Ended before the warehouse was re-read: they never wrote, so nothing looks complete.
    assert not any(r["kind"] == "escapee-wrote" for r in records())
    assert not result.complete and result.incomplete == [("x", day("2024-01-02"))]
    item = item_of(eng, "2024-01-02")
    assert item.state is ItemState.FAILED
    attempts = eng.journal.attempts_of_item(item.id)
    assert [(a.reason, a.outcome, a.leftovers) for a in attempts] == [("stall", "failed", 1)] * 2
    assert item.reason == "killed: stall · ended 1 leftover process"
    assert "FAILED x 2024-01-02: killed: stall · ended 1 leftover process (no retries left)" in (
        events
    )
    assert any("ended 1 process left by the attempt" in line for line in attempts[-1].tail)


@pytest.mark.anyio
async def test_a_job_that_forks_three_and_exits_0_has_them_ended_and_says_so(
    setup, containment, capsys
):
    config = setup("x:2024-01-03:fork-and-exit")
    events: list[str] = []
    result = await engine(config, events).run()

    assert result.complete
    (forked,) = [r["grandchildren"] for r in records() if r["kind"] == "forked"]
    assert len(forked) == 3 and not any(running(pid) for pid in forked)
    assert leftovers() == []
    journal = Journal(config.state_path)
    (attempt,) = journal.attempts_for_cell("x", day("2024-01-03"))
    assert (attempt.exit_code, attempt.outcome, attempt.leftovers) == (0, "ok", 3)
    others = [a for d in DATES[:2] for a in journal.attempts_for_cell("x", day(d))]
    assert [a.leftovers for a in others] == [0, 0]
    (done,) = [m for m in events if m.startswith("done x 2024-01-03 in ")]
    assert done.endswith("(attempt 1) · ended 3 leftover processes")
    code, _, err = invoke(["logs", "x", "2024-01-03", "--config", str(config.path)], capsys)
    assert code == 0 and "ok · exit 0 (exit) · ended 3 leftover processes · " in err


@pytest.mark.anyio
async def test_leftovers_of_a_cancelled_attempt_are_ended(setup, containment):
    config = setup("x:2024-01-01:setsid-escapee")
    eng = engine(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(eng.run)
        await until(lambda: any(r["kind"] == "escapee" for r in records()))
        (escapee,) = [r["escapee"] for r in records() if r["kind"] == "escapee"]
        await until(lambda: left_the_group(escapee))  # else the group's kill would reach it
        await eng.submit(CancelAll())
    assert not running(escapee) and leftovers() == []
    assert not any(r["kind"] == "escapee-wrote" for r in records())
    item = item_of(eng, "2024-01-01")
    (attempt,) = eng.journal.attempts_of_item(item.id)
    assert (attempt.reason, attempt.outcome, attempt.leftovers) == ("cancelled", "cancelled", 1)
    assert item.state is ItemState.CANCELLED


@pytest.mark.anyio
async def test_leftovers_of_a_timed_out_attempt_are_ended(setup, containment):
    config = setup("x:2024-01-01:setsid-escapee", timeout="1.5s")
    result = await engine(config).run()
    (escapee,) = [r["escapee"] for r in records() if r["kind"] == "escapee"]
    assert not running(escapee) and leftovers() == []
    assert not any(r["kind"] == "escapee-wrote" for r in records())
    assert not result.complete
    (attempt,) = Journal(config.state_path).attempts_for_cell("x", day("2024-01-01"))
    assert (attempt.reason, attempt.outcome, attempt.leftovers) == ("timeout", "failed", 1)


# -- adoption proves identity ---------------------------------------------------------------


def crashed_run(config: Config, running_date: str) -> tuple[Journal, int, int]:
    """The journal a crashed engine leaves: run 1 planned, x on `running_date` running with an
    open attempt whose pid is yet to be journaled. Returns (journal, item id, attempt id)."""
    journal = Journal(config.state_path)
    works = [("x", "work", [day(d)]) for d in DATES]
    run_id, ids = journal.start_run_with_items(REQUEST.start, REQUEST.end, REQUEST.key(), works)
    item_id = ids[DATES.index(running_date)]
    journal.set_item_state(run_id, item_id, "running", None)
    log = config.state_path / "logs" / "crashed.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("x starting\n")
    attempt = journal.start_attempt(item_id, 1, ["x"], log)
    return journal, item_id, attempt.id


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process, leading its own group as an attempt would: no tag in its env."""
    env = {k: v for k, v in os.environ.items() if k != TAG_VAR}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], env=env, start_new_session=True
    )
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.anyio
@pytest.mark.parametrize("journaled_start", ["another start time", "none (an old journal)"])
async def test_a_pid_reused_by_a_stranger_is_not_adopted_and_the_stranger_survives(
    setup, victim, journaled_start
):
    config = setup(stall="1s", grace="0.5s")
    journal, item_id, attempt_id = crashed_run(config, "2024-01-02")
    ticks = start_ticks(victim.pid)
    assert ticks is not None
    # The attempt's process ended while no engine ran, and the OS gave its pid to the victim.
    stale = ticks - 100 if journaled_start == "another start time" else None
    journal.attempt_launched(attempt_id, victim.pid, victim.pid, time.time() - 60, stale)

    resumed = time.monotonic()
    eng = engine(config)
    result = await eng.run()

    assert result.complete  # the attempt was re-run instead
    attempts = eng.journal.attempts_of_item(item_id)
    assert [(a.reason, a.outcome) for a in attempts] == [
        ("interrupted", "interrupted"),
        ("exit", "ok"),
    ]
    why = "now belongs to another process"
    assert why in attempts[0].tail[0]
    assert f"pid {victim.pid}" in attempts[0].tail[0]
    kinds = [(k, e) for _, _, k, e in eng.journal.events(1) if k.startswith("attempt_")]
    assert [k for k, _ in kinds] == ["attempt_not_adopted"] and why in kinds[0][1]["why"]
    starts = [r for r in records() if r["kind"] == "start" and "2024-01-02" in r["dates"]]
    assert len(starts) == 1  # re-run, once
    # Had it been adopted, its silent log would have been a stall at once, killed within 1.5 s.
    await anyio.sleep(max(0.0, resumed + 3.0 - time.monotonic()))
    assert victim.poll() is None and running(victim.pid)


@pytest.mark.anyio
async def test_a_genuine_attempt_is_still_adopted(setup):
    config = setup(stall="30s")
    journal, item_id, attempt_id = crashed_run(config, "2024-01-02")
    log = config.state_path / "logs" / "crashed.log"
    tag = f"{attempt_id}@{journal.path}"
    with open(log, "ab") as out:  # started by the engine that crashed: tagged, its own group
        job = subprocess.Popen(
            [sys.executable, str(JOB), "x", "2024-01-02", "--sleep", "1.5"],
            env={**os.environ, TAG_VAR: tag},
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        await until(lambda: any(r["kind"] == "start" for r in records()))
        ticks = start_ticks(job.pid)
        journal.attempt_launched(attempt_id, job.pid, job.pid, time.time(), ticks)

        eng = engine(config)
        result = await eng.run()
    finally:
        job.wait(timeout=30)

    assert result.complete
    (attempt,) = eng.journal.attempts_of_item(item_id)  # watched to its end, not re-run
    assert (attempt.reason, attempt.outcome, attempt.start_ticks) == ("exit", "ok", ticks)
    adopted = [e for _, _, k, e in eng.journal.events(1) if k == "attempt_adopted"]
    assert [(e["pid"], e["alive"]) for e in adopted] == [(job.pid, True)]
    starts = [r for r in records() if r["kind"] == "start" and "2024-01-02" in r["dates"]]
    assert len(starts) == 1
