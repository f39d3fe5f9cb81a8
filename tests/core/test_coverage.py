from __future__ import annotations

import sqlite3
from datetime import date

import pytest

from core.config import Config
from core.coverage import CellState, measure
from core.warehouse import open_warehouse, sqlite_layout
from tests.core.conftest import GAMES
from tests.helpers import day

S = CellState


def states(config: Config, processor: str, start: str = "2024-01-01", end: str = "2024-01-10"):
    coverage = measure(config, open_warehouse(config), day(start), day(end))
    proc = config.processor(processor)
    return {d.isoformat(): coverage.cell(proc, d).state for d in coverage.calendar.days}


def test_expected_dates_come_from_the_calendar_query_with_its_predicate(tiny: Config):
    coverage = measure(tiny, open_warehouse(tiny), day("2024-01-01"), day("2024-01-10"))
    assert [d.isoformat() for d in coverage.calendar.expected_dates] == sorted(GAMES)
    assert coverage.calendar.expected[day("2024-01-02")] == 2  # games that day
    assert not coverage.calendar.is_expected(day("2024-01-07"))  # only a postponed game


def test_rows_per_calendar_row_rule_makes_short_dates_partial(tiny: Config):
    box = states(tiny, "box")
    assert box["2024-01-01"] is S.COMPLETE
    assert box["2024-01-02"] is S.PARTIAL  # 3 rows, 2 games need 4
    assert box["2024-01-10"] is S.MISSING
    assert box["2024-01-04"] is S.NOT_EXPECTED


def test_min_rows_rule(tiny: Config):
    player = states(tiny, "player")
    assert player["2024-01-01"] is S.COMPLETE
    assert player["2024-01-08"] is S.PARTIAL  # 1 of 3
    assert player["2024-01-09"] is S.MISSING


def test_share_of_another_processor_rule(tiny: Config):
    coverage = measure(tiny, open_warehouse(tiny), day("2024-01-01"), day("2024-01-10"))
    zone = tiny.processor("zone")
    cell = coverage.cell(zone, day("2024-01-08"))
    assert (cell.state, cell.rows, cell.required) == (S.COMPLETE, 1, 1)  # half of player's 1
    assert coverage.required(zone, day("2024-01-01")) == 2  # half of player's 3, rounded up


def test_bootstrap_days_skip_the_first_days_of_each_season_for_that_phase_only(tiny: Config):
    zone = states(tiny, "zone")
    assert zone["2024-01-01"] is S.SKIPPED and zone["2024-01-02"] is S.SKIPPED
    assert zone["2024-01-03"] is S.MISSING
    assert zone["2024-01-06"] is S.SKIPPED  # second season opens 01-06
    assert zone["2024-01-08"] is S.COMPLETE
    assert states(tiny, "team")["2024-01-01"] is S.COMPLETE  # analytics has no bootstrap


def test_phase_state_is_the_worst_of_its_processors(tiny: Config):
    coverage = measure(tiny, open_warehouse(tiny), day("2024-01-01"), day("2024-01-10"))
    analytics = tiny.phase("analytics")
    assert coverage.phase_state(analytics, day("2024-01-01")) is S.COMPLETE
    # team complete, player partial -> partial; team complete, player missing -> missing
    assert coverage.phase_state(analytics, day("2024-01-08")) is S.PARTIAL
    assert coverage.phase_state(analytics, day("2024-01-09")) is S.MISSING


def test_a_table_that_does_not_exist_yet_counts_as_missing_not_an_error(tiny: Config):
    conn = sqlite_layout.connect(tiny.warehouse_path, ["pre"], readonly=False)
    conn.execute("DROP TABLE pre.zone")
    conn.close()
    coverage = measure(tiny, open_warehouse(tiny), day("2024-01-01"), day("2024-01-10"))
    assert coverage.absent_tables == {"zone"}
    assert coverage.cell(tiny.processor("zone"), day("2024-01-08")).state is S.MISSING


def test_one_grouped_query_per_table_whatever_the_number_of_dates(tiny: Config, monkeypatch):
    statements: list[str] = []
    real_connect = sqlite_layout.connect

    def traced(*args, **kwargs) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite_layout, "connect", traced)
    measure(tiny, open_warehouse(tiny), date(2023, 1, 1), date(2024, 12, 31))
    counts = [s for s in statements if "COUNT(*)" in s]
    # schedule is scanned twice: as the calendar (with its predicate) and as a processor
    assert len(counts) == len({p.table for p in tiny.processors}) + 1
    assert all("GROUP BY" in s for s in counts)


def test_reading_never_blocks_a_writer(tiny: Config):
    """A job holding a write transaction does not stop a refresh, and vice versa (WAL)."""
    writer = sqlite_layout.connect(tiny.warehouse_path, ["an"], readonly=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO an.team VALUES ('2024-01-03', 3)")
    before = states(tiny, "team")["2024-01-03"]  # reads the last committed snapshot
    writer.execute("INSERT INTO an.team VALUES ('2024-01-03', 3)")
    writer.execute("COMMIT")
    writer.close()
    assert before is S.MISSING
    assert states(tiny, "team")["2024-01-03"] is S.COMPLETE


@pytest.mark.parametrize("bad", ["2024-1-5", "2024-01-3x"])
def test_a_date_column_that_holds_no_iso_dates_is_named(tiny: Config, bad: str):
    from core.errors import UserError

    conn = sqlite_layout.connect(tiny.warehouse_path, ["an"], readonly=False)
    conn.execute("INSERT INTO an.player VALUES (?, 3)", (bad,))
    conn.execute("UPDATE an.player SET game_date = ? WHERE game_date = '2024-01-08'", (bad,))
    conn.close()
    with pytest.raises(UserError, match=r"an\.player\.game_date holds"):
        measure(tiny, open_warehouse(tiny), date(2000, 1, 1), date(2099, 1, 1))
