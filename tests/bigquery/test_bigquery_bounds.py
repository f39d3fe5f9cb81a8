"""Every BigQuery call is bounded (warehouse.timeouts): a hung endpoint, a job that never
finishes and a refused port each end within their bound, in one line that says what timed out
or what was retried and until when, as a transient error (a verification tries again later)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import load_config
from core.coverage import reread
from core.errors import WarehouseError
from core.warehouse import open_warehouse
from tests.bigquery.conftest import RANGE, bigquery_config
from tests.bigquery.fault_proxy import Fault, fault_proxy, hung_endpoint
from tests.helpers import invoke

TIGHT = "  timeouts: {job: 5s, wait: 2s, api: 2s, connect: 2s}\n"


def one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_a_hung_endpoint_times_out_within_its_bound(tmp_path: Path, capsys):
    with hung_endpoint() as url:
        config = bigquery_config(tmp_path, "proj-hung", url, extra=TIGHT)
        began = time.monotonic()
        code, _, err = invoke(["status", "--config", str(config)], capsys)
        took = time.monotonic() - began
        assert code == 2
        assert took < 6, took  # 2s, plus the backoff that sees no room left
        assert "timed out: BigQuery did not answer a request within 2s (timeouts.api)" in err
        assert re.search(r"retried until \d\d:\d\d:\d\d \(\ds of at most 2s\)", one_line(err))

        # A verification read: transient, so the run waits and asks again.
        loaded = load_config(config)
        warehouse = open_warehouse(loaded)
        day = loaded.calendar.start
        with pytest.raises(WarehouseError) as raised:
            reread(loaded, warehouse, day, day, frozenset({"player_game_summary"}))
        assert raised.value.transient
        warehouse.close()


@pytest.mark.usefixtures("both")
def test_a_job_that_never_finishes_is_waited_for_within_its_bound(
    emulator: str, project: str, tmp_path: Path, capsys
):
    running = {"projectId": project, "jobId": "stuck", "location": "US"}
    faults = [
        Fault(
            "POST",
            "/queries",
            200,
            "",
            "",
            body={"kind": "bigquery#queryResponse", "jobReference": running, "jobComplete": False},
        ),
        Fault(
            "GET",
            "/queries/stuck",
            200,
            "",
            "",
            body={
                "kind": "bigquery#getQueryResultsResponse",
                "jobReference": running,
                "jobComplete": False,
            },
        ),
        Fault(
            "GET",
            "/jobs/stuck",
            200,
            "",
            "",
            body={
                "kind": "bigquery#job",
                "jobReference": running,
                "configuration": {"query": {"query": "SELECT 1"}},
                "status": {"state": "RUNNING"},
            },
        ),
    ]
    with fault_proxy(emulator, faults) as proxy:
        config = bigquery_config(tmp_path, project, proxy.url, extra=TIGHT)
        began = time.monotonic()
        code, _, err = invoke(["status", "--config", str(config), *RANGE], capsys)
        took = time.monotonic() - began
        jobs = proxy.sent("POST", "/queries")
        sent = jobs[0].body
    assert code == 2
    assert took < 10, took
    assert "timed out: the query job did not finish within 2s (timeouts.wait)" in one_line(err)
    assert sent["jobTimeoutMs"] == "5000"  # and BigQuery itself would stop it after 5s
    # a refresh is several jobs run at once (partition metadata per dataset, the calendar's
    # count): each one left waiting is cancelled, none twice
    assert proxy.count("POST", "/jobs/stuck/cancel") == len(jobs) > 1


def test_a_refused_port_fails_in_seconds_saying_what_was_retried(tmp_path: Path, capsys):
    config = bigquery_config(tmp_path, "proj-down", "http://127.0.0.1:9")  # the defaults
    began = time.monotonic()
    code, _, err = invoke(["status", "--config", str(config)], capsys)
    took = time.monotonic() - began
    assert code == 2
    assert took < 12, took  # never a backoff past the 10s window
    assert "BigQuery could not be reached" in one_line(err)
    said = r"connecting was retried until \d\d:\d\d:\d\d \(\d+s of at most 10s, timeouts.connect\)"
    assert re.search(said, err)


def test_timeouts_are_validated_with_file_and_line(tmp_path: Path, capsys):
    config = bigquery_config(
        tmp_path, "proj", "http://127.0.0.1:9", extra="  timeouts: {wait: soon}\n"
    )
    code, _, err = invoke(["status", "--config", str(config)], capsys)
    assert code == 2
    assert re.search(r"backfill.yaml:\d+: warehouse.timeouts.wait: .*duration", one_line(err))


@pytest.mark.usefixtures("both")
def test_a_verification_that_hangs_times_out_and_the_run_goes_on(
    emulator: str, project: str, tmp_path: Path
):
    """End to end: the first re-reads after attempts hang (a job that never finishes); each
    ends at its bound as a transient error, is asked again later, and the run completes."""
    stuck = {"projectId": project, "jobId": "stuck-verify", "location": "US"}
    faults = [
        Fault(
            "POST",
            "/queries",
            200,
            "",
            "",
            body={"kind": "bigquery#queryResponse", "jobReference": stuck, "jobComplete": False},
            times=2,
            body_contains='"verify"',
        ),
        Fault(
            "GET",
            "/queries/stuck-verify",
            200,
            "",
            "",
            body={
                "kind": "bigquery#getQueryResultsResponse",
                "jobReference": stuck,
                "jobComplete": False,
            },
        ),
        Fault(
            "GET",
            "/jobs/stuck-verify",
            200,
            "",
            "",
            body={
                "kind": "bigquery#job",
                "jobReference": stuck,
                "configuration": {"query": {"query": "SELECT 1"}},
                "status": {"state": "RUNNING"},
            },
        ),
    ]
    with fault_proxy(emulator, faults) as proxy:
        # Only the wait is tight: the rest of the run talks to an emulator on a busy machine.
        bounds = "  timeouts: {job: 60s, wait: 3s, api: 30s, connect: 10s}\n"
        config = bigquery_config(tmp_path / "hung", project, proxy.url, extra=bounds)
        day = "2024-01-15"
        result = subprocess.run(
            [sys.executable, "-m", "core", "run", day, day, "--headless", "--config", str(config)],
            cwd=config.parent,
            env={**os.environ, "BACKFILL_DEMO_DELAY": "0"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        hung = proxy.count("POST", "/jobs/stuck-verify/cancel")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert hung >= 2  # both hung re-reads were given up at their bound
    assert "timed out: the query job did not finish within 3s (timeouts.wait)" in out
    assert "trying again in 5s" in out
    assert "Traceback" not in out
