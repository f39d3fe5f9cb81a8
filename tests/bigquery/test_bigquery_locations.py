"""Datasets in two locations (the seed has nba_raw in us-west2 beside US datasets): every job of
a refresh (partition metadata per dataset, counts per location) is sent to the location of the
datasets it reads, and the answers are SQLite's.

The emulator keeps dataset locations but runs any job anywhere: that a job in the wrong location
fails is BigQuery's to show; here the location each job was sent to is read off the wire."""

from __future__ import annotations

from pathlib import Path

from core.config import load_config
from core.coverage import measure
from core.demo.seed import SeedSummary
from core.warehouse import open_warehouse
from tests.bigquery.conftest import (
    COPIED_UNTIL,
    RANGE,
    SEASON_START,
    bigquery_config,
    copy_demo,
    json_of,
    sqlite_config,
)
from tests.bigquery.fault_proxy import Fault, fault_proxy
from tests.helpers import invoke

SPLIT = {"nba_raw": "us-west2"}


def test_with_two_locations_each_job_runs_where_its_datasets_are_and_matches_sqlite(
    emulator: str, project: str, demo_sqlite: SeedSummary, tmp_path: Path, capsys
):
    copy_demo(emulator, project, demo_sqlite, SPLIT)
    lite = sqlite_config(tmp_path / "sqlite", demo_sqlite.folder)
    with fault_proxy(emulator, []) as proxy:
        bq = bigquery_config(tmp_path / "bq", project, proxy.url)
        on_bigquery = json_of(capsys, "status", "--config", str(bq), "--json", *RANGE)
        jobs = proxy.sent("POST", "/queries")
    assert on_bigquery == json_of(capsys, "status", "--config", str(lite), "--json", *RANGE)
    assert on_bigquery["expected_dates"] > 80
    assert sorted({job.body["location"] for job in jobs}) == ["US", "us-west2"]
    for job in jobs:  # partition metadata per dataset, the calendar's count: each where it reads
        raw = "nba_raw." in job.body["query"]
        assert raw == (job.body["location"] == "us-west2")
        if raw:
            assert not any(
                f"{d}." in job.body["query"] for d in ("nba_analytics", "nba_precompute")
            )


def test_the_jobs_of_each_location_run_at_the_same_time(
    emulator: str, project: str, demo_sqlite: SeedSummary, tmp_path: Path
):
    copy_demo(emulator, project, demo_sqlite, SPLIT)
    # Each job held 1 s on its way: one after the other, no two would overlap.
    with fault_proxy(emulator, [], hold_queries=1.0) as proxy:
        config = load_config(bigquery_config(tmp_path, project, proxy.url))
        warehouse = open_warehouse(config)
        measure(config, warehouse, SEASON_START, COPIED_UNTIL)
        warehouse.close()
    spans = proxy.query_spans
    assert sorted({where for where, _, _ in spans}) == ["US", "us-west2"]
    west = [(began, ended) for where, began, ended in spans if where == "us-west2"]
    us = [(began, ended) for where, began, ended in spans if where == "US"]
    assert any(b1 < e2 and b2 < e1 for b1, e1 in west for b2, e2 in us), spans


def test_locations_are_read_once_per_warehouse(
    emulator: str, project: str, demo_sqlite: SeedSummary, tmp_path: Path
):
    copy_demo(emulator, project, demo_sqlite, SPLIT)
    with fault_proxy(emulator, []) as proxy:
        config = load_config(bigquery_config(tmp_path, project, proxy.url))
        warehouse = open_warehouse(config)
        for _ in range(2):
            measure(config, warehouse, SEASON_START, COPIED_UNTIL)
        warehouse.close()
    metadata = [r for r in proxy.sent("GET", "/datasets/nba_raw?")]
    assert len(metadata) == 1
    datasets = {p.table.split(".")[0] for p in config.processors}
    assert len(proxy.sent("POST", "/queries")) == 2 * (len(datasets) + 1)  # + the calendar


def test_a_job_in_the_wrong_location_names_the_dataset_and_both_locations(
    emulator: str, project: str, demo_sqlite: SeedSummary, tmp_path: Path, capsys
):
    copy_demo(emulator, project, demo_sqlite, SPLIT)
    # BigQuery's words when a US job reads a us-west2 dataset (a `where` reading across, say)
    said = f"Not found: Dataset {project}:nba_raw was not found in location US"
    # on the job sent to US (nba_analytics' partitions), as BigQuery would answer it
    faults = [Fault("POST", "/queries", 404, "notFound", said, body_contains="nba_analytics.")]
    with fault_proxy(emulator, faults) as proxy:
        config = bigquery_config(tmp_path, project, proxy.url)
        code, _, err = invoke(["status", "--config", str(config), *RANGE], capsys)
    assert code == 2
    assert "dataset nba_raw is in us-west2, the job ran in US" in err
    assert said in err and len(err.strip().splitlines()) == 1
