"""The engine against real processes and a real SQLite warehouse.

Jobs are tests/jobs/record.py: each start and end is recorded with a timestamp, so concurrency
and ordering are read from what really happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from core.config import Config, load_config
from core.engine.api import (
    CancelAll,
    EngineEvent,
    ItemState,
    Pause,
    Retry,
    RunRequest,
    SetConcurrency,
    Stop,
)
from core.engine.engine import Engine
from core.state import EngineLock, Journal
from core.warehouse import open_warehouse
from core.warehouse.sqlite import SqliteWarehouse
from tests.helpers import day, invoke, span, write_config, write_tables

ROOT = Path(__file__).parents[2]
JOB = ROOT / "tests" / "jobs" / "record.py"
DATES = [d.isoformat() for d in span("2024-01-01", "2024-01-06")]


def pipeline(job_args: str = "", stall: str = "2s", grace: str = "10s") -> str:
    def proc(name: str, deps: str) -> str:
        return f"""
      - name: {name}
        table: ds.{name}
        date_column: d
        depends_on: [{deps}]
        command: ["{{python}}", "{JOB}", {name}, "{{dates}}"{job_args}]
        retries: 2
        retry_backoff: 0.2s
        stall_timeout: {stall}
        kill_grace: {grace}
        timeout: 60s"""

    return f"""
name: engine-test
warehouse: {{kind: sqlite, path: wh}}
calendar: {{start: 2024-01-01, end: 2024-01-06}}
phases:
  - name: src
    processors:
      - {{name: base, table: ds.base, date_column: d}}
  - name: wide
    max_parallel: 3
    cooldown: 1s
    processors:{proc("x", "base")}{proc("y_q", "x")}
  - name: narrow
    max_parallel: 1
    processors:{proc("z", "y_q")}{proc("w", "y_q")}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch):
    """Returns a factory: (faults, base dates, job args, stall timeout) -> loaded config."""

    def make(
        faults: str = "",
        base: list[str] = DATES,
        job_args: str = "",
        stall: str = "2s",
        grace: str = "10s",
    ) -> Config:
        write_tables(tmp_path / "wh", {"ds.base": {day(d): 1 for d in base}}, date_column="d")
        monkeypatch.setenv("WAREHOUSE", str(tmp_path / "wh"))
        monkeypatch.setenv("RECORD", str(tmp_path / "record.jsonl"))
        monkeypatch.setenv("FAULTS", faults)
        return load_config(write_config(tmp_path, pipeline(job_args, stall, grace)))

    return make


def leftovers() -> bytes:
    """Pids of this test's hung grandchildren still alive (record.py's `hang` sleepers)."""
    pattern = "time.sleep\\(600\\) " + os.environ["RECORD"]
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout


