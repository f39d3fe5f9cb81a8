"""A run exists whole or not at all: `kill -9` at every journal statement of planning a run,
then run again. Each time the second engine must do all the work, each cell exactly once, and
say "complete" (exit 0) only because the warehouse says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from tests.helpers import day, span, write_config, write_tables

ROOT = Path(__file__).parents[2]
JOB = ROOT / "tests" / "jobs" / "record.py"
HOOK = Path(__file__).parent / "kill_hook"
BACKFILL = [sys.executable, "-m", "core"]
DATES = [d.isoformat() for d in span("2024-01-01", "2024-01-03")]

PIPELINE = f"""
name: kill-while-planning
warehouse: {{kind: sqlite, path: wh}}
calendar: {{start: 2024-01-01, end: 2024-01-03}}
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
"""


#: a processor whose source is empty: every one of its cells is blocked from the start
BLOCKED = """
      - {name: gone, table: ds.gone, date_column: d}
  - name: stuck
    processors:
      - name: z
        table: ds.z
        date_column: d
        depends_on: [gone]
        command: ["true"]
"""


def _fresh(folder: Path, *, blocked: bool = False) -> Path:
    folder.mkdir()
    tables: dict[str, dict[date, int]] = {"ds.base": {day(d): 1 for d in DATES}, "ds.gone": {}}
    write_tables(folder / "wh", tables, date_column="d")
    text = PIPELINE.replace("  - name: work\n", BLOCKED.lstrip("\n") + "  - name: work\n")
    return write_config(folder, text if blocked else PIPELINE)


def _run(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BACKFILL, "run", DATES[0], DATES[-1], "--headless", "--config", str(config)],
        cwd=ROOT,
        env={
            **os.environ,
            "WAREHOUSE": str(config.parent / "wh"),
            "RECORD": str(config.parent / "record.jsonl"),
            "FAULTS": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def _starts(config: Path) -> list[str]:
    record = config.parent / "record.jsonl"
    if not record.exists():
        return []
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    return sorted(d for r in lines if r["kind"] == "start" for d in r["dates"])


def _complete(config: Path) -> int:
    out = subprocess.run(
        [*BACKFILL, "status", "--json", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "WAREHOUSE": str(config.parent / "wh")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    phases = json.loads(out)["phases"]
    return int(next(p["complete"] for ph in phases for p in ph["processors"] if p["name"] == "x"))


def _planning_steps(tmp_path: Path, *, blocked: bool = False) -> range:
    """The journal statements (1-based) from looking for an unfinished run to launching the
    first attempt: every step of planning and journaling a new run."""
    config = _fresh(tmp_path / "count", blocked=blocked)
    log = tmp_path / "statements.log"
    _run(config, PYTHONPATH=str(HOOK), STATEMENT_LOG=str(log))
    statements = log.read_text().splitlines()
    lookup = next(i for i, s in enumerate(statements) if "FROM runs WHERE status = 'running'" in s)
    first_attempt = next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO attem"))
    assert any(s.startswith("INSERT INTO runs") for s in statements[lookup:first_attempt])
    return range(lookup + 1, first_attempt + 2)


def test_a_kill_at_any_step_of_planning_never_leaves_a_false_complete(tmp_path: Path):
    steps = _planning_steps(tmp_path)
    for step in steps:
        config = _fresh(tmp_path / f"kill-{step}")
        killed = _run(config, PYTHONPATH=str(HOOK), KILL_AT_STATEMENT=str(step))
        assert killed.returncode == -9, (step, killed.stdout, killed.stderr)
        assert _starts(config) == []  # killed before any attempt began
        again = _run(config)
        where = f"killed at journal statement {step} ({steps}): {again.stdout}{again.stderr}"
        assert again.returncode == 0, where
        assert "complete" in again.stdout, where
        assert _starts(config) == DATES, where  # every cell run, none twice
        assert _complete(config) == len(DATES), where


def test_a_resumed_run_still_counts_the_cells_blocked_from_the_start(tmp_path: Path):
    """The resumed engine loads items, not the plan: z has none (its source is empty), yet the
    run is not complete while z's cells are missing."""
    first_attempt = _planning_steps(tmp_path, blocked=True)[-1]
    config = _fresh(tmp_path / "resume", blocked=True)
    killed = _run(config, PYTHONPATH=str(HOOK), KILL_AT_STATEMENT=str(first_attempt))
    assert killed.returncode == -9
    again = _run(config)
    assert "Resuming run #1" in again.stdout
    assert again.returncode == 1, again.stdout
    assert "3 cells not complete: z 2024-01-01" in again.stdout
