"""The seeded demo warehouse reproduces the seed system's situation, on real SQLite files."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from core.demo import tables
from core.demo.processors import PHASE3
from core.demo.schedule import SEASONS, thanksgiving
from core.demo.seed import SeedSummary, WarehouseExistsError, seed_demo_warehouse
from tests.demo.demo_helpers import REPO, WINDOW, Cells, games_by_date, open_readonly

PHASE3_NAMES = [p.name for p in PHASE3]


@pytest.fixture(scope="module")
def conn(seeded: SeedSummary) -> Iterator[sqlite3.Connection]:
    connection = open_readonly(seeded.folder)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def cells(seeded: SeedSummary) -> Cells:
    return Cells(seeded.folder)


def test_675_final_dates_split_215_214_209_37(conn, seeded):
    per_season = dict(
        conn.execute(
            "SELECT season, COUNT(DISTINCT game_date) FROM nba_raw.nbac_schedule "
            "WHERE game_status = 3 AND game_date BETWEEN '2021-10-19' AND '2024-11-29' "
            "GROUP BY season"
        ).fetchall()
    )
    assert per_season == {"2021-22": 215, "2022-23": 214, "2023-24": 209, "2024-25": 37}
    assert seeded.game_dates == 675


def test_holidays_and_all_star_break_have_no_final_games(conn):
    closed = []
    for season in SEASONS[:3]:
        closed += [thanksgiving(season.start.year), date(season.start.year, 12, 24)]
        first, last = season.all_star_break
        closed += [first + timedelta(i) for i in range((last - first).days + 1)]
    closed.append(thanksgiving(2024))
    assert date(2022, 2, 18) in closed and date(2022, 2, 23) in closed
    finals = set(games_by_date(conn))
    assert [d for d in closed if d.isoformat() in finals] == []
    # And off-days are not only holidays: some ordinary regular-season days have no games.
    season = SEASONS[0]
    regular = [season.start + timedelta(i) for i in range((season.regular_end - season.start).days)]
    assert len([d for d in regular if d.isoformat() not in finals]) > len(closed) // 3


def test_games_per_date_by_season_type(conn):
    per_date = conn.execute(
        "SELECT game_date, season_type, COUNT(*) FROM nba_raw.nbac_schedule "
        "WHERE game_status = 3 GROUP BY game_date, season_type"
    ).fetchall()
    regular = [n for _, kind, n in per_date if kind == "Regular Season"]
    post = [n for _, kind, n in per_date if kind != "Regular Season"]
    assert min(regular) >= 5 and max(regular) <= 15
    assert min(post) >= 1 and max(post) <= 4
    assert sum(regular) / len(regular) > sum(post) / len(post)


def test_a_team_plays_at_most_once_per_date(conn):
    appearances = Counter()
    for day, home, away in conn.execute(
        "SELECT game_date, home_team, away_team FROM nba_raw.nbac_schedule"
    ):
        appearances[(day, home)] += 1
        appearances[(day, away)] += 1
    assert max(appearances.values()) == 1
    teams = {team for _, team in appearances}
    assert len(teams) == 30 and {"LAL", "BOS", "GSW", "NYK"} <= teams


def test_postponed_and_scheduled_games_make_the_final_predicate_matter(conn):
    postponed = conn.execute(
        "SELECT game_date FROM nba_raw.nbac_schedule WHERE game_status = 5"
    ).fetchall()
    assert 3 <= len(postponed) <= 10
    finals = games_by_date(conn)
    assert all(d.startswith("2021-12") and finals.get(d, 0) > 0 for (d,) in postponed)
    first, last = conn.execute(
        "SELECT MIN(game_date), MAX(game_date) FROM nba_raw.nbac_schedule WHERE game_status = 1"
    ).fetchone()
    assert first > "2024-11-29" and last == "2024-12-31"
    (late_finals,) = conn.execute(
        "SELECT COUNT(*) FROM nba_raw.nbac_schedule WHERE game_status = 3 "
        "AND game_date > '2024-11-29'"
    ).fetchone()
    assert late_finals == 0
    (unplayed_rows,) = conn.execute(
        "SELECT COUNT(*) FROM nba_raw.nbac_gamebook_player_stats AS g "
        "JOIN nba_raw.nbac_schedule AS s USING (game_id) WHERE s.game_status != 3"
    ).fetchone()
    assert unplayed_rows == 0


def test_phase2_is_complete_on_every_final_date(cells):
    for name in ("nbac_schedule", "nbac_gamebook_player_stats", "nbac_team_boxscore",
                 "bettingpros_player_points_props", "bdl_player_boxscores"):  # fmt: skip
        states = Counter(cells.state(name, d) for d in cells.games)
        assert states == {"complete": 675}, name
    # Team box scores are exactly home and away, never more.
    assert all(cells.rows["nbac_team_boxscore"][d] == 2 * n for d, n in cells.games.items())


def test_gamebook_rosters_and_box_scores_are_consistent(conn):
    per_team = conn.execute(
        "SELECT game_id, team_abbr, COUNT(*), SUM(minutes > 0), SUM(points), "
        "SUM(player_status != 'active' AND minutes = 0), SUM(player_status != 'active') "
        "FROM nba_raw.nbac_gamebook_player_stats GROUP BY game_id, team_abbr"
    ).fetchall()
    assert all(13 <= rostered <= 15 for _, _, rostered, *_ in per_team)
    assert all(8 <= played <= 12 for _, _, _, played, *_ in per_team)
    assert all(dnp_zero == dnp for *_, dnp_zero, dnp in per_team)
    box = {
        (g, t): pts
        for g, t, pts in conn.execute(
            "SELECT game_id, team_abbr, points FROM nba_raw.nbac_team_boxscore"
        )
    }
    assert {(g, t): pts for g, t, _, _, pts, _, _ in per_team} == box
    (bdl,) = conn.execute("SELECT COUNT(*) FROM nba_raw.bdl_player_boxscores").fetchone()
    assert bdl == sum(played for _, _, _, played, *_ in per_team)


def test_phase3_is_about_half_covered_with_laggards(cells):
    coverage = {name: cells.coverage(name) for name in PHASE3_NAMES}
    assert all(0.5 <= share <= 0.8 for share in coverage.values()), coverage
    assert len({round(share, 3) for share in coverage.values()}) == 5
    # The seed monitor's MAX across tables hid the upcoming_* laggards.
    assert min(coverage["upcoming_player_game_context"], coverage["upcoming_team_game_context"]) < (
        min(coverage["team_offense_game_summary"], coverage["team_defense_game_summary"])
    )
    all_five = sum(
        all(cells.state(name, d) == "complete" for name in PHASE3_NAMES) for d in cells.games
    ) / len(cells.games)
    assert 0.45 <= all_five <= 0.55


def test_partial_dates_are_few_and_spread(cells):
    partial = [(n, d) for n in PHASE3_NAMES for d in cells.games if cells.state(n, d) == "partial"]
    assert 3 <= len(partial) <= 6
    assert {d[:4] for _, d in partial} >= {"2021", "2022", "2024"}
    assert ("team_offense_game_summary", "2024-01-18") in partial
    assert cells.rows["team_offense_game_summary"]["2024-01-18"] == 2


def test_the_test_window_has_gaps_a_partial_date_and_missing_fault_cells(cells):
    window = [d for d in sorted(cells.games) if WINDOW[0] <= d <= WINDOW[1]]
    assert len(window) == 14
    missing = {d: sum(cells.state(n, d) == "missing" for n in PHASE3_NAMES) for d in window}
    assert sum(n >= 3 for n in missing.values()) > len(window) // 2
    states = {cells.state(n, d) for n in PHASE3_NAMES for d in window}
    assert "partial" in states
    assert cells.state("upcoming_player_game_context", "2024-01-16") == "missing"
    assert cells.state("team_offense_game_summary", "2024-01-20") == "missing"
    assert cells.state("player_daily_cache", "2024-01-24") == "missing"


def test_phase4_tables_exist_and_are_empty(conn, seeded):
    for table in tables.PRECOMPUTE_TABLES:
        (n,) = conn.execute(f"SELECT COUNT(*) FROM {table.qualified}").fetchone()
        assert n == 0, table.qualified
        assert seeded.rows[table.qualified] == 0
    indexed = {
        (row[0], row[1])
        for ds in tables.DATASETS
        for row in conn.execute(f"SELECT tbl_name, name FROM {ds}.sqlite_master WHERE type='index'")
    }
    for table in tables.ALL_TABLES:
        assert (table.name, f"ix_{table.name}_{table.date_column}") in indexed


def test_summary_counts_match_the_files(conn, seeded):
    assert seeded.folder.is_dir()
    for table in tables.ALL_TABLES:
        (n,) = conn.execute(f"SELECT COUNT(*) FROM {table.qualified}").fetchone()
        assert seeded.rows[table.qualified] == n
    # (-wal and -shm files belong to open readers, such as this module's connection)
    assert sorted(p.name for p in seeded.folder.glob("*.sqlite")) == [
        f"{ds}.sqlite" for ds in sorted(tables.DATASETS)
    ]


def _fingerprint(folder: Path) -> tuple[dict[tuple[str, str], int], dict[str, str]]:
    """Rows per (table, date) and a digest of every table's content in insertion order."""
    conn = open_readonly(folder)
    try:
        counts: dict[tuple[str, str], int] = {}
        digests: dict[str, str] = {}
        for table in tables.ALL_TABLES:
            for day, n in conn.execute(
                f"SELECT {table.date_column}, COUNT(*) FROM {table.qualified} "
                f"GROUP BY {table.date_column}"
            ):
                counts[(table.name, day)] = n
            digest = hashlib.sha256()
            for row in conn.execute(f"SELECT * FROM {table.qualified} ORDER BY rowid"):
                digest.update(repr(row).encode())
            digests[table.name] = digest.hexdigest()
        return counts, digests
    finally:
        conn.close()


