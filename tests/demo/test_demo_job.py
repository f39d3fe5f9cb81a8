"""The demo job program, run as a real subprocess against real SQLite warehouses."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from core.demo.faults import MARKER_DIR, QUOTA_MESSAGE
from core.demo.processors import PHASE3, PROCESSORS
from core.warehouse.sqlite_layout import connect
from tests.demo.demo_helpers import (
    REPO,
    WINDOW,
    Cells,
    job_argv,
    job_env,
    open_readonly,
    run_job,
    table_rows,
)

WINDOW_ARGS = ("--start-date", WINDOW[0], "--end-date", WINDOW[1])


def _rows(
    folder: Path, processor: str, first: str, last: str | None = None
) -> list[tuple[Any, ...]]:
    conn = open_readonly(folder)
    try:
        return table_rows(conn, processor, first, last or first)
    finally:
        conn.close()


def test_every_processor_writes_complete_rows_over_the_window(window_filled):
    cells = Cells(window_filled)
    window = [d for d in sorted(cells.games) if WINDOW[0] <= d <= WINDOW[1]]
    for name in PROCESSORS:
        states = {d: cells.state(name, d) for d in window}
        assert set(states.values()) == {"complete"}, (name, states)
    # Volumes in the ranges the seed system reported.
    psza = [cells.rows["player_shot_zone_analysis"][d] for d in window]
    pcf = [cells.rows["player_composite_factors"][d] for d in window]
    mlfs = [cells.rows["ml_feature_store_v2"][d] for d in window]
    assert min(psza) >= 250 and max(psza) <= 450
    assert min(pcf) >= 100 and max(pcf) <= 450
    assert mlfs == pcf


def test_usage_rate_is_filled_when_team_offense_ran_first(window_filled):
    conn = open_readonly(window_filled)
    try:
        (nulls,) = conn.execute(
            "SELECT COUNT(*) FROM nba_analytics.player_game_summary "
            "WHERE game_date BETWEEN ? AND ? AND usage_rate IS NULL",
            WINDOW,
        ).fetchone()
    finally:
        conn.close()
    assert nulls == 0


def test_seeded_phase3_rows_equal_what_the_job_writes(warehouse):
    day = "2023-11-15"  # complete for all five processors in the seed
    before = {p.name: _rows(warehouse, p.name, day) for p in PHASE3}
    assert all(before.values())
    for p in PHASE3:
        result = run_job(warehouse, p.name, "--dates", day)
        assert result.returncode == 0, result.stderr
        assert _rows(warehouse, p.name, day) == before[p.name], p.name


@pytest.mark.parametrize("processor", ["team_defense_game_summary", "player_composite_factors"])
def test_running_twice_gives_identical_rows(window_warehouse, window_filled, processor):
    first = _rows(window_filled, processor, *WINDOW)
    for _ in range(2):
        result = run_job(window_warehouse, processor, *WINDOW_ARGS)
        assert result.returncode == 0, result.stdout + result.stderr
        assert _rows(window_warehouse, processor, *WINDOW) == first


def test_progress_lines_and_summary(warehouse):
    result = run_job(warehouse, "team_defense_game_summary", "--start-date", "2024-01-23",
                     "--end-date", "2024-01-25")  # fmt: skip
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("Processing game date")]
    assert len(progress) == 3
    assert progress[0].startswith("Processing game date 1/3: 2024-01-23 ... ✓ Success: ")
    assert progress[0].endswith(" records")
    assert lines[-1] == "BACKFILL SUMMARY: 3 succeeded, 0 failed"


def test_dates_option_runs_only_those_dates(warehouse):
    result = run_job(
        warehouse, "player_game_summary", "--dates", "2024-01-17,2023-11-23,2024-01-25"
    )
    assert result.returncode == 0, result.stderr
    assert "Skipping 2023-11-23: no games" in result.stdout  # Thanksgiving
    written = {row[1] for row in _rows(warehouse, "player_game_summary", *WINDOW)}
    assert written == {"2024-01-17", "2024-01-25"}


def test_a_range_without_games_does_nothing(warehouse):
    result = run_job(warehouse, "team_offense_game_summary", "--start-date", "2023-11-23")
    assert result.returncode == 0
    assert "No games" in result.stdout


def test_missing_upstream_fails_only_that_date(warehouse):
    # team_defense_game_summary is seeded on 2024-01-22 and missing on 2024-01-24.
    result = run_job(warehouse, "team_defense_zone_analysis", "--dates", "2024-01-22,2024-01-24")
    assert result.returncode == 1
    assert "2024-01-24 ... ✗ Failed: missing upstream nba_analytics.team_defense_game_summary" in (
        result.stdout
    )
    assert "BACKFILL SUMMARY: 1 succeeded, 1 failed" in result.stdout
    assert len(_rows(warehouse, "team_defense_zone_analysis", "2024-01-22")) == 30
    assert _rows(warehouse, "team_defense_zone_analysis", "2024-01-24") == []


def test_quota_fault_fires_once_then_the_retry_succeeds(warehouse):
    first = run_job(warehouse, "upcoming_player_game_context", "--start-date", "2024-01-15",
                    "--end-date", "2024-01-17")  # fmt: skip
    assert first.returncode == 1
    assert QUOTA_MESSAGE in first.stderr
    assert "BACKFILL SUMMARY" not in first.stdout  # it died, it did not finish
    assert _rows(warehouse, "upcoming_player_game_context", "2024-01-15")
    assert _rows(warehouse, "upcoming_player_game_context", "2024-01-16", "2024-01-17") == []

    retry = run_job(warehouse, "upcoming_player_game_context", "--start-date", "2024-01-15",
                    "--end-date", "2024-01-17")  # fmt: skip
    assert retry.returncode == 0, retry.stdout + retry.stderr
    cells = Cells(warehouse)
    for day in ("2024-01-15", "2024-01-16", "2024-01-17"):
        assert cells.state("upcoming_player_game_context", day) == "complete"


def test_partial_write_fault_reports_success_but_is_not_complete(warehouse):
    first = run_job(warehouse, "team_offense_game_summary", "--dates", "2024-01-20")
    assert first.returncode == 0
    assert "✓ Success: 2 records" in first.stdout
    assert Cells(warehouse).state("team_offense_game_summary", "2024-01-20") == "partial"

    retry = run_job(warehouse, "team_offense_game_summary", "--dates", "2024-01-20")
    assert retry.returncode == 0
    assert Cells(warehouse).state("team_offense_game_summary", "2024-01-20") == "complete"


def test_faults_can_be_switched_off(warehouse):
    quota = run_job(
        warehouse, "upcoming_player_game_context", "--dates", "2024-01-16", faults=False
    )
    partial = run_job(warehouse, "team_offense_game_summary", "--dates", "2024-01-20", faults=False)
    assert quota.returncode == 0 and partial.returncode == 0
    cells = Cells(warehouse)
    assert cells.state("upcoming_player_game_context", "2024-01-16") == "complete"
    assert cells.state("team_offense_game_summary", "2024-01-20") == "complete"
    assert not (warehouse / MARKER_DIR).exists()


def test_the_hang_fault_hangs_silently_until_killed(window_warehouse, tmp_path):
    conn = connect(window_warehouse, ["nba_precompute"], readonly=False)
    conn.execute("DELETE FROM nba_precompute.player_daily_cache WHERE cache_date = '2024-01-24'")
    conn.close()
    log = tmp_path / "hang.log"
    argv = job_argv(window_warehouse, "player_daily_cache", "--dates", "2024-01-24")
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=job_env(), stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 20
            while "2024-01-24" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            assert "Processing game date 1/1: 2024-01-24" in log.read_text()
            size = log.stat().st_size
            time.sleep(2)
            assert proc.poll() is None  # still alive
            assert log.stat().st_size == size  # and silent
        finally:
            proc.kill()
            proc.wait(timeout=10)
    assert Cells(window_warehouse).state("player_daily_cache", "2024-01-24") == "missing"
    retry = run_job(window_warehouse, "player_daily_cache", "--dates", "2024-01-24", timeout=30)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert Cells(window_warehouse).state("player_daily_cache", "2024-01-24") == "complete"


def test_dry_run_writes_nothing_and_fires_no_fault(warehouse):
    before = _rows(warehouse, "team_offense_game_summary", *WINDOW)
    result = run_job(warehouse, "team_offense_game_summary", "--dry-run", *WINDOW_ARGS)
    assert result.returncode == 0, result.stderr
    assert "DRY RUN: upstream rows nba_raw.nbac_team_boxscore=" in result.stdout
    assert _rows(warehouse, "team_offense_game_summary", *WINDOW) == before
    assert not (warehouse / MARKER_DIR).exists()
    # The partial-write fault is still armed for the first real attempt.
    real = run_job(warehouse, "team_offense_game_summary", "--dates", "2024-01-20")
    assert "✓ Success: 2 records" in real.stdout


def test_dry_run_reports_a_missing_upstream(warehouse):
    result = run_job(warehouse, "player_composite_factors", "--dry-run", "--dates", "2024-01-20")
    assert result.returncode == 0
    assert "would fail, missing nba_precompute.team_defense_zone_analysis" in result.stdout


def test_delay_paces_the_dates(warehouse):
    began = time.monotonic()
    result = run_job(warehouse, "team_defense_game_summary", "--dates", "2024-01-23,2024-01-24",
                     delay="0.6")  # fmt: skip
    assert result.returncode == 0
    assert time.monotonic() - began >= 1.2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("team_offense_game_summary", "--start-date", "2024-13-01"), "not a date"),
        (("team_offense_game_summary", "--dates", "2024-01-15,yesterday"), "not a date"),
        (
            ("team_offense_game_summary", "--start-date", "2024-01-20", "--end-date", "2024-01-15"),
            "before",
        ),
        (("team_offense_game_summary",), "one of the arguments"),
        (("no_such_processor", "--start-date", "2024-01-15"), "invalid choice"),
        (("team_offense_game_summary", "--dates", "2024-01-15", "--delay", "-1"), "negative"),
    ],
)
def test_bad_arguments_exit_2(warehouse, args, message):
    processor, *rest = args
    result = run_job(warehouse, processor, *rest)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_folder_that_is_not_a_warehouse_exits_2(tmp_path):
    result = run_job(
        tmp_path / "nowhere", "team_offense_game_summary", "--start-date", "2024-01-15"
    )
    assert result.returncode == 2
    assert "not a demo warehouse" in result.stderr
    assert not (tmp_path / "nowhere").exists()
