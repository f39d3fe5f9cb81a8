from __future__ import annotations

from datetime import timedelta

from core.config import Config
from core.coverage import CellState, measure
from core.grid import CODE, Grid, build_grid, quiet_runs, refresh_cells, rows_matching
from core.warehouse import open_warehouse
from tests.helpers import day

S = CellState


def grid_of(config: Config, overlay=None):
    coverage = measure(config, open_warehouse(config), day("2024-01-01"), day("2024-01-10"))
    return coverage, build_grid(coverage, overlay)


def test_rows_are_each_phase_summary_then_its_processors_and_columns_every_day(tiny: Config):
    _, grid = grid_of(tiny)
    assert [r.key for r in grid.rows] == [
        "phase:raw",
        "schedule",
        "box",
        "phase:analytics",
        "team",
        "player",
        "phase:pre",
        "zone",
    ]
    assert len(grid.days) == 10 and all(len(c) == 10 for c in grid.codes)
    assert grid.state(grid.row_index("box"), 1) is S.PARTIAL
    assert grid.state(grid.row_index("schedule"), 3) is S.NOT_EXPECTED  # off-day
    assert grid.state(grid.row_index("phase:raw"), 1) is S.PARTIAL  # worst of its processors


def test_the_engine_overlay_wins_except_over_settled_cells(tiny: Config):
    overlay = {
        ("player", day("2024-01-02")): S.RUNNING,
        ("player", day("2024-01-01")): S.FAILED,  # complete in the warehouse: stays complete
        ("team", day("2024-01-03")): S.QUEUED,
    }
    _, grid = grid_of(tiny, overlay)
    player, team = grid.row_index("player"), grid.row_index("team")
    assert grid.state(player, 1) is S.RUNNING
    assert grid.state(player, 0) is S.COMPLETE
    assert grid.state(team, 2) is S.QUEUED


def test_refresh_cells_touches_only_changed_rows_and_their_phase_row(tiny: Config):
    coverage, grid = grid_of(tiny)
    changed = refresh_cells(
        grid, coverage, {("team", day("2024-01-03")): S.FAILED}, [("team", day("2024-01-03"))]
    )
    assert changed == {grid.row_index("team"), grid.row_index("phase:analytics")}
    assert grid.state(grid.row_index("phase:analytics"), 2) is S.FAILED
    assert refresh_cells(grid, coverage, {}, [("box", day("2024-01-01"))]) == set()


def test_a_row_filter_keeps_processors_by_name_phase_or_a_state_they_have(tiny: Config):
    _, grid = grid_of(tiny, {("player", day("2024-01-02")): S.RUNNING})

    def keys(text: str) -> list[str] | None:
        kept = rows_matching(grid, text)
        return None if kept is None else [grid.rows[i].key for i in sorted(kept)]

    assert keys("  ") is None  # no filter: every row
    assert keys("PLAY") == ["player"]
    assert keys("analytics") == ["team", "player"]  # its phase's name
    assert keys("partial") == ["box", "player"]  # a state one of its cells has
    assert keys("running") == ["player"]
    assert keys("runn") == ["player"]  # a state's start is enough
    assert keys("analytics running") == ["player"]  # every word must match
    assert keys("raw running") == []


def test_quiet_runs_are_the_long_stretches_no_row_expects():
    days = tuple(day("2024-01-01") + timedelta(days=i) for i in range(30))
    ne, done = CODE[S.NOT_EXPECTED], CODE[S.COMPLETE]
    one = bytearray([done] * 30)
    one[3:5] = [ne] * 2  # a short break: too short to squeeze
    one[10:25] = [ne] * 15
    two = bytearray(one)
    two[12] = CODE[S.MISSING]  # a row that expects a day splits the run
    grid = Grid(days, (), [one, two])
    assert quiet_runs(grid, 5) == [(13, 25)]
    assert quiet_runs(grid, 2) == [(3, 5), (10, 12), (13, 25)]
    assert quiet_runs(Grid(days, (), []), 5) == []