def test_seeding_is_deterministic_across_processes(seeded, tmp_path):
    # Another process with another string-hash seed: set iteration order must not leak in.
    folder = tmp_path / "again"
    code = "import sys; from pathlib import Path; from core.demo.seed import seed_demo_warehouse; "
    code += "print(seed_demo_warehouse(Path(sys.argv[1])).seconds)"
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 15  # "a few seconds"
    again_counts, again_digests = _fingerprint(folder)
    counts, digests = _fingerprint(seeded.folder)
    assert again_counts == counts
    assert again_digests == digests


def test_seeding_refuses_an_existing_warehouse_unless_forced(warehouse):
    markers = warehouse / ".demo-faults"
    markers.mkdir()
    (markers / "team_offense_game_summary@2024-01-20").touch()
    (warehouse / "stray.txt").write_text("left over")
    with pytest.raises(WarehouseExistsError):
        seed_demo_warehouse(warehouse)
    assert (warehouse / "stray.txt").exists()

    summary = seed_demo_warehouse(warehouse, force=True)
    assert summary.folder == warehouse
    assert not markers.exists() and not (warehouse / "stray.txt").exists()
    assert Cells(warehouse).coverage("nbac_gamebook_player_stats") == 1.0
    assert [p.name for p in warehouse.parent.iterdir()] == ["warehouse"]  # no staging left over


def test_seeding_refuses_a_file_in_the_way(tmp_path):
    blocker = tmp_path / "warehouse"
    blocker.write_text("not a warehouse")
    with pytest.raises(WarehouseExistsError):
        seed_demo_warehouse(blocker)
    assert blocker.read_text() == "not a warehouse"
