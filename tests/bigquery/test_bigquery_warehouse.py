"""The BigQuery warehouse against a real BigQuery API (the emulator): the same answers as SQLite,
a refresh from partition metadata (one job per dataset) plus the calendar's count, verification
by counting, and failures explained in one line."""

from __future__ import annotations

import json

import pytest
from google.cloud import bigquery

from core.config import load_config
from core.coverage import measure, reread
from core.warehouse import open_warehouse
from core.warehouse.bigquery import BigQueryWarehouse
from tests.bigquery.conftest import COPIED_UNTIL, RANGE, SEASON_START, bigquery_config, json_of
from tests.bigquery.fault_proxy import Fault, fault_proxy
from tests.helpers import invoke


def query_jobs(project: str, url: str) -> list[bigquery.QueryJob]:
    client = BigQueryWarehouse(project, api_endpoint=url).client()
    # The emulator pages nothing past its default of 100: ask for everything at once.
    return [j for j in client.list_jobs(max_results=100_000) if j.job_type == "query"]


def test_status_and_plan_are_the_same_on_sqlite_and_bigquery(both, capsys):
    lite, bq = both
    on_sqlite = json_of(capsys, "status", "--config", str(lite), "--json", *RANGE)
    on_bigquery = json_of(capsys, "status", "--config", str(bq), "--json", *RANGE)
    assert on_bigquery == on_sqlite
    analytics = next(p for p in on_bigquery["phases"] if p["name"] == "analytics")
    assert on_bigquery["expected_dates"] > 80
    assert 0 < analytics["complete_dates"] < analytics["expected_dates"]  # a real picture

    window = ["2024-01-15", "2024-01-28"]
    plan_lite = json_of(capsys, "plan", *window, "--config", str(lite), "--json")
    plan_bq = json_of(capsys, "plan", *window, "--config", str(bq), "--json")
    assert plan_bq["items"]
    for one in (plan_lite, plan_bq):
        for item in one["items"]:
            item.pop("argv")
        one.pop("cwd")
    assert plan_bq == plan_lite


def test_a_refresh_reads_partition_metadata_per_dataset_and_counts_only_the_calendar(
    both, emulator, project
):
    _, bq = both
    config = load_config(bq)
    warehouse = open_warehouse(config)
    before = len(query_jobs(project, emulator))
    coverage = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
    jobs = query_jobs(project, emulator)[: -before or None]  # newest first
    metadata = [j for j in jobs if "INFORMATION_SCHEMA.PARTITIONS" in j.query]
    datasets = {p.table.split(".")[0] for p in config.processors}
    assert sorted(j.query.split("`")[1] for j in metadata) == sorted(
        f"{project}.{d}.INFORMATION_SCHEMA.PARTITIONS" for d in datasets
    )
    (counted,) = [j for j in jobs if j not in metadata]  # the calendar: its `where` needs rows
    assert "game_status = 3" in counted.query and "UNION ALL" not in counted.query
    assert len(coverage.calendar.expected_dates) > 80
    warehouse.close()


def test_metadata_gives_the_counts_that_counting_gives_and_a_verification_counts(
    both, emulator, project
):
    _, bq = both
    config = load_config(bq)
    warehouse = open_warehouse(config)
    coverage = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
    everyone = frozenset(p.name for p in config.processors)
    before = len(query_jobs(project, emulator))
    counted = reread(config, warehouse, SEASON_START, COPIED_UNTIL, everyone)
    (verification,) = query_jobs(project, emulator)[: -before or None]
    assert "INFORMATION_SCHEMA" not in verification.query and "COUNT(*)" in verification.query
    assert {name: dict(rows) for name, rows in counted.rows.items()} == {
        name: dict(rows) for name, rows in coverage.rows.items()
    }
    assert sum(map(len, coverage.rows.values())) > 500  # a real picture, not two empty ones

    day = max(coverage.rows["player_game_summary"])
    fresh = reread(config, warehouse, day, day, frozenset({"player_game_summary"}))
    assert set(fresh.rows) == {"player_game_summary"}
    assert fresh.rows["player_game_summary"] == {day: coverage.rows_of("player_game_summary", day)}
    warehouse.close()


