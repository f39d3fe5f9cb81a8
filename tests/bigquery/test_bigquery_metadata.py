"""Refreshes from partition metadata, incremental within a process; a preflight of free dry runs
that names each broken table with its reason.

The emulator serves INFORMATION_SCHEMA.PARTITIONS with live row counts, but every partition of a
table carries the table's own last-modified time, which moves on metadata changes only (not on
inserts or DML). So here a table's change is marked by patching its description, and "only the
changed partitions" shows as "only the partitions of the changed table"; which partitions of a
table are re-read is tested on the cache itself, with the rows BigQuery would return.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from google.cloud import bigquery

from core.config import load_config
from core.coverage import measure, reread
from core.demo.seed import SeedSummary
from core.warehouse import open_warehouse
from core.warehouse.bigquery import BigQueryWarehouse
from core.warehouse.bigquery.partitions import Partitions, Request
from tests.bigquery.conftest import COPIED_UNTIL, SEASON_START, bigquery_config, copy_demo
from tests.bigquery.fault_proxy import Fault, fault_proxy
from tests.helpers import invoke

PGS = "nba_analytics.player_game_summary"


def params(job: Any) -> dict[str, Any]:
    """A query request's parameters by name, as sent (arrays as lists, NULL as None)."""
    found: dict[str, Any] = {}
    for p in job.body.get("queryParameters", []):
        value = p.get("parameterValue") or {}
        if p["parameterType"]["type"] == "ARRAY":
            found[p["name"]] = [v.get("value") for v in value.get("arrayValues") or []]
        else:
            found[p["name"]] = value.get("value")
    return found


def touch(client: bigquery.Client, project: str, table: str) -> None:
    """What moves a partition's last-modified time on the emulator (a write does on BigQuery)."""
    got = client.get_table(f"{project}.{table}")
    got.description = f"touched {datetime.now()}"
    client.update_table(got, ["description"])


def test_an_incremental_refresh_rereads_only_what_changed(both, emulator, project, tmp_path):
    client = BigQueryWarehouse(project, api_endpoint=emulator).client()
    with fault_proxy(emulator, []) as proxy:
        config = load_config(bigquery_config(tmp_path / "proxied", project, proxy.url))
        warehouse = open_warehouse(config)
        assert isinstance(warehouse, BigQueryWarehouse)
        warehouse.partitions.overlap = timedelta(0)  # the emulator's clock is the test's
        first = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
        full = dict(warehouse.partitions.returned)
        assert full["nba_analytics"] > 100  # every partition of the dataset's five tables

        second = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
        assert set(warehouse.partitions.returned.values()) == {0}  # nothing changed
        assert second.rows == first.rows
        sent = [r for r in proxy.sent("POST", "/queries") if "PARTITIONS" in r.body["query"]]
        latest = {r.body["query"].split("`")[1].split(".")[1]: params(r) for r in sent[-4:]}
        # (Phase 4 is empty in the demo: its datasets, holding no partition, are read whole)
        for dataset in ("nba_raw", "nba_analytics"):
            assert latest[dataset]["unread"] == [] and latest[dataset]["since"]

        day = max(first.rows["player_game_summary"])
        client.query_and_wait(  # the day's rows written twice: a partial re-run, say
            f"INSERT INTO `{project}.{PGS}` SELECT * FROM `{project}.{PGS}` WHERE game_date = @day",
            job_config=bigquery.QueryJobConfig(
                query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", day)]
            ),
        )
        touch(client, project, PGS)
        third = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
        pgs_partitions = len(first.rows["player_game_summary"])
        assert warehouse.partitions.returned["nba_analytics"] == pgs_partitions
        assert {d: n for d, n in warehouse.partitions.returned.items() if n} == {
            "nba_analytics": pgs_partitions
        }
        assert third.rows["player_game_summary"][day] == 2 * first.rows["player_game_summary"][day]
        counted = reread(config, warehouse, SEASON_START, COPIED_UNTIL, frozenset(third.rows))
        assert {k: dict(v) for k, v in counted.rows.items()} == {
            k: dict(v) for k, v in third.rows.items()
        }
        warehouse.close()


def test_a_delete_the_metadata_misses_is_seen_once_a_verification_counts(both, emulator, project):
    """BigQuery's last_modified_time may not move on a DELETE (its documentation says so); the
    emulator's never does, which makes it the case to test."""
    _, bq = both
    config = load_config(bq)
    warehouse = open_warehouse(config)
    assert isinstance(warehouse, BigQueryWarehouse)
    warehouse.partitions.overlap = timedelta(0)
    first = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
    day = max(first.rows["player_game_summary"])
    warehouse.query(
        f"DELETE FROM `{project}.{PGS}` WHERE game_date = @day",
        [bigquery.ScalarQueryParameter("day", "DATE", day)],
        doing="deleting a date",
    )
    stale = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
    assert stale.rows["player_game_summary"][day] > 0  # the metadata's lag, as documented
    verified = reread(config, warehouse, day, day, frozenset({"player_game_summary"}))
    assert verified.rows["player_game_summary"] == {}  # verification counts the rows
    after = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
    assert day not in after.rows["player_game_summary"]

    warehouse.partitions.full_every = timedelta(0)  # a full read (every 10 minutes) also sees it
    warehouse.query(
        f"DELETE FROM `{project}.{PGS}` WHERE game_date = @day",
        [bigquery.ScalarQueryParameter("day", "DATE", day - timedelta(days=1))],
        doing="deleting another date",
    )
    again = measure(config, warehouse, SEASON_START, COPIED_UNTIL)
    assert day - timedelta(days=1) not in again.rows["player_game_summary"]
    warehouse.close()


