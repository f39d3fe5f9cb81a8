"""Every job capped, labelled and signed: maximum_bytes_billed, labels (app, purpose, run id)
and backfill's user agent, read off the wire (the emulator keeps none of them on its jobs); jobs
run in billing_project when given; a cap under BigQuery's 10 MiB minimum is refused; a
quota_project and an impersonated account reach the credentials the client calls with."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.config import load_config
from core.coverage import reread
from core.warehouse import open_warehouse
from tests.bigquery.conftest import RANGE, bigquery_config
from tests.bigquery.fault_proxy import fault_proxy
from tests.helpers import invoke


def test_jobs_carry_the_cap_labels_and_user_agent(both, emulator, project, tmp_path, capsys):
    with fault_proxy(emulator, []) as proxy:
        bq = bigquery_config(
            tmp_path, project, proxy.url, extra="  maximum_bytes_billed: 104857600\n"
        )
        code, _, err = invoke(["status", "--config", str(bq), *RANGE], capsys)
        assert code == 0, err
        code, _, err = invoke(["preflight", "--config", str(bq), "--quick"], capsys)
        config = load_config(bq)
        warehouse = open_warehouse(config)
        warehouse.run_id = 7
        day = config.calendar.start
        reread(config, warehouse, day, day, frozenset({"player_game_summary"}))
        warehouse.close()
        jobs = proxy.sent("POST", "/queries")
    purposes = [job.body["labels"].get("purpose") for job in jobs]
    assert {"coverage", "preflight"} <= set(purposes) and purposes[-1] == "verify"
    for job in jobs:
        assert job.body["maximumBytesBilled"] == "104857600"
        assert job.body["labels"]["app"] == "backfill"
        assert re.search(r"backfill/\d+\.\d+", job.headers["user-agent"])
    assert jobs[-1].body["labels"]["run_id"] == "7"
    assert all("run_id" not in job.body["labels"] for job in jobs[:-1])


def test_jobs_run_in_the_billing_project(both, emulator, project, tmp_path, capsys):
    with fault_proxy(emulator, []) as proxy:
        bq = bigquery_config(
            tmp_path, project, proxy.url, extra="  billing_project: the-billing-one\n"
        )
        on_billing = invoke(["status", "--config", str(bq), "--json", *RANGE], capsys)
        jobs = proxy.sent("POST", "/queries")
    assert on_billing[0] == 0, on_billing[2]
    assert jobs and all("/projects/the-billing-one/queries" in job.path for job in jobs)
    assert f"`{project}.nba_raw." in jobs[0].body["query"]  # the tables stay where they are


def test_a_cap_below_the_billing_minimum_is_refused_with_file_and_line(tmp_path: Path, capsys):
    config = bigquery_config(
        tmp_path, "proj", "http://127.0.0.1:9", extra="  maximum_bytes_billed: 1000000\n"
    )
    code, _, err = invoke(["status", "--config", str(config)], capsys)
    assert code == 2
    assert re.search(r"backfill.yaml:\d+: warehouse.maximum_bytes_billed: .*10485760", err), err
    assert len(err.strip().splitlines()) == 1


def test_a_quota_project_against_an_emulator_is_no_crash(both, emulator, project, tmp_path, capsys):
    # Anonymous credentials carry no quota project (google-cloud-core's with_quota_project is
    # missing on them): the emulator has no quotas, so it is left out there.
    bq = bigquery_config(tmp_path, project, emulator, extra="  quota_project: the-quota-one\n")
    code, _, err = invoke(["status", "--config", str(bq), *RANGE], capsys)
    assert code == 0, err


def test_on_real_credentials_calls_act_as_the_account_under_the_quota_project(
    tmp_path, monkeypatch
):
    # A service-account key file of our own making: Application Default Credentials load it
    # without a network call, as they load a real one.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth import impersonated_credentials

    from core.warehouse.bigquery import make_client
    from core.warehouse.bigquery.client import EMULATOR_VARIABLE

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "proj",
                "private_key_id": "1",
                "private_key": pem,
                "client_email": "runner@proj.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.delenv(EMULATOR_VARIABLE, raising=False)
    target = "backfill@proj.iam.gserviceaccount.com"
    client = make_client("proj", quota_project="the-quota-one", impersonate=target)
    try:
        credentials = client._credentials
        assert isinstance(credentials, impersonated_credentials.Credentials)
        assert credentials.service_account_email == target
        assert credentials.quota_project_id == "the-quota-one"
    finally:
        client.close()
