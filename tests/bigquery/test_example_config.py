"""examples/nba-props-bigquery.yaml: the seed pipeline's real names, valid, and answering status
and plan when its project holds the seed's tables (the demo's, copied into the emulator)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date

from core.config import load_config
from core.demo import bigquery_io
from core.demo.seed import SeedSummary
from core.warehouse.bigquery import BigQueryWarehouse
from tests.bigquery.conftest import ROOT
from tests.helpers import invoke

EXAMPLE = ROOT / "examples" / "nba-props-bigquery.yaml"


def test_it_names_the_seed_tables_and_date_columns():
    config = load_config(EXAMPLE)
    assert (config.warehouse.kind, config.warehouse.project) == ("bigquery", "nba-props-platform")
    expected = config.calendar.expected_dates
    assert expected is not None
    assert (expected.table, expected.where) == ("nba_raw.nbac_schedule", "game_status = 3")
    columns = {p.name: (p.table, p.date_column) for p in config.processors}
    assert columns["team_defense_zone_analysis"][1] == "analysis_date"
    assert columns["player_shot_zone_analysis"][1] == "analysis_date"
    assert columns["player_daily_cache"][1] == "cache_date"
    assert columns["ml_feature_store_v2"] == ("nba_predictions.ml_feature_store_v2", "game_date")
    precompute = config.phase("precompute")
    assert precompute.bootstrap_days == 14
    assert config.phase("analytics").max_parallel == 5
    # The seed's Cloud Run Jobs, mapped while the phase runs locally (job-config.env JOB_NAME).
    jobs = {p.name: p.cloud_run.job for p in config.phase("analytics").processors if p.cloud_run}
    assert jobs["player_game_summary"] == "player-game-summary-analytics-backfill"
    assert jobs["team_offense_game_summary"] == "team-offense-analytics-backfill"
    assert len(jobs) == 5
    assert config.executor_of(config.phase("analytics")).kind == "local"


def test_status_and_plan_read_its_project(emulator, demo_sqlite: SeedSummary, monkeypatch, capsys):
    warehouse = BigQueryWarehouse("nba-props-platform", api_endpoint=emulator)
    bigquery_io.copy_from_sqlite(
        warehouse, demo_sqlite.folder, start=date(2024, 1, 1), end=date(2024, 1, 31)
    )
    warehouse.close()
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", emulator.removeprefix("http://"))
    window = ["--start", "2024-01-01", "--end", "2024-01-31"]
    code, out, err = invoke(["status", "--config", str(EXAMPLE), *window], capsys)
    assert code == 0, err
    assert "bigquery nba-props-platform" in out
    # The demo has no play-by-play table: shown as absent, not an error.
    assert "table does not exist yet: nba_raw.bigdataball_play_by_play" in out

    code, out, err = invoke(
        ["plan", "2024-01-15", "2024-01-17", "--config", str(EXAMPLE), "--json"], capsys
    )
    assert code == 0, err
    items = json.loads(out)["items"]
    pgs = next(i for i in items if i["processor"] == "player_game_summary")
    assert pgs["argv"][:2] == [
        ".venv/bin/python",
        "backfill_jobs/analytics/player_game_summary/player_game_summary_analytics_backfill.py",
    ]


def test_opening_the_warehouse_loads_no_client_library():
    """The dashboard opens it on start: the import (about a second) waits for the first
    refresh, which runs in a thread."""
    code = (
        "import sys; from core.config import load_config; from core.warehouse import "
        f"open_warehouse; open_warehouse(load_config({str(EXAMPLE)!r})); "
        "print(sorted(m for m in sys.modules if m.startswith('google')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