def test_the_cache_replaces_only_the_partitions_bigquery_returns():
    partitions = Partitions(overlap=timedelta(seconds=5))
    t0 = datetime(2024, 2, 1, 12, tzinfo=UTC)
    first = partitions.request("ds", ["ds.a", "ds.b"])
    assert (first.unread, first.since) == (("a", "b"), None)
    partitions.absorb(
        first,
        [
            ("a", "20240101", 10, t0),
            ("a", "20240102", 11, t0),
            ("a", "__NULL__", 3, t0),  # rows without a date: no date's
            ("b", "20240101", 7, t0 - timedelta(hours=1)),
        ],
    )
    later = partitions.request("ds", ["ds.a", "ds.b", "ds.c"])
    assert later == Request("ds", ("a", "b", "c"), ("c",), t0 - timedelta(seconds=5))
    partitions.absorb(later, [("a", "20240102", 30, t0 + timedelta(minutes=1))])
    span = (date(2024, 1, 1), date(2024, 1, 31))
    assert partitions.counts("ds.a", *span) == {date(2024, 1, 1): 10, date(2024, 1, 2): 30}
    assert partitions.counts("ds.b", *span) == {date(2024, 1, 1): 7}
    assert partitions.counts("ds.c", *span) == {}
    assert partitions.request("ds", ["ds.a"]).since == t0 + timedelta(minutes=1, seconds=-5)
    partitions.counted("ds.a", date(2024, 1, 2), date(2024, 1, 2), {})  # a verification
    assert partitions.counts("ds.a", *span) == {date(2024, 1, 1): 10}


def test_the_preflight_names_each_broken_table_with_its_reason(
    emulator: str, project: str, demo_sqlite: SeedSummary, tmp_path: Path, capsys
):
    copy_demo(emulator, project, demo_sqlite, {"nba_raw": "us-west2"})
    client = BigQueryWarehouse(project, api_endpoint=emulator).client()

    def recreate(table: str, fields: list[tuple[str, str]], partitioned_on: str) -> None:
        client.delete_table(f"{project}.{table}")
        made = bigquery.Table(
            f"{project}.{table}", schema=[bigquery.SchemaField(n, k) for n, k in fields]
        )
        made.time_partitioning = bigquery.TimePartitioning(field=partitioned_on)
        client.create_table(made)

    recreate(
        "nba_analytics.team_offense_game_summary",
        [("game_date", "DATE"), ("loaded_on", "DATE")],
        "loaded_on",
    )
    recreate("nba_analytics.team_defense_game_summary", [("game_date", "TIMESTAMP")], "game_date")
    expiring = client.get_table(f"{project}.nba_precompute.player_daily_cache")
    expiring.time_partitioning = bigquery.TimePartitioning(
        field="cache_date", expiration_ms=30 * 86_400_000
    )
    client.update_table(expiring, ["time_partitioning"])
    # BigQuery's words for a table that requires a filter on its partition column (the emulator
    # keeps no require_partition_filter), on the dry run of that table only
    refused = (
        f"Cannot query over table '{project}.nba_analytics.upcoming_team_game_context' without a "
        "filter over column(s) 'game_date' that can be used for partition elimination"
    )
    faults = [
        Fault("POST", "/jobs", 400, "invalidQuery", refused, body_contains="upcoming_team_game")
    ]
    with fault_proxy(emulator, faults) as proxy:
        bq = bigquery_config(tmp_path, project, proxy.url)
        text = bq.read_text().replace(  # the calendar's `where` reads a US dataset
            'where: "game_status = 3"',
            'where: "game_date IN (SELECT game_date FROM nba_analytics.player_game_summary)"',
        )
        bq.write_text(text)
        code, out, err = invoke(["preflight", "--config", str(bq), "--quick", "--json"], capsys)
        billed = proxy.sent("POST", "/queries")
    assert code == 1, err
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    tables = checks["warehouse reachable, tables present"]
    assert tables["status"] == "fail"
    named = dict(part.split(": ", 1) for part in tables["detail"].split("; "))
    assert named.keys() == {
        "team_offense_game_summary (nba_analytics.team_offense_game_summary)",
        "team_defense_game_summary (nba_analytics.team_defense_game_summary)",
        "upcoming_team_game_context (nba_analytics.upcoming_team_game_context)",
        "calendar (nba_raw.nbac_schedule)",
    }
    reasons = list(named.values())
    assert reasons[0].startswith("partitioned on loaded_on, not on its date_column game_date")
    assert reasons[1] == "wrong column type: game_date is TIMESTAMP, not DATE"
    assert reasons[2].startswith("missing partition filter") and refused in reasons[2]
    assert reasons[3].startswith("location mismatch: its `where` reads nba_analytics (US)")
    assert "nba_raw is in us-west2" in reasons[3]

    expiry = checks["partition expiration keeps the range"]
    assert expiry["status"] == "warn"
    kept = (datetime.now(UTC) - timedelta(days=30)).date()
    assert expiry["detail"].endswith(
        f"player_daily_cache (nba_precompute.player_daily_cache): partitions of dates before "
        f"{kept} are deleted"
    )
    # The tables were looked at by metadata and dry runs: the jobs billed are the configured
    # checks' (coverage, `query`), none a count of the built-in check's.
    assert billed and not [
        r
        for r in billed
        if r.body["labels"]["purpose"] == "preflight" and "GROUP BY" in r.body["query"]
    ]
    dry_runs = proxy.sent("POST", "/jobs")
    assert dry_runs and all(r.body["configuration"]["dryRun"] for r in dry_runs)
