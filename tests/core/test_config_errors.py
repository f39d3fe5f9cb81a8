"""Every kind of bad input gets one message naming file:line and key path, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import invoke, write_config

BASE = """\
name: t
warehouse: {kind: sqlite, path: wh}
calendar:
  start: 2024-01-01
  end: 2024-01-10
phases:
  - name: raw
    processors:
      - name: src
        table: ds.src
        date_column: d
  - name: work
    processors:
      - name: job
        table: ds.job
        date_column: d
        depends_on: [src]
        command: [python3, job.py, "{start}"]
        timeout: 6h
"""

CASES = [
    # (id, old text, new text, line, key path, message fragment)
    (
        "unknown key",
        "        timeout: 6h",
        "        timeout: 6h\n        colour: red",
        20,
        "phases[1].processors[0].colour",
        "unknown key (expected one of: name, table,",
    ),
    ("unknown top key", "name: t", "name: t\nowner: me", 2, "owner", "unknown key"),
    (
        "wrong type",
        "  - name: work",
        "  - name: work\n    max_parallel: five",
        13,
        "phases[1].max_parallel",
        "expected a whole number, got 'five'",
    ),
    (
        "bad date",
        "  end: 2024-01-10",
        "  end: 2024-02-30",
        5,
        "calendar.end",
        "expected a date YYYY-MM-DD, got '2024-02-30'",
    ),
    (
        "end before start",
        "  end: 2024-01-10",
        "  end: 2023-01-10",
        5,
        "calendar.end",
        "2023-01-10 is before start 2024-01-01",
    ),
    (
        "unknown depends_on",
        "depends_on: [src]",
        "depends_on: [scr]",
        17,
        "phases[1].processors[0].depends_on[0]",
        "unknown processor 'scr'; did you mean 'src'?",
    ),
    (
        "depends on a later phase",
        "        date_column: d\n  - name: work",
        "        date_column: d\n        depends_on: [job]\n  - name: work",
        12,
        "phases[0].processors[0].depends_on[0]",
        "'job' belongs to a later phase ('work')",
    ),
    (
        "cycle",
        "depends_on: [src]",
        "depends_on: [src, job2]\n      - name: job2\n"
        "        table: ds.job2\n        date_column: d\n        depends_on: [job]",
        17,
        "phases[1].processors[0].depends_on",
        "dependency cycle:",
    ),
    (
        "duplicate processor",
        "      - name: job\n",
        "      - name: src\n",
        14,
        "phases[1].processors[0].name",
        "processor 'src' is given twice",
    ),
    (
        "duplicate phase",
        "  - name: work",
        "  - name: raw",
        12,
        "phases[1].name",
        "phase 'raw' is given twice",
    ),
    ("duplicate key", "name: t", "name: t\nname: u", 2, "name", "key given twice"),
    (
        "command is a string",
        'command: [python3, job.py, "{start}"]',
        "command: python3 job.py",
        18,
        "phases[1].processors[0].command",
        "command must be a list of strings (argv, no shell), got 'python3 job.py'",
    ),
    (
        "command has a number",
        'command: [python3, job.py, "{start}"]',
        "command: [python3, 7]",
        18,
        "phases[1].processors[0].command[1]",
        "command must be a list of strings",
    ),
    (
        "unknown placeholder",
        '"{start}"]',
        '"{begin}"]',
        18,
        "phases[1].processors[0].command[2]",
        "unknown placeholder {begin}",
    ),
    (
        "unsafe table",
        "table: ds.job",
        "table: ds.job; DROP TABLE x",
        15,
        "phases[1].processors[0].table",
        "'ds.job; DROP TABLE x' is not a safe name",
    ),
    (
        "table without dataset",
        "table: ds.job",
        "table: job",
        15,
        "phases[1].processors[0].table",
        "write dataset.table",
    ),
    (
        "unsafe date column",
        "        date_column: d\n        depends_on",
        "        date_column: d)--\n        depends_on",
        16,
        "phases[1].processors[0].date_column",
        "is not a safe name",
    ),
    (
        "bad duration",
        "timeout: 6h",
        "timeout: forever",
        19,
        "phases[1].processors[0].timeout",
        "expected a duration like 90s, 10m or 6h, got 'forever'",
    ),
    (
        "missing key",
        "        table: ds.src\n",
        "",
        9,
        "phases[0].processors[0].table",
        "required key is missing",
    ),
    (
        "malformed yaml",
        "  start: 2024-01-01",
        "  start: [2024-01-01",
        5,
        None,
        # libyaml's wording (the parser the loader uses when PyYAML has it)
        "malformed YAML: while parsing a flow sequence (opened on line 4), "
        "did not find expected ',' or ']'",
    ),
    (
        "bad warehouse kind",
        "kind: sqlite",
        "kind: oracle",
        2,
        "warehouse.kind",
        "expected 'sqlite' or 'bigquery', got 'oracle'",
    ),
    (
        "key of another warehouse kind",
        "path: wh}",
        "path: wh, project: p}",
        2,
        "warehouse.project",
        "not a key of a sqlite warehouse",
    ),
    (
        "bigquery project that is not a project id",
        "{kind: sqlite, path: wh}",
        "{kind: bigquery, project: 'a`; DROP'}",
        2,
        "warehouse.project",
        "is not a Google Cloud project id",
    ),
    (
        "bigquery endpoint that is not a URL",
        "{kind: sqlite, path: wh}",
        "{kind: bigquery, project: my-project, api_endpoint: localhost:9050}",
        2,
        "warehouse.api_endpoint",
        "expected a URL such as http://localhost:9050",
    ),
    (
        "unknown key of a preflight check among checks of another kind",
        "        timeout: 6h\n",
        "        timeout: 6h\npreflight:\n"
        "  - {name: c, kind: coverage, phase: raw, min_coverage: 1}\n"
        '  - {name: q, kind: query, sql: x, op: "==", value: 1, colour: red}\n',
        22,
        "preflight[1].colour",
        "unknown key (expected one of: name, severity, quick, timeout, kind, sql, op, value)",
    ),
    (
        "bad daily quota pattern",
        "        timeout: 6h",
        "        timeout: 6h\n        daily_quota_patterns: [ok, 'quota (per day']",
        20,
        "phases[1].processors[0].daily_quota_patterns[1]",
        "not a valid regular expression: missing ), unterminated subpattern",
    ),
    (
        "bad fatal pattern",
        "        timeout: 6h",
        "        timeout: 6h\n        fatal_patterns: ['[denied']",
        20,
        "phases[1].processors[0].fatal_patterns[0]",
        "not a valid regular expression",
    ),
    (
        "max_writers of zero",
        "        timeout: 6h",
        "        timeout: 6h\n        max_writers: 0",
        20,
        "phases[1].processors[0].max_writers",
        "greater than or equal to 1",
    ),
    (
        "quota_pause that is no duration",
        "  - name: work",
        "  - name: work\n    quota_pause: soon",
        13,
        "phases[1].quota_pause",
        "expected a duration like 90s, 10m or 6h, got 'soon'",
    ),
    (
        "empty phase",
        "  - name: work\n    processors:",
        "  - name: work\n    processors: []\n    old:",
        13,
        "phases[1].processors",
        "at least 1 item",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_config_is_named_by_file_line_and_key(tmp_path, capsys, old, new, line, key, fragment):
    assert old in BASE
    path = write_config(tmp_path, BASE.replace(old, new, 1))
    code, out, err = invoke(["status", "--config", str(path)], capsys)
    assert code == 2
    assert out == ""
    where = f"backfill: {path}:{line}: " + (f"{key}: " if key else "")
    assert err.startswith(where), err
    assert fragment in err
    assert err.count("\n") == 1  # one message, one line


def test_missing_config_file_is_named(tmp_path, capsys):
    code, _, err = invoke(["status", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2
    assert "nope.yaml: config file not found" in err


def test_the_installed_entry_point_prints_no_traceback(tmp_path):
    path = write_config(tmp_path, BASE.replace("depends_on: [src]", "depends_on: [job]"))
    result = subprocess.run(
        [sys.executable, "-m", "core", "status", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:17: phases[1].processors[0].depends_on: dependency cycle: job -> job" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["plan", "2024-13-01"], "Invalid value for 'START': expected a date YYYY-MM-DD"),
        (["plan", "2024-01-05", "2024-01-01"], "ends (2024-01-01) before it starts (2024-01-05)"),
        (["plan", "2024-01-01", "--processor", "nope"], "unknown processor 'nope'"),
        (["plan", "2024-01-01", "--processor", "src"], "'src' is a source"),
        (["plan", "2024-01-01", "--phase", "nope"], "unknown phase 'nope' (phases: raw, work)"),
        (["plan", "2024-01-01", "--reprocess", "some"], "'some' is not one of"),
        (["status", "--start", "yesterday"], "Invalid value for '--start'"),
    ],
)
def test_bad_command_line_input_exits_2_with_one_message(tmp_path, capsys, args, fragment):
    path = write_config(tmp_path, BASE)
    code, _, err = invoke([*args, "--config", str(path)], capsys)
    assert code == 2, err
    assert fragment in err
    assert "Traceback" not in err
