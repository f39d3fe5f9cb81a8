"""Known-empty cells against a live engine: `backfill known-empty` goes through the engine's
socket, the engine settles pending items of those cells instead of running them, and dashboards
attached to it show the new state at once. Everything is real: a detached engine process, its
socket, the journal, the demo warehouse, Textual Pilot."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.state import Journal
from tests.tui.test_attach import backfill, detach, engine_pid


@pytest.fixture
def slow_demo(demo: Path, monkeypatch) -> Path:
    """Two seconds per date and no injected faults: items wait long enough to be marked."""
    monkeypatch.setenv("BACKFILL_DEMO_DELAY", "2")
    monkeypatch.setenv("BACKFILL_DEMO_FAULTS", "0")
    demo.write_text(demo.read_text().replace("stall_timeout: 6s", "stall_timeout: 60s"))
    return demo


def wait_engine_gone(config: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while engine_pid(config) is not None:
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(0.5)


def test_known_empty_with_a_live_engine_settles_pending_items_and_the_run_completes(slow_demo):
    processor = "upcoming_team_game_context"
    run_id = detach(
        slow_demo, "2024-01-15", "2024-01-22", "--processor", processor,
        "--reprocess", "all", "--max-parallel", "1",
    )  # fmt: skip
    marked = backfill(
        slow_demo, "known-empty", processor, "2024-01-19", "2024-01-22",
        "--reason", "no games that week", "--json",
    )  # fmt: skip
    assert marked.returncode == 0, marked.stdout + marked.stderr
    reply = json.loads(marked.stdout)
    assert reply["ok"] is True and reply["engine"]["pid"] == engine_pid(slow_demo)
    assert "4 cells marked known empty" in reply["message"]
    assert "pending items settled" in reply["message"]
    wait_engine_gone(slow_demo)

    journal = Journal(slow_demo.parent / ".backfill")
    try:
        (run,) = [r for r in journal.runs() if r.id == run_id]
        assert run.status == "finished"  # complete: the marked cells count as complete
        items = journal.items(run_id)
        attempts = journal.last_attempts(run_id)
        late = [i for i in items if min(i.dates).isoformat() >= "2024-01-19"]
        assert late and all(i.state == "done" and i.reason == "known empty" for i in late)
        assert not any(i.id in attempts for i in late)  # never run
        early = [i for i in items if max(i.dates).isoformat() < "2024-01-19"]
        assert early and all(i.id in attempts for i in early)
        events = [e for _, _, kind, e in journal.events(run_id) if kind == "operator_knownempty"]
        assert events and "(cli)" in events[0]["who"] and events[0]["ok"] is True
    finally:
        journal.close()
    status = json.loads(backfill(slow_demo, "status", "--json").stdout)
    procs = {p["name"]: p for ph in status["phases"] for p in ph["processors"]}
    assert procs[processor]["known_empty"] >= 1
    report = json.loads(backfill(slow_demo, "report", "--format", "json").stdout)
    assert report["known_empty"]["count"] == 4
    assert {c["reason"] for c in report["known_empty"]["cells"]} == {"no games that week"}
    assert [c["date"] for c in report["known_empty"]["cells"]] == [
        "2024-01-19",
        "2024-01-20",
        "2024-01-21",
        "2024-01-22",
    ]
    markdown = backfill(slow_demo, "report").stdout
    assert "## Known empty" in markdown and "4 cells, counted complete:" in markdown
    assert f"- {processor} 2024-01-19..2024-01-22 (4): no games that week" in markdown

    # With the engine gone, the undo goes to the journal directly (and exits 0, not 3).
    undone = backfill(slow_demo, "known-empty", processor, "2024-01-19", "2024-01-22", "--undo")
    assert undone.returncode == 0, undone.stderr
    assert "4 known-empty marks undone" in undone.stdout
    status = json.loads(backfill(slow_demo, "status", "--json").stdout)
    procs = {p["name"]: p for ph in status["phases"] for p in ph["processors"]}
    assert procs[processor]["known_empty"] == 0
