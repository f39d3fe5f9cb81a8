"""Helpers of the demo tests: the completeness rules read from backfill.yaml, row counts, jobs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.demo.tables import BY_NAME, DATASETS
from core.warehouse.sqlite_layout import connect

REPO = Path(__file__).resolve().parents[2]
WINDOW = ("2024-01-15", "2024-01-28")


@dataclass(frozen=True)
class Rule:
    per_game: int = 0
    min_rows: int = 1
    share_of: tuple[str, float] | None = None


def load_rules() -> dict[str, Rule]:
    """Completeness rules of every processor, from the bundled backfill.yaml (the contract)."""
    config = yaml.safe_load((REPO / "backfill.yaml").read_text())
    rules: dict[str, Rule] = {}
    for phase in config["phases"]:
        for p in phase["processors"]:
            share = p.get("min_share_of")
            rules[p["name"]] = Rule(
                per_game=p.get("min_rows_per_calendar_row", 0),
                min_rows=p.get("min_rows", 1),
                share_of=(share["processor"], share["share"]) if share else None,
            )
    return rules


def open_readonly(folder: Path) -> sqlite3.Connection:
    return connect(folder, DATASETS, readonly=True)


def games_by_date(conn: sqlite3.Connection) -> dict[str, int]:
    """Final games per date: the 'calendar rows' of the per-game rules."""
    return dict(
        conn.execute(
            "SELECT game_date, COUNT(*) FROM nba_raw.nbac_schedule "
            "WHERE game_status = 3 AND game_date BETWEEN '2021-10-19' AND '2024-11-29' "
            "GROUP BY game_date"
        ).fetchall()
    )


def rows_by_date(conn: sqlite3.Connection, processor: str) -> dict[str, int]:
    table = BY_NAME[processor]
    return dict(
        conn.execute(
            f"SELECT {table.date_column}, COUNT(*) FROM {table.qualified} "
            f"GROUP BY {table.date_column}"
        ).fetchall()
    )


def table_rows(
    conn: sqlite3.Connection, processor: str, first: str, last: str
) -> list[tuple[Any, ...]]:
    table = BY_NAME[processor]
    return sorted(
        conn.execute(
            f"SELECT * FROM {table.qualified} WHERE {table.date_column} BETWEEN ? AND ?",
            (first, last),
        ).fetchall(),
        key=repr,
    )


class Cells:
    """Cell states (complete / partial / missing) of a warehouse, per processor and date."""

    def __init__(self, folder: Path) -> None:
        self.rules = load_rules()
        conn = open_readonly(folder)
        try:
            self.games = games_by_date(conn)
            self.rows = {name: rows_by_date(conn, name) for name in self.rules}
        finally:
            conn.close()

    def state(self, processor: str, day: str) -> str:
        rule = self.rules[processor]
        n = self.rows[processor].get(day, 0)
        if n == 0:
            return "missing"
        ok = n >= max(rule.min_rows, rule.per_game * self.games[day])
        if rule.share_of is not None:
            upstream, share = rule.share_of
            ok = ok and n >= share * self.rows[upstream].get(day, 0)
        return "complete" if ok else "partial"

    def coverage(self, processor: str) -> float:
        complete = sum(self.state(processor, d) == "complete" for d in self.games)
        return complete / len(self.games)


def run_job(
    warehouse: Path,
    processor: str,
    *args: str,
    faults: bool = True,
    timeout: float = 120,
    delay: str = "0",
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        job_argv(warehouse, processor, *args, delay=delay),
        cwd=REPO,
        env=job_env(faults),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def job_argv(warehouse: Path, processor: str, *args: str, delay: str = "0") -> list[str]:
    return [
        sys.executable,
        "-m",
        "core.demo.job",
        processor,
        "--warehouse",
        str(warehouse),
        "--delay",
        delay,
        *args,
    ]


def job_env(faults: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["BACKFILL_DEMO_FAULTS"] = "1" if faults else "0"
    env.pop("BACKFILL_DEMO_DELAY", None)
    return env