def test_a_table_not_created_yet_shows_missing_with_a_note(both, emulator, project, capsys):
    _, bq = both
    client = BigQueryWarehouse(project, api_endpoint=emulator).client()
    client.delete_table(f"{project}.nba_precompute.player_daily_cache")
    code, out, err = invoke(["status", "--config", str(bq), *RANGE], capsys)
    assert code == 0, err
    assert "* table does not exist yet: nba_precompute.player_daily_cache" in out
    data = json_of(capsys, "status", "--config", str(bq), "--json", *RANGE)
    precompute = next(p for p in data["phases"] if p["name"] == "precompute")
    pdc = next(p for p in precompute["processors"] if p["name"] == "player_daily_cache")
    assert pdc["table_exists"] is False
    assert pdc["complete"] == 0 and pdc["missing"] == pdc["expected"] - pdc["skipped"] > 0

    code, out, _ = invoke(["preflight", "--config", str(bq), "--quick", "--json"], capsys)
    tables = next(c for c in json.loads(out)["checks"] if c["name"].startswith("warehouse"))
    assert tables["status"] == "warn", tables["detail"]
    assert "player_daily_cache" in tables["detail"]


def test_the_cost_of_a_refresh_is_shown(both, capsys):
    lite, bq = both
    config = load_config(bq)
    datasets = {p.table.split(".")[0] for p in config.processors}
    # The emulator processes 0 bytes: what shows is BigQuery's minimum of 10 MiB per job and
    # table referenced: one partition metadata query per dataset, and the calendar's count.
    floor = 10 * (len(datasets) + 1)
    code, out, _ = invoke(["status", "--config", str(bq), "--verbose", *RANGE], capsys)
    assert code == 0
    assert f"a refresh bills {floor}.0 MiB" in out
    code, out, _ = invoke(["plan", "2024-01-15", "--config", str(bq)], capsys)
    assert f"Cost: a refresh bills {floor}.0 MiB" in out
    code, out, _ = invoke(["plan", "2024-01-15", "--config", str(bq), "--json"], capsys)
    assert json.loads(out)["refresh_bytes"] == floor * 2**20
    code, out, _ = invoke(["plan", "2024-01-15", "--config", str(lite), "--json"], capsys)
    assert json.loads(out)["refresh_bytes"] is None


@pytest.mark.usefixtures("both")
def test_throttling_is_retried_with_backoff(emulator, project, capsys, tmp_path):
    faults = [Fault("POST", "/queries", 403, "rateLimitExceeded", "Exceeded rate limits", times=2)]
    with fault_proxy(emulator, faults) as proxy:
        config = bigquery_config(tmp_path / "proxied", project, proxy.url)
        code, out, err = invoke(["status", "--config", str(config), "--json", *RANGE], capsys)
    assert code == 0, err
    assert json.loads(out)["expected_dates"] > 80
    datasets = {p.table.split(".")[0] for p in load_config(config).processors}
    # two refused, then a job per dataset (partition metadata) and the calendar's count
    assert proxy.count("POST", "/queries") == 2 + len(datasets) + 1


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (
            Fault("GET", "/tables", 403, "accessDenied", "Access Denied: Dataset nba_raw"),
            "permission denied in project",
        ),
        (
            Fault("POST", "/queries", 403, "quotaExceeded", "Quota exceeded: Your project ..."),
            "still throttled after retrying with backoff",
        ),
    ],
)
@pytest.mark.usefixtures("both")
def test_refusals_are_explained_in_one_line(emulator, project, capsys, tmp_path, fault, says):
    with fault_proxy(emulator, [fault]) as proxy:
        config = bigquery_config(
            tmp_path / "proxied", project, proxy.url, extra="  retry_deadline: 2s\n"
        )
        code, _, err = invoke(["status", "--config", str(config), *RANGE], capsys)
    assert code == 2
    assert says in err and fault.message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_wrong_project_and_an_unreachable_endpoint_are_named(emulator, capsys, tmp_path):
    config = bigquery_config(tmp_path / "empty", "nobody-here", emulator)
    code, _, err = invoke(["status", "--config", str(config)], capsys)
    assert code == 2
    assert "none of the datasets nba_analytics, nba_precompute, nba_predictions, nba_raw" in err
    assert "project nobody-here" in err

    config = bigquery_config(
        tmp_path / "down", "proj-down", "http://127.0.0.1:9", extra="  retry_deadline: 1s\n"
    )
    code, _, err = invoke(["status", "--config", str(config)], capsys)
    assert code == 2
    assert "BigQuery could not be reached" in err and "Traceback" not in err


def test_no_credentials_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    for variable in ("GOOGLE_APPLICATION_CREDENTIALS", "BIGQUERY_EMULATOR_HOST"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud login here
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # and no metadata server to ask
    config = bigquery_config(tmp_path, "real-project", "http://unused")
    text = config.read_text().replace("  api_endpoint: http://unused\n", "")
    config.write_text(text)
    code, _, err = invoke(["status", "--config", str(config)], capsys)
    assert code == 2
    assert "no Google credentials for BigQuery" in err
    assert "gcloud auth application-default login" in err
