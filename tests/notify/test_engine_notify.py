"""Notifications from a real headless run (real job processes, a real SQLite warehouse) to a
real HTTP receiver on 127.0.0.1, run through the command line in this process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import core.headless
from tests.engine.test_engine import DATES, ROOT, pipeline
from tests.helpers import day, invoke, write_config, write_tables
from tests.receiver import receiving

SECRET = "tok-3b1f9e77c2"


def notify_yaml(url: str, **keys: str) -> str:
    more = "".join(f"\n    {k}: {v}" for k, v in keys.items())
    return f"notify:\n  - name: hook\n    webhook: {url}{more}\n"


def make(folder: Path, monkeypatch, notify: str = "", faults: str = "") -> Path:
    folder.mkdir()
    write_tables(folder / "wh", {"ds.base": {day(d): 1 for d in DATES}}, date_column="d")
    monkeypatch.setenv("WAREHOUSE", str(folder / "wh"))
    monkeypatch.setenv("RECORD", str(folder / "record.jsonl"))
    monkeypatch.setenv("FAULTS", faults)
    return write_config(folder, notify + pipeline())


def run(config: Path, capsys, *extra: str) -> tuple[int, str]:
    code, out, err = invoke(
        ["run", "2024-01-01", "2024-01-06", "--headless", *extra, "--config", str(config)],
        capsys,
    )
    return code, out + err


def told(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bodies but milestones (a test about them looks at them alone)."""
    return [b for b in bodies if b["event"] != "milestone"]


def job_span(folder: Path) -> float:
    """Seconds from the first job's start to the last job's end: how long dispatch took."""
    recs = [json.loads(line) for line in (folder / "record.jsonl").read_text().splitlines()]
    times: list[float] = [r["at"] for r in recs]
    return max(times) - min(times)


def test_a_run_tells_its_start_each_cell_failed_for_good_and_its_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    with receiving() as rx:
        url = rx.url + "?token=${HOOK_TOKEN}"
        config = make(tmp_path / "a", monkeypatch, notify_yaml(url), "x:2024-01-03:fail")
        code, output = run(config, capsys)
    assert code == 1, output
    assert rx.paths[0] == f"/hook?token={SECRET}"  # expanded when sent
    by_event: dict[str, list[dict[str, Any]]] = {}
    for body in told(rx.bodies):
        by_event.setdefault(body["event"], []).append(body)
        assert set(body) >= {"event", "run_id", "message", "at"}
    assert list(by_event) == ["run_started", "cell_failed", "run_finished"], rx.events()
    run_id = by_event["run_started"][0]["run_id"]
    assert isinstance(run_id, int)
    (failed,) = by_event["cell_failed"]
    assert failed["run_id"] == run_id
    assert failed["processor"] == "x"
    assert failed["dates"] == ["2024-01-03"]
    assert "no retries left" in failed["message"]
    (finished,) = by_event["run_finished"]
    assert finished["run_id"] == run_id
    assert finished["complete"] is False
    # x and everything downstream of it on that date
    assert finished["cells_left"] == 4
    assert ["x", "2024-01-03"] in finished["cells"]

    # The secret went to the receiver and nowhere else: not the journal, not the output.
    state = config.parent / ".backfill"
    for path in state.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in output
    journal = b"".join(p.read_bytes() for p in state.glob("journal.sqlite*"))
    assert b"notify_sent" in journal


def test_a_complete_run_tells_its_milestones_and_says_complete(tmp_path, monkeypatch, capsys):
    events = "[milestone, run_finished]"
    with receiving() as rx:
        config = make(tmp_path / "a", monkeypatch, notify_yaml(rx.url, events=events))
        code, output = run(config, capsys)
    assert code == 0, output
    assert rx.events() == ["milestone"] * 3 + ["run_finished"]
    assert [(b["percent"], b["total"]) for b in rx.bodies[:3]] == [(25, 24), (50, 24), (75, 24)]
    assert [b["done"] for b in rx.bodies[:3]] == [6, 12, 18]
    assert rx.bodies[-1]["complete"] is True


def test_a_hanging_receiver_never_delays_dispatch(tmp_path, monkeypatch, capsys):
    # Baseline: the same run without notify.
    config = make(tmp_path / "plain", monkeypatch)
    began = time.monotonic()
    assert run(config, capsys)[0] == 0
    plain_wall = time.monotonic() - began
    plain_span = job_span(tmp_path / "plain")

    monkeypatch.setattr(core.headless, "NOTIFY_FLUSH_S", 2.0)
    with receiving(hang=True) as rx:
        # The receiver accepts, reads, and answers nothing for 60 s; the channel waits 60 s.
        config = make(tmp_path / "hung", monkeypatch, notify_yaml(rx.url, timeout="60s"))
        began = time.monotonic()
        code, output = run(config, capsys)
        hung_wall = time.monotonic() - began
        assert rx.paths, "the receiver never got a request"
    assert code == 0, output
    # Generous guards, not speed claims: dispatch is as quick as without notify, and the exit
    # waits for the hung channel no longer than the flush bound.
    assert job_span(tmp_path / "hung") < plain_span + 3.0
    assert hung_wall < plain_wall + core.headless.NOTIFY_FLUSH_S + 5.0


