"""A tiny three-phase pipeline over a real SQLite warehouse, shaped to hit every cell state."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config, load_config
from core.warehouse import sqlite_layout
from tests.helpers import day, span, write_config, write_tables

TINY = """
name: tiny
warehouse: {kind: sqlite, path: wh}
calendar:
  start: 2024-01-01
  end: 2024-01-10
  expected_dates: {table: raw.schedule, date_column: game_date, where: "status = 3"}
  seasons:
    - {name: s1, start: 2024-01-01, end: 2024-01-05}
    - {name: s2, start: 2024-01-06, end: 2024-01-31}
phases:
  - name: raw
    processors:
      - {name: schedule, table: raw.schedule, date_column: game_date}
      - {name: box, table: raw.box, date_column: game_date, min_rows_per_calendar_row: 2}
  - name: analytics
    title: Analytics
    max_parallel: 3
    gate: {min_coverage: 0.5}
    processors:
      - name: team
        table: an.team
        date_column: game_date
        depends_on: [box]
        command: [python3, job.py, team, --start, "{start}", --end, "{end}"]
        chunk_days: 2
        min_rows_per_calendar_row: 2
      - name: player
        table: an.player
        date_column: game_date
        depends_on: [team]
        command: [python3, job.py, player, "{start}", "{end}"]
        min_rows: 3
  - name: pre
    bootstrap_days: 2
    processors:
      - name: zone
        table: pre.zone
        date_column: analysis_date
        depends_on: [player]
        command: ["{python}", job.py, zone, --dates, "{dates}"]
        chunk_days: 3
        min_share_of: {processor: player, share: 0.5}
"""

GAMES = {  # date -> final games on the schedule; 01-04 is an off-day, 01-07 only postponed
    "2024-01-01": 1,
    "2024-01-02": 2,
    "2024-01-03": 1,
    "2024-01-05": 1,
    "2024-01-06": 1,
    "2024-01-08": 1,
    "2024-01-09": 1,
    "2024-01-10": 1,
}


@pytest.fixture
def tiny(tmp_path: Path) -> Config:
    folder = tmp_path / "wh"
    write_tables(folder, {"raw.schedule": {day(d): n for d, n in GAMES.items()}})
    conn = sqlite_layout.connect(folder, ["raw"], readonly=False)
    conn.execute("INSERT INTO raw.schedule VALUES ('2024-01-07', 5)")  # postponed, not final
    conn.close()
    box = {day(d): 2 * n for d, n in GAMES.items()}
    box[day("2024-01-02")] = 3  # partial: 2 games need 4 rows
    del box[day("2024-01-10")]  # source gap
    write_tables(folder, {"raw.box": box})
    team = {d: 2 for d in span("2024-01-01", "2024-01-10") if d.isoformat() in GAMES}
    for gap in ("2024-01-03", "2024-01-05", "2024-01-06", "2024-01-10"):
        del team[day(gap)]
    team[day("2024-01-02")] = 4
    write_tables(folder, {"an.team": team})
    write_tables(folder, {"an.player": {day("2024-01-01"): 3, day("2024-01-08"): 1}})
    write_tables(folder, {"pre.zone": {day("2024-01-08"): 1}}, date_column="analysis_date")
    return load_config(write_config(tmp_path, TINY))
