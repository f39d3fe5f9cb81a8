"""Configured preflight checks pass and fail for real; the CLI's exit codes; the run gate."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from core.state import Journal
from tests.core.conftest import TINY
from tests.helpers import invoke, write_config


def config_with(tmp_path, checks: str):
    """The tiny pipeline (its warehouse built by the `tiny` fixture) plus these checks."""
    return write_config(tmp_path, TINY + "preflight:\n" + checks, name="checked.yaml")


def run_preflight(path, capsys, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out, err = invoke(["preflight", "--json", "--config", str(path), *args], capsys)
    assert out, err
    return code, {c["name"]: c for c in json.loads(out)["checks"]}


CASES = [
    # (check yaml, expected status)
    ("{name: c, kind: coverage, phase: raw, min_coverage: 0.7}", "pass"),  # 6 of 8 dates: 75%
    ("{name: c, kind: coverage, phase: raw, min_coverage: 0.8}", "fail"),
    ("{name: c, kind: coverage, processor: box, min_coverage: 0.8, severity: warn}", "warn"),
    (
        "{name: c, kind: coverage, processor: team, min_coverage: 1, start: 2024-01-01, "
        "end: 2024-01-02}",
        "pass",
    ),
    (
        "{name: c, kind: query, sql: 'SELECT COUNT(*) FROM raw.schedule', op: '>=', value: 9}",
        "pass",
    ),
    (
        "{name: c, kind: query, sql: 'SELECT COUNT(*) FROM raw.schedule', op: between, "
        "value: [1, 5]}",
        "fail",
    ),
    ("{name: c, kind: query, sql: 'SELECT nope FROM nowhere', op: '==', value: 1}", "fail"),
    (f"{{name: c, kind: command, command: ['{sys.executable}', -c, 'print(42)']}}", "pass"),
    ("{name: c, kind: command, command: ['{python}', -c, 'import sys; sys.exit(3)']}", "fail"),
    ("{name: c, kind: command, command: [no-such-program-x]}", "fail"),
    ("{name: c, kind: path_exists, path: wh/raw.sqlite}", "pass"),
    ("{name: c, kind: path_exists, path: wh/nope.sqlite, severity: warn}", "warn"),
    ("{name: c, kind: python_import, module: json}", "pass"),
    ("{name: c, kind: python_import, module: no_such_module_x}", "fail"),
    ("{name: c, kind: env_var, variable: PATH}", "pass"),
    ("{name: c, kind: env_var, variable: NO_SUCH_VARIABLE_X}", "fail"),
    ("{name: c, kind: env_var, variable: NO_SUCH_VARIABLE_X, severity: info}", "info"),
]


@pytest.mark.parametrize(("check", "status"), CASES)
def test_each_kind_passes_and_fails_for_real(tiny, tmp_path, capsys, check, status):
    path = config_with(tmp_path, f"  - {check}\n")
    code, checks = run_preflight(path, capsys)
    assert checks["c"]["status"] == status, checks["c"]["detail"]
    assert code == {"pass": 0, "info": 0, "warn": 2, "fail": 1}[status]


def test_a_command_that_hangs_is_killed_at_its_timeout(tiny, tmp_path, capsys):
    path = config_with(
        tmp_path,
        "  - {name: c, kind: command, timeout: 1s, "
        "command: ['{python}', -c, 'import time; time.sleep(60)']}\n",
    )
    code, checks = run_preflight(path, capsys)
    assert code == 1
    assert checks["c"]["status"] == "fail" and "killed" in checks["c"]["detail"]
    assert checks["c"]["duration_s"] < 10


def test_quick_skips_the_slow_checks(tiny, tmp_path, capsys):
    path = config_with(
        tmp_path,
        "  - {name: slow, kind: command, quick: false, command: ['{python}', -c, 'pass']}\n"
        "  - {name: fast, kind: env_var, variable: PATH}\n",
    )
    _, checks = run_preflight(path, capsys, "--quick")
    assert checks["slow"]["status"] == "skipped" and checks["fast"]["status"] == "pass"
    _, checks = run_preflight(path, capsys)
    assert checks["slow"]["status"] == "pass"


def test_text_output_has_a_summary_line(tiny, tmp_path, capsys):
    path = config_with(tmp_path, "  - {name: w, kind: env_var, variable: NOPE_X, severity: warn}\n")
    code, out, _ = invoke(["preflight", "--config", str(path)], capsys)
    assert code == 2
    assert out.splitlines()[-1].endswith(
        "1 warnings, 0 failed, 0 info, 0 skipped: proceed with caution"
    )


def test_a_failing_preflight_blocks_the_run_unless_overridden_and_both_are_journaled(
    tiny, tmp_path, capsys
):
    path = config_with(tmp_path, "  - {name: gate, kind: env_var, variable: NOPE_X}\n")
    code, out, _ = invoke(
        [
            "run",
            "2024-01-01",
            "2024-01-02",
            "--headless",
            "--processor",
            "team",
            "--config",
            str(path),
        ],
        capsys,
    )
    assert code == 1 and "Preflight failed (gate): not starting" in out
    journal = Journal(tiny.state_path)
    refused = journal.conn.execute(
        "SELECT detail FROM events WHERE kind = 'run_refused'"
    ).fetchall()
    assert len(refused) == 1 and json.loads(refused[0][0])["failed"] == ["gate"]
    assert journal.unfinished_run() is None
    code, out, _ = invoke(
        [
            "run",
            "2024-01-01",
            "2024-01-02",
            "--headless",
            "--processor",
            "team",
            "--ignore-preflight",
            "--config",
            str(path),
        ],
        capsys,
    )
    assert "preflight FAIL: gate" in out and "Run #1" in out
    record = journal.events(1)
    gate = next(detail for _, _, kind, detail in record if kind == "preflight")
    assert gate["overridden"] is True and gate["failed"] == ["gate"]


def test_preflight_config_errors_are_named(tmp_path, capsys):
    path = config_with(
        tmp_path, "  - {name: q, kind: query, sql: 'SELECT 1', op: between, value: 3}\n"
    )
    code, _, err = invoke(["preflight", "--config", str(path)], capsys)
    assert code == 2 and "preflight[0].value: between takes a list of two values" in err