def test_an_attempt_that_stalls_is_told_and_its_repeats_merged(tmp_path, monkeypatch, capsys):
    with receiving() as rx:
        config = make(tmp_path / "a", monkeypatch, notify_yaml(rx.url), "x:2024-01-02:hang")
        code, output = run(config, capsys, "--processor", "x")
    assert code == 1, output
    # Three attempts stalled (1 + 2 retries): the first at once, the other two merged and
    # sent before the run's end.
    sent = [(b["event"], b["count"]) for b in told(rx.bodies)]
    assert sent == [
        ("run_started", 1),
        ("stalled", 1),
        ("cell_failed", 1),
        ("stalled", 2),
        ("run_finished", 1),
    ], sent
    stalled = told(rx.bodies)[1]
    assert stalled["processor"] == "x"
    assert "killed: stall" in stalled["message"]


def test_status_names_a_channel_that_keeps_failing(tmp_path, monkeypatch, capsys):
    with receiving(status=500) as rx:
        hook = notify_yaml(rx.url, retries="0")
        config = make(tmp_path / "a", monkeypatch, hook, "x:2024-01-03:fail")
        assert run(config, capsys)[0] == 1
    code, out, _ = invoke(["status", "--json", "--config", str(config)], capsys)
    assert code == 0
    data = json.loads(out)
    (health,) = data["notify"]  # the latest run's, even once it has ended
    assert health["name"] == "hook" and health["healthy"] is False
    assert health["last_error"] == "HTTP 500 Internal Server Error: nope"
    code, out, _ = invoke(["status", "--config", str(config)], capsys)
    assert "notify hook: UNHEALTHY" in out
    assert "notify_" not in out  # a send's outcome is not the run's last event


def test_an_engine_killed_and_started_again_tells_engine_resumed(tmp_path, monkeypatch, capsys):
    with receiving() as rx:
        config = make(tmp_path / "a", monkeypatch, notify_yaml(rx.url))
        config.write_text(config.read_text().replace('"{dates}"', '"{dates}", "--sleep", "0.6"'))
        args = [sys.executable, "-m", "core", "run", "2024-01-01", "2024-01-06", "--headless"]
        first = subprocess.Popen(
            [*args, "--config", str(config)], cwd=ROOT, stdout=subprocess.DEVNULL
        )
        record = tmp_path / "a" / "record.jsonl"
        deadline = time.time() + 30
        while not (record.exists() and record.read_text().count('"end"') >= 2):
            assert time.time() < deadline, "no job ended"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # dies with no word: no run_finished
        first.wait()
        code, output = run(config, capsys)
    assert code == 0, output
    events = rx.events()
    assert events[0] == "run_started" and "run_finished" not in events[:-1]
    resumed = [b for b in rx.bodies if b["event"] == "engine_resumed"]
    assert len(resumed) == 1 and resumed[0]["run_id"] == rx.bodies[0]["run_id"]
    assert resumed[0]["message"].startswith(f"Resuming run #{resumed[0]['run_id']}")
    assert rx.bodies[-1]["event"] == "run_finished" and rx.bodies[-1]["complete"] is True


def test_a_daily_quota_pause_and_its_end_are_told(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MESSAGE", "google.api_core.exceptions.Forbidden: 403 Quota exceeded")
    events = "[quota_paused, quota_resumed]"
    with receiving() as rx:
        config = make(
            tmp_path / "a",
            monkeypatch,
            notify_yaml(rx.url, events=events),
            "x:2024-01-02:error-once",
        )
        config.write_text(
            config.read_text().replace("    cooldown: 1s", "    cooldown: 1s\n    quota_pause: 1s")
        )
        code, output = run(config, capsys)
    assert code == 0, output
    assert rx.events() == ["quota_paused", "quota_resumed"], output
    assert rx.bodies[0]["phase"] == "wide" and rx.bodies[0]["processor"] == "x"
    assert "Quota exceeded" in rx.bodies[0]["message"]


def quiet_now() -> str:
    """Quiet hours around this very minute (local time; they may wrap midnight)."""
    now = datetime.now()
    return f'"{now - timedelta(hours=2):%H:%M}-{now + timedelta(hours=2):%H:%M}"'


def test_in_quiet_hours_a_run_sends_only_its_alarm_and_bad_end_then_one_digest(
    tmp_path, monkeypatch, capsys
):
    with receiving() as rx:
        hook = notify_yaml(
            rx.url, quiet_hours=quiet_now(), failure_alarm="{failures: 2, minutes: 10}"
        )
        # x fails on one date: 3 attempts (1 + 2 retries), more than 2 in 10 minutes.
        config = make(tmp_path / "a", monkeypatch, hook, "x:2024-01-03:fail")
        code, output = run(config, capsys)
    assert code == 1, output
    assert rx.events() == ["failure_alarm", "run_finished", "digest"], rx.events()
    alarm, finished, last = rx.bodies
    assert alarm["failures"] == 3 and alarm["window_s"] == 600
    assert finished["complete"] is False
    # What quiet hours held went out once, folded into one digest as the engine exited.
    held = {h["event"] for h in last["held"]}
    assert held == {"run_started", "cell_failed", "milestone"}, last["held"]
    assert "held by quiet hours" in last["message"]


def test_outside_quiet_hours_the_same_run_is_told_as_usual(tmp_path, monkeypatch, capsys):
    now = datetime.now()
    elsewhere = f'"{now + timedelta(hours=3):%H:%M}-{now + timedelta(hours=5):%H:%M}"'
    with receiving() as rx:
        hook = notify_yaml(rx.url, quiet_hours=elsewhere)
        config = make(tmp_path / "a", monkeypatch, hook, "x:2024-01-03:fail")
        code, output = run(config, capsys)
    assert code == 1, output
    # The default alarm (more than 10 in 10 minutes) stays silent for 3 failed attempts.
    assert told(rx.bodies) and [b["event"] for b in told(rx.bodies)] == [
        "run_started",
        "cell_failed",
        "run_finished",
    ]
