from __future__ import annotations

import time

import anyio

from core.config import Config, load_config
from core.preflight import Check, builtin_checks, run_checks
from core.state import EngineLock
from core.warehouse import sqlite_layout
from tests.core.conftest import TINY
from tests.helpers import write_config


def results(config: Config) -> dict[str, tuple[str, str]]:
    return {r.name: (r.status, r.detail) for r in anyio.run(run_checks, builtin_checks(config))}


def test_builtin_checks_on_a_healthy_pipeline(tiny: Config):
    got = results(tiny)
    assert got["config valid"][0] == "pass"
    assert got["warehouse reachable, tables present"][0] == "pass"
    assert got["state_dir writable"][0] == "pass"
    assert got["engine lock free"][0] == "pass"
    # python3 resolves, "{python}" is the running interpreter
    assert got["commands resolve"][0] == "pass"


def test_a_missing_output_table_warns_and_a_missing_source_table_fails(tiny: Config):
    conn = sqlite_layout.connect(tiny.warehouse_path, ["pre", "raw"], readonly=False)
    conn.execute("DROP TABLE pre.zone")
    conn.close()
    status, detail = results(tiny)["warehouse reachable, tables present"]
    assert (status, detail) == ("warn", "output tables not created yet: zone")
    conn = sqlite_layout.connect(tiny.warehouse_path, ["raw"], readonly=False)
    conn.execute("DROP TABLE raw.box")
    conn.close()
    assert results(tiny)["warehouse reachable, tables present"] == (
        "fail",
        "source tables missing: box",
    )


def test_an_unresolvable_program_fails(tmp_path, tiny: Config):
    text = TINY.replace("command: [python3, job.py, player", "command: [no-such-program, player")
    config = load_config(write_config(tiny.root, text, name="other.yaml"))
    status, detail = results(config)["commands resolve"]
    assert status == "fail" and "player: no-such-program" in detail


def test_a_held_lock_is_reported_with_its_owner(tiny: Config):
    lock = EngineLock(tiny.state_path)
    lock.acquire()
    try:
        status, detail = results(tiny)["engine lock free"]
        assert status == "pass" and "this process" in detail  # our own pid
    finally:
        lock.release()


def test_a_crashing_check_fails_with_its_error_not_a_traceback():
    def boom():
        raise PermissionError("read-only file system")

    (result,) = anyio.run(run_checks, [Check("boom", boom)])
    assert result.status == "fail"
    assert result.detail == "PermissionError: read-only file system"


def test_a_check_past_its_timeout_fails_and_the_others_still_report():
    def slow():
        time.sleep(3)
        return "pass", ""

    checks = [Check("slow", slow, timeout=0.3), Check("fast", lambda: ("pass", "ok"))]
    slow_result, fast_result = anyio.run(run_checks, checks)
    assert slow_result.status == "fail" and slow_result.detail.startswith("no answer within")
    assert slow_result.duration_s < 2 and fast_result.status == "pass"


def test_preflight_says_how_an_attempts_leftover_processes_are_found(tiny: Config, monkeypatch):
    status, detail = results(tiny)["attempts' leftover processes found"]
    assert status == "pass"
    if detail.startswith("cgroup v2"):
        # A real probe: it made (and removed) a cgroup where attempts' cgroups go.
        assert "each attempt in its own cgroup under /sys/fs/cgroup" in detail
    else:
        assert detail.startswith("process group and tag scan of /proc")
    monkeypatch.setenv("BACKFILL_CGROUPS", "off")
    status, detail = results(tiny)["attempts' leftover processes found"]
    assert status == "pass"
    assert detail.startswith("process group and tag scan of /proc (turned off by BACKFILL_CGROUPS")
