from __future__ import annotations

from datetime import date

from core.calendar import bootstrap_dates, build_calendar
from core.config import load_config
from core.coverage import CellState, measure
from core.warehouse import open_warehouse
from tests.helpers import day, span, write_config, write_tables

EVERY_DAY = """
name: daily
warehouse: {kind: sqlite, path: wh}
calendar: {start: 2024-02-25, end: yesterday}
phases:
  - name: p
    bootstrap_days: 3
    processors:
      - {name: t, table: ds.t, date_column: d}
"""


def test_without_a_calendar_query_every_day_is_expected(tmp_path):
    config = load_config(write_config(tmp_path, EVERY_DAY))
    calendar = build_calendar(config, day("2024-02-27"), day("2024-03-02"), None)
    assert calendar.expected_dates == span("2024-02-27", "2024-03-02")  # leap day included


def test_today_and_yesterday_resolve_against_the_given_day(tmp_path):
    config = load_config(write_config(tmp_path, EVERY_DAY))
    assert config.calendar.end_date(date(2024, 3, 1)) == date(2024, 2, 29)


def test_bootstrap_without_seasons_counts_from_the_calendar_start(tmp_path):
    config = load_config(write_config(tmp_path, EVERY_DAY))
    skipped = bootstrap_dates(config, config.phases[0], span("2024-02-25", "2024-03-05"))
    assert sorted(skipped) == span("2024-02-25", "2024-02-27")


def test_every_day_calendar_end_to_end(tmp_path):
    write_tables(
        tmp_path / "wh", {"ds.t": {d: 1 for d in span("2024-02-28", "2024-03-01")}}, date_column="d"
    )
    config = load_config(write_config(tmp_path, EVERY_DAY))
    coverage = measure(config, open_warehouse(config), day("2024-02-25"), day("2024-03-02"))
    states = [coverage.cell(config.processors[0], d).state for d in coverage.calendar.days]
    assert states == [CellState.SKIPPED] * 3 + [CellState.COMPLETE] * 3 + [CellState.MISSING]