def records(config: Config) -> list[dict[str, Any]]:
    path = Path(os.environ["RECORD"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def run_engine(config: Config, on_event=None, **request) -> tuple[Engine, object]:
    journal = Journal(config.state_path)
    engine = Engine(
        config,
        open_warehouse(config),
        RunRequest(day("2024-01-01"), day("2024-01-06"), **request),
        journal=journal,
        on_event=on_event or (lambda event: None),
    )
    result = await engine.run()
    return engine, result


def intervals(recs: list[dict[str, Any]], names: set[str]) -> list[tuple[float, float, str, str]]:
    starts: dict[tuple[str, int], dict[str, Any]] = {}
    out: list[tuple[float, float, str, str]] = []
    for r in recs:
        if r["name"] not in names:
            continue
        if r["kind"] == "start":
            starts[r["name"], r["pid"]] = r
        else:
            s = starts.pop((r["name"], r["pid"]))
            out.extend((s["at"], r["at"], r["name"], d) for d in r["dates"])
    return out


def max_overlap(spans: list[tuple[float, float, str, str]]) -> int:
    edges = sorted([(s, 1) for s, *_ in spans] + [(e, -1) for _, e, *_ in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.anyio
async def test_concurrency_limits_and_dependency_order(setup):
    config = setup(job_args=', "--sleep", "0.4"')
    engine, result = await run_engine(config)
    assert result.complete
    recs = records(config)
    wide = intervals(recs, {"x", "y_q"})
    narrow = intervals(recs, {"z", "w"})
    assert max_overlap(wide) == 3  # max_parallel 3 reached
    assert max_overlap(narrow) == 1  # max_parallel 1 never overlaps
    ends = {(name, d): e for _, e, name, d in wide + narrow}
    starts = {(name, d): s for s, _, name, d in wide + narrow}
    deps = {"y_q": "x", "z": "y_q", "w": "y_q"}
    for (name, d), started in starts.items():
        if name in deps:
            assert started >= ends[deps[name], d], f"{name} {d} started before {deps[name]}"
    assert all(i.state is ItemState.DONE for i in engine.store.items.values())


@pytest.mark.anyio
async def test_exit_zero_with_rows_missing_is_retried_until_complete(setup):
    config = setup(faults="x:2024-01-03:empty-once")
    events: list[EngineEvent] = []
    engine, result = await run_engine(config, events.append, processors=("x",))
    assert result.complete
    item = next(i for i in engine.store.items.values() if day("2024-01-03") in i.dates)
    attempts = engine.journal.attempts_of_item(item.id)
    assert [a.outcome for a in attempts] == ["incomplete", "ok"]
    # the reason says what fell short, not only that something did
    said = [e.message for e in events if "incomplete on" in e.message]
    assert said and "incomplete on 2024-01-03 (0 of 1 rows)" in said[0], said
    assert [r["kind"] for r in records(config) if "2024-01-03" in r["dates"]] == [
        "start",
        "end",
        "start",
        "end",
    ]


@pytest.mark.anyio
async def test_a_warehouse_outage_while_verifying_delays_the_verdict_but_never_the_run(setup):
    config = setup(faults="x:2024-01-02:outage-once")
    events = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(bring_back_after, config.warehouse_path, 2.0)
        engine, result = await run_engine(config, on_event=events.append, processors=("x",))
    assert result.complete
    retried = [e.message for e in events if e.kind == "verify_failed"]
    mine = [m for m in retried if "re-reading x 2024-01-02 failed" in m]
    assert mine and "warehouse folder" in mine[0]  # it was away
    item = next(i for i in engine.store.items.values() if day("2024-01-02") in i.dates)
    assert [a.outcome for a in engine.journal.attempts_of_item(item.id)] == ["ok"]  # once


async def bring_back_after(warehouse: Path, seconds: float) -> None:
    """The end of the outage record.py's `outage-once` starts by moving the warehouse away."""
    away = warehouse.with_name(warehouse.name + ".away")
    with anyio.fail_after(30):
        while not away.exists():
            await anyio.sleep(0.02)
    await anyio.sleep(seconds)
    away.rename(warehouse)


class SlowToVerifyTheFirstDay(SqliteWarehouse):
    """The real warehouse; re-reading 2024-01-01 on its own takes 2 s the first time."""

    slowed = False

    def rows_per_date(self, scans, start, end, **kwargs):
        if start == end == day("2024-01-01") and not self.slowed:
            self.slowed = True
            time.sleep(2)
        return super().rows_per_date(scans, start, end, **kwargs)


@pytest.mark.anyio
async def test_an_attempt_being_verified_gives_its_slot_to_the_next(setup):
    config = setup()
    warehouse = SlowToVerifyTheFirstDay(config.warehouse_path)
    engine = Engine(
        config,
        warehouse,
        RunRequest(day("2024-01-01"), day("2024-01-06"), processors=("x",)),
        journal=Journal(config.state_path),
    )
    await engine.submit(SetConcurrency("wide", 1))
    result = await engine.run()
    assert result.complete and warehouse.slowed
    assert max_overlap(intervals(records(config), {"x"})) == 1  # one job at a time, still
    first, second = (
        engine.journal.attempts_of_item(i.id)[0]
        for i in sorted(engine.store.items.values(), key=lambda i: i.dates)[:2]
    )
    assert first.outcome == "ok" and first.ended_at is not None
    assert second.started_at < first.ended_at - 1  # started while the first was verified


@pytest.mark.anyio
async def test_throttling_cools_the_phase_down_and_the_retry_succeeds(setup):
    config = setup(faults="y_q:2024-01-02:fail-once")
    engine, result = await run_engine(config, phases=("wide",))
    assert result.complete
    kinds = [kind for _, _, kind, _ in engine.journal.events(engine.run_id)]
    assert "cooldown" in kinds
    item = next(
        i
        for i in engine.store.items.values()
        if i.processor.name == "y_q" and day("2024-01-02") in i.dates
    )
    outcomes = [a.outcome for a in engine.journal.attempts_of_item(item.id)]
    assert outcomes == ["failed", "ok"]
    assert "403 Exceeded rate limits" in "\n".join(engine.journal.attempts_of_item(item.id)[0].tail)


@pytest.mark.anyio
async def test_a_hang_is_killed_by_stall_timeout_with_its_grandchildren(setup):
    config = setup(faults="x:2024-01-02:hang")
    engine, result = await run_engine(config, processors=("x",))
    assert not result.complete
    assert ("x", day("2024-01-02")) in result.incomplete
    item = next(i for i in engine.store.items.values() if day("2024-01-02") in i.dates)
    attempts = engine.journal.attempts_of_item(item.id)
    assert {a.reason for a in attempts} == {"stall"} and len(attempts) == 3  # 1 + 2 retries
    assert item.state is ItemState.FAILED
    assert leftovers() == b""


@pytest.mark.anyio
async def test_a_source_gap_blocks_downstream_and_the_run_ends_not_complete(setup):
    config = setup(base=[d for d in DATES if d != "2024-01-04"])
    _, result = await run_engine(config)
    assert not result.complete
    assert {name for name, d in result.incomplete} == {"x", "y_q", "z", "w"}
    assert all(d == day("2024-01-04") for _, d in result.incomplete)
    ran = {d for r in records(config) for d in r["dates"]}
    assert "2024-01-04" not in ran


@pytest.mark.anyio
async def test_cancel_all_leaves_no_process_behind(setup):
    config = setup(faults="x:2024-01-01:hang,x:2024-01-02:hang")
    journal = Journal(config.state_path)
    engine = Engine(
        config,
        open_warehouse(config),
        RunRequest(day("2024-01-01"), day("2024-01-06"), processors=("x",)),
        journal=journal,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(10):
            while engine.snapshot().count(ItemState.RUNNING) < 2:
                await anyio.sleep(0.1)
        pids = [h.launched.pid for h in engine.attempts.handles.values()]
        await engine.submit(CancelAll())
    assert pids and all(not Path(f"/proc/{pid}").exists() for pid in pids)
    assert leftovers() == b""
    assert {i.state for i in engine.store.items.values()} <= {ItemState.CANCELLED, ItemState.DONE}


@pytest.mark.anyio
async def test_retry_failed_reruns_only_the_failed_cells(setup):
    config = setup(faults="x:2024-01-02:fail")
    engine = Engine(
        config,
        open_warehouse(config),
        RunRequest(day("2024-01-01"), day("2024-01-06"), processors=("x",)),
        journal=Journal(config.state_path),
        linger=True,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(20):
            while (
                engine.snapshot().count(ItemState.FAILED),
                engine.snapshot().count(ItemState.DONE),
            ) != (1, 5):
                await anyio.sleep(0.05)
        before = Counter(d for r in records(config) if r["kind"] == "start" for d in r["dates"])
        assert before["2024-01-02"] == 3  # 1 + 2 retries
        os.environ["FAULTS"] = ""
        assert (await engine.submit(Retry())).count == 1
        with anyio.fail_after(20):
            while engine.snapshot().count(ItemState.DONE) < 6:
                await anyio.sleep(0.05)
        await engine.submit(Stop())
    after = Counter(d for r in records(config) if r["kind"] == "start" for d in r["dates"])
    assert after - before == Counter({"2024-01-02": 1})  # healthy siblings never re-run


def test_a_second_engine_is_refused_naming_the_owner(tmp_path):
    first = EngineLock(tmp_path)
    first.acquire()
    from core.errors import UserError

    with pytest.raises(UserError, match=f"another engine \\(pid {os.getpid()}\\) owns"):
        EngineLock(tmp_path).acquire()
    first.release()
    EngineLock(tmp_path).acquire()  # free again once the owner lets go


def test_kill_9_of_the_engine_then_a_second_run_completes_without_rerunning(setup, tmp_path):
    config = setup(job_args=', "--sleep", "0.6"')
    args = [
        sys.executable,
        "-m",
        "core",
        "run",
        "2024-01-01",
        "2024-01-06",
        "--headless",
        "--config",
        str(config.path),
    ]
    engine = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        recs = records(config)
        if sum(r["kind"] == "end" for r in recs) >= 4 and any(
            r["kind"] == "start"
            and not any(e["kind"] == "end" and e["pid"] == r["pid"] for e in recs)
            for r in recs
        ):
            break  # some items done and at least one attempt in flight
        time.sleep(0.05)
    engine.send_signal(signal.SIGKILL)
    engine.wait()
    second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Resuming run #1" in second.stdout
    starts = Counter(
        (r["name"], d) for r in records(config) if r["kind"] == "start" for d in r["dates"]
    )
    assert set(starts) == {(n, d) for n in ("x", "y_q", "z", "w") for d in DATES}
    assert max(starts.values()) == 1  # adopted, never started twice
    journal = Journal(config.state_path)
    assert any(kind == "attempt_adopted" for _, _, kind, _ in journal.events(1))


# The real CLI, in an engine that dies (SIGKILL) the moment it would journal a pid: the first
# attempt runs on, known to the journal only as started.
DIES_BEFORE_JOURNALING_A_PID = """
import os, runpy, signal, sys
from core.state import Journal
Journal.attempt_launched = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
sys.argv[0] = "backfill"
runpy.run_module("core", run_name="__main__")
"""


def test_an_attempt_spawned_but_never_journaled_is_adopted_not_rerun(setup):
    config = setup(job_args=', "--sleep", "3"', stall="30s")
    args = ["run", "2024-01-01", "2024-01-06", "--headless", "--processor", "x"]
    args += ["--config", str(config.path)]
    first = subprocess.run(
        [sys.executable, "-c", DIES_BEFORE_JOURNALING_A_PID, *args],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert first.returncode == -signal.SIGKILL
    journal = Journal(config.state_path)
    unjournaled = [a for a in journal.open_attempts(1) if a.pid is None]
    assert unjournaled  # the state this test is about
    deadline = time.time() + 10
    while not records(config) and time.time() < deadline:
        time.sleep(0.05)
    assert [r["kind"] for r in records(config)] == ["start"]  # and one of them really runs

    second = subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert second.returncode == 0, second.stdout + second.stderr
    starts = Counter(d for r in records(config) if r["kind"] == "start" for d in r["dates"])
    assert starts == Counter(DATES)  # the orphan was adopted, not started a second time
    adopted = [e for _, _, kind, e in journal.events(1) if kind == "attempt_adopted"]
    assert [(e["alive"], e["pid"]) for e in adopted] == [(True, records(config)[0]["pid"])]


def test_logs_prints_the_attempt_that_covered_a_date(setup, capsys):
    config = setup(faults="x:2024-01-03:fail-once")
    code, out, err = invoke(
        [
            "run",
            "2024-01-01",
            "2024-01-06",
            "--headless",
            "--processor",
            "x",
            "--config",
            str(config.path),
        ],
        capsys,
    )
    assert code == 0, out + err
    code, out, err = invoke(
        ["logs", "x", "2024-01-03", "--attempt", "1", "--config", str(config.path)], capsys
    )
    assert code == 0 and "boom on 2024-01-03" in out
    assert "attempt 1 of 2" in err and "failed" in err
    assert " · local · " in err, err  # the executor that ran it (the only one for now)
    code, out, _ = invoke(["logs", "x", "2024-01-03", "--config", str(config.path)], capsys)
    assert "x done" in out and "boom" not in out


def test_status_counts_cells_whose_last_attempt_failed(setup, capsys):
    config = setup(faults="x:2024-01-05:fail")
    code, _, _ = invoke(
        [
            "run",
            "2024-01-01",
            "2024-01-06",
            "--headless",
            "--processor",
            "x",
            "--config",
            str(config.path),
        ],
        capsys,
    )
    assert code == 1
    code, out, _ = invoke(["status", "--json", "--config", str(config.path)], capsys)
    x = next(p for ph in json.loads(out)["phases"] for p in ph["processors"] if p["name"] == "x")
    assert (x["complete"], x["failed"], x["missing"]) == (5, 1, 0)


def _start_headless(config: Config, *extra: str) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        "-m",
        "core",
        "run",
        "2024-01-01",
        "2024-01-06",
        "--headless",
        "--config",
        str(config.path),
        *extra,
    ]
    return subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for_starts(config: Config, count: int) -> None:
    deadline = time.time() + 20
    while sum(r["kind"] == "start" for r in records(config)) < count:
        assert time.time() < deadline, "jobs never started"
        time.sleep(0.05)


def test_ctrl_c_once_stops_dispatching_and_waits_for_running_attempts(setup):
    config = setup(job_args=', "--sleep", "1.5"')
    engine = _start_headless(config, "--processor", "x")
    _wait_for_starts(config, 3)
    engine.send_signal(signal.SIGINT)
    out, _ = engine.communicate(timeout=30)
    recs = records(config)
    assert engine.returncode == 1  # not every targeted cell is complete
    assert "Stopping: no new work; waiting for 3 running attempts" in out
    assert sum(r["kind"] == "start" for r in recs) == 3  # nothing new after Ctrl-C
    assert sum(r["kind"] == "end" for r in recs) == 3  # the running ones were let finish


def test_ctrl_c_twice_cancels_running_attempts(setup):
    config = setup(faults=",".join(f"x:{d}:hang" for d in DATES))
    engine = _start_headless(config, "--processor", "x")
    _wait_for_starts(config, 3)
    engine.send_signal(signal.SIGINT)
    time.sleep(0.3)
    engine.send_signal(signal.SIGINT)
    out, _ = engine.communicate(timeout=30)
    assert engine.returncode == 1
    assert "Cancelling 3 running attempts" in out
    assert leftovers() == b""
    assert not any(r["kind"] == "end" for r in records(config))


@pytest.mark.anyio
async def test_concurrency_can_change_while_running(setup):
    config = setup(job_args=', "--sleep", "0.5"')
    engine = Engine(
        config,
        open_warehouse(config),
        RunRequest(day("2024-01-01"), day("2024-01-06"), processors=("x",)),
        journal=Journal(config.state_path),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        await anyio.sleep(0.1)
        await engine.submit(SetConcurrency("wide", 1))
    wide = intervals(records(config), {"x"})
    late = [s for s in wide if s[0] > wide[0][1]]  # started after the first one ended
    assert late and max_overlap(late) == 1


def test_the_journal_keeps_the_last_coverage_for_an_instant_start(setup):
    from core.coverage import measure
    from core.status import status_report, to_json

    config = setup()
    coverage = measure(config, open_warehouse(config), day("2024-01-01"), day("2024-01-06"))
    journal = Journal(config.state_path)
    assert journal.load_coverage(config) is None
    journal.save_coverage(coverage)
    again = journal.load_coverage(config)
    first, second = to_json(status_report(coverage)), to_json(status_report(again))
    assert first == second


def _engine(config: Config, *, linger: bool = False, **request) -> Engine:
    return Engine(
        config,
        open_warehouse(config),
        RunRequest(day("2024-01-01"), day("2024-01-06"), **request),
        journal=Journal(config.state_path),
        linger=linger,
    )


async def _until(condition, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_cancel_all_ends_sigterm_ignoring_jobs_within_one_grace(setup):
    config = setup(faults=",".join(f"x:{d}:stubborn" for d in DATES[:3]), grace="1.5s")
    engine = _engine(config, processors=("x",))
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        await _until(lambda: engine.attempts is not None and len(engine.attempts.handles) == 3)
        await anyio.sleep(0.5)  # each has printed and ignores SIGTERM by now
        pids = [h.launched.pid for h in engine.attempts.handles.values()]
        began = time.monotonic()
        await engine.submit(CancelAll())
        took = time.monotonic() - began
    assert 1.5 <= took < 3.0  # the three graces ran together, not one after another (4.5 s)
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.anyio
async def test_an_operator_retry_gives_retries_back_in_the_journal_too(setup):
    config = setup(faults="x:2024-01-02:fail")
    engine = _engine(config, linger=True, processors=("x",))
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        await _until(lambda: engine.snapshot().count(ItemState.FAILED) == 1)
        failed = next(i for i in engine.store.items.values() if i.state is ItemState.FAILED)
        assert Journal(config.state_path).item(failed.id).attempts == 3
        await engine.submit(Pause())  # so the retry waits, as journaled, for us to look
        assert (await engine.submit(Retry())).count == 1
        # What the next engine would load after a crash: pending, every retry back.
        row = Journal(config.state_path).item(failed.id)
        assert (row.state, row.attempts, row.not_before) == ("pending", 0, 0.0)
        await engine.submit(Stop())
    kinds = [kind for _, _, kind, _ in engine.journal.events(engine.run_id)]
    assert {"operator_pause", "operator_retry", "operator_stop"} <= set(kinds)


@pytest.mark.anyio
async def test_reprocess_all_runs_every_date_even_complete_ones(setup):
    config = setup()
    _, first = await run_engine(config, processors=("x",))
    assert first.complete
    engine, again = await run_engine(config, processors=("x",), reprocess="all")
    assert again.complete
    starts = Counter(d for r in records(config) if r["kind"] == "start" for d in r["dates"])
    assert starts == Counter({d: 2 for d in DATES})
    assert not any(i.reason == "already complete" for i in engine.store.items.values())


@pytest.mark.anyio
async def test_a_permanent_warehouse_error_fails_the_verdict_instead_of_retrying_forever(setup):
    config = setup(faults="x:2024-01-03:break-table")
    with anyio.fail_after(60):
        engine, result = await run_engine(config, processors=("x",))
    assert not result.complete
    item = next(i for i in engine.store.items.values() if day("2024-01-03") in i.dates)
    assert item.state is ItemState.FAILED
    assert "verification failed" in item.reason and "no such column" in item.reason
    # Given up at once: a warehouse that answers "no such column" will not answer otherwise.
    assert len(engine.journal.attempts_of_item(item.id)) == 1


def test_headless_with_the_warehouse_gone_says_so_in_one_line(setup, capsys):
    import shutil

    config = setup()
    shutil.rmtree(config.warehouse_path)
    args = ["run", "2024-01-01", "2024-01-06", "--headless", "--ignore-preflight"]
    code, out, err = invoke([*args, "--config", str(config.path)], capsys)
    assert code == 2
    assert "Traceback" not in out + err and "ExceptionGroup" not in out + err
    lines = [line for line in out.splitlines() if line.startswith("backfill: ")]
    assert len(lines) == 1 and "warehouse folder" in lines[0] and "does not exist" in lines[0]


def test_the_progress_line_says_measuring_until_it_knows():
    from core.engine.api import EngineSnapshot
    from core.headless import summary_line
    from core.progress import Forecast

    request = RunRequest(day("2024-01-01"), day("2024-01-02"))
    snap = EngineSnapshot(0, "measuring", None, request, {}, {}, Forecast("measuring"))
    assert "measuring coverage" in summary_line(snap)
    assert "0/0" not in summary_line(snap)


def test_a_snapshot_comes_in_pages_oldest_changes_first_and_re_reads_once(setup):
    from core.coverage import measure
    from core.engine.snapshots import Snapshots
    from core.progress import Forecast
    from core.state.items import ItemStore

    config = setup()
    journal = Journal(config.state_path)
    works = [(p, config.phase_of(p).name, [day(d)]) for p in ("x", "y_q", "z", "w") for d in DATES]
    run_id, _ = journal.start_run_with_items(day(DATES[0]), day(DATES[-1]), {}, works)
    store = ItemStore(journal, config, run_id)
    store.load(journal.items(run_id), {})
    coverage = measure(config, open_warehouse(config), day(DATES[0]), day(DATES[-1]))
    snapshots = Snapshots()

    def snap(since: int, limit: int | None = None):
        return snapshots.snapshot(
            since, limit, state="running", request=RunRequest(day(DATES[0]), day(DATES[-1])),
            store=store, coverage=coverage, concurrency={}, forecast=lambda: Forecast("measuring"),
            error=None,
        )  # fmt: skip

    pages, since = [], 0
    while True:
        page = snap(since, 10)
        if not page.changed:
            break
        pages.append(page)
        since = page.version
    assert [len(p.changed) for p in pages] == [10, 10, 4]
    assert sorted(v.id for p in pages for v in p.changed) == sorted(store.items)
    assert [len(p.rereads) for p in pages] == [1, 0, 0]  # the whole coverage, on the first
    assert all(p.counts[ItemState.PENDING] == 24 for p in pages)  # the header is always whole
    item = store.items[min(store.items)]
    store.set_state(item, ItemState.DONE, reason=None)
    fresh = snap(since)
    assert [v.id for v in fresh.changed] == [item.id] and fresh.rereads == ()
    assert snap(fresh.version).changed == ()


def test_a_jobs_terminal_escapes_never_reach_the_operators_terminal(setup, capsys):
    import pty

    config = setup(faults="x:2024-01-02:escapes")
    args = ["run", "2024-01-01", "2024-01-06", "--headless", "--processor", "x"]
    code, out, err = invoke([*args, "--config", str(config.path)], capsys)
    assert code == 1
    failed = [line for line in out.splitlines() if "FAILED x 2024-01-02" in line]
    assert failed and "boom on 2024-01-02" in failed[0]
    assert "\x1b" not in out + err and "\x07" not in out + err
    row = Journal(config.state_path).attempts_for_cell("x", day("2024-01-02"))[-1]
    assert not any("\x1b" in line for line in row.tail)  # nor in the journal
    # `backfill logs` to a terminal: the text, not the job's escapes; piped: the bytes as written.
    leader, follower = pty.openpty()
    shown = subprocess.run(
        [sys.executable, "-m", "core", "logs", "x", "2024-01-02", "--config", str(config.path)],
        cwd=ROOT,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        timeout=30,
        check=True,
    )
    os.close(follower)
    seen = os.read(leader, 65536).decode()
    os.close(leader)
    assert shown.returncode == 0 and "boom on 2024-01-02" in seen and "\x1b" not in seen
    piped = subprocess.run(
        [sys.executable, "-m", "core", "logs", "x", "2024-01-02", "--config", str(config.path)],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert b"\x1b]2;PWNED-TITLE\x07" in piped.stdout
