"""A headless run whose demo jobs read and write the emulator ends where the same run on SQLite
ends: the same status, fault for fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.demo.seed import SeedSummary
from tests.bigquery.conftest import RANGE, bigquery_config, json_of
from tests.bigquery.fault_proxy import fault_proxy
from tests.helpers import invoke

RUN = ["2024-01-15", "2024-01-17"]


def headless(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", "run", *RUN, "--headless", "--config", str(config)],
        cwd=config.parent,
        env={**os.environ, "BACKFILL_DEMO_DELAY": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_headless_run_on_bigquery_ends_as_on_sqlite(both, emulator, capsys):
    lite, bq = both
    original = bq.read_text()
    with fault_proxy(emulator, []) as proxy:
        bq.write_text(original.replace(f"api_endpoint: {emulator}", f"api_endpoint: {proxy.url}"))
        for config in (lite, bq):
            result = headless(config)
            assert result.returncode == 0, result.stdout + result.stderr
            # The injected quota error hit the first attempt and the retry filled the date.
            assert "Quota exceeded" in result.stdout
            assert "upcoming_player_game_context 2024-01-16" in result.stdout
        labels = [job.body["labels"] for job in proxy.sent("POST", "/queries")]
    bq.write_text(original)
    # The engine's verifications name its run (run 1 of this state dir); the demo jobs' do not.
    verifies = [label for label in labels if label.get("purpose") == "verify"]
    assert verifies and all(label["run_id"] == "1" for label in verifies)

    window = ["--start", RUN[0], "--end", RUN[1]]
    after = json_of(capsys, "status", "--config", str(bq), "--json", *window)
    for phase in after["phases"]:
        assert phase["complete_dates"] == phase["expected_dates"] > 0, phase["name"]
    assert after == json_of(capsys, "status", "--config", str(lite), "--json", *window)
    # Beyond the window nothing moved, on either side.
    everything = [json_of(capsys, "status", "--config", str(c), "--json", *RANGE) for c in both]
    assert everything[0] == everything[1]

    code, out, _ = invoke(["logs", "player_game_summary", RUN[0], "--config", str(bq)], capsys)
    assert code == 0 and "✓ Success" in out


def test_demo_init_seeds_an_emulator_and_nothing_else(
    emulator: str, project: str, tmp_path: Path, capsys, demo_sqlite: SeedSummary
):
    config = bigquery_config(tmp_path, project, emulator)
    code, out, err = invoke(["demo", "init", "--config", str(config)], capsys)
    assert code == 0, err
    assert f"Seeded {project}" in out
    data = json.loads(invoke(["status", "--config", str(config), "--json"], capsys)[1])
    assert data["expected_dates"] == demo_sqlite.game_dates
    raw = next(p for p in data["phases"] if p["name"] == "raw")
    assert raw["complete_dates"] == raw["expected_dates"]

    code, _, err = invoke(["demo", "init", "--config", str(config)], capsys)
    assert code == 2 and "already exist" in err and "--force" in err

    real = tmp_path / "real"
    text = config.read_text().replace(f"  api_endpoint: {emulator}\n", "")
    real.mkdir()
    (real / "backfill.yaml").write_text(text)
    code, _, err = invoke(["demo", "init", "--config", str(real / "backfill.yaml")], capsys)
    assert code == 2 and "only into an emulator" in err
