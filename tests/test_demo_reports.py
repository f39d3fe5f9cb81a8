"""`status --json` and `plan --json` on the bundled demo match the warehouse.

The expected numbers are computed here independently of core: rules read from the raw YAML,
rows counted with one query per table per date straight on the SQLite files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.demo.seed import seed_demo_warehouse
from tests.helpers import invoke

ROOT = Path(__file__).parents[1]
WINDOW = ("2024-01-15", "2024-01-28")


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo-seed") / "warehouse"
    seed_demo_warehouse(folder)
    return folder


@pytest.fixture
def demo(tmp_path: Path, seeded: Path) -> Path:
    """A copy of the bundled backfill.yaml with its own seeded warehouse beside it."""
    shutil.copy(ROOT / "backfill.yaml", tmp_path / "backfill.yaml")
    shutil.copytree(seeded, tmp_path / ".backfill" / "warehouse")
    return tmp_path / "backfill.yaml"


class Truth:
    """Cell states derived straight from the SQLite files and the raw YAML."""

    def __init__(self, config_path: Path) -> None:
        self.spec = yaml.safe_load(config_path.read_text())
        self.folder = config_path.parent / self.spec["warehouse"]["path"]
        self.conn = sqlite3.connect(":memory:")
        for file in self.folder.glob("*.sqlite"):
            self.conn.execute(f"ATTACH '{file}' AS {file.stem}")
        cal = self.spec["calendar"]
        self.games = dict(
            self.conn.execute(
                f"SELECT {cal['expected_dates']['date_column']}, COUNT(*) FROM "
                f"{cal['expected_dates']['table']} WHERE {cal['expected_dates']['where']} "
                f"GROUP BY 1"
            ).fetchall()
        )
        self.procs = {p["name"]: (ph, p) for ph in self.spec["phases"] for p in ph["processors"]}
        self._rows: dict[tuple[str, str], int] = {}

    def expected(self, start: str, end: str) -> list[str]:
        return sorted(d for d in self.games if start <= d <= end)

    def rows(self, name: str, day: str) -> int:
        if (name, day) not in self._rows:
            p = self.procs[name][1]
            self._rows[name, day] = self.conn.execute(
                f"SELECT COUNT(*) FROM {p['table']} WHERE {p['date_column']} = ?", (day,)
            ).fetchone()[0]
        return self._rows[name, day]

    def skipped(self, name: str, day: str) -> bool:
        n = self.procs[name][0].get("bootstrap_days", 0)
        d = date.fromisoformat(day)
        starts = [s["start"] for s in self.spec["calendar"]["seasons"] if s["start"] <= d]
        return bool(n and starts and (d - max(starts)).days < n)

    def state(self, name: str, day: str) -> str:
        if self.skipped(name, day):
            return "skipped"
        p = self.procs[name][1]
        need = p.get("min_rows", 1)
        if "min_rows_per_calendar_row" in p:
            need = max(need, math.ceil(p["min_rows_per_calendar_row"] * self.games[day]))
        if "min_share_of" in p:
            other = self.rows(p["min_share_of"]["processor"], day)
            need = max(need, math.ceil(p["min_share_of"]["share"] * other))
        rows = self.rows(name, day)
        return "complete" if rows >= need else "partial" if rows else "missing"


def test_status_json_matches_the_warehouse(demo: Path, capsys):
    truth = Truth(demo)
    code, out, err = invoke(["status", "--json", "--config", str(demo)], capsys)
    assert code == 0, err
    report = json.loads(out)
    expected = truth.expected("2021-10-19", "2024-11-29")
    assert report["range"] == {"start": "2021-10-19", "end": "2024-11-29"}
    assert report["expected_dates"] == len(expected) == 675
    assert [(s["name"], s["expected_dates"]) for s in report["seasons"]] == [
        ("2021-22", 215),
        ("2022-23", 214),
        ("2023-24", 209),
        ("2024-25", 37),
    ]
    for phase in report["phases"]:
        names = [p["name"] for p in phase["processors"]]
        states = {n: [truth.state(n, d) for d in expected] for n in names}
        for proc in phase["processors"]:
            kinds = ("complete", "partial", "missing", "skipped")
            want = {k: states[proc["name"]].count(k) for k in kinds}
            got = {k: proc[k] for k in kinds}
            assert got == want, proc["name"]
            assert (proc["expected"], proc["failed"]) == (len(expected), 0)
        all_complete = sum(
            all(states[n][i] == "complete" for n in names) for i in range(len(expected))
        )
        assert phase["complete_dates"] == all_complete, phase["name"]
        assert phase["expected_dates"] == len(expected)
    by_name = {ph["name"]: ph for ph in report["phases"]}
    assert by_name["raw"]["complete_dates"] == 675  # Phase 2 is whole
    assert 0.4 < by_name["analytics"]["coverage"] < 0.6  # Phase 3 about half
    assert by_name["precompute"]["complete_dates"] == 0  # Phase 4 empty
    assert by_name["precompute"]["skipped_dates"] == 4 * 14 - _off_days_in_bootstrap(truth)


def _off_days_in_bootstrap(truth: Truth) -> int:
    """Bootstrap windows are calendar days; only their game days count as skipped dates."""
    off = 0
    for season in truth.spec["calendar"]["seasons"]:
        for i in range(14):
            day = (season["start"] + timedelta(days=i)).isoformat()
            off += day not in truth.games or day > "2024-11-29"
    return off


def test_status_text_fits_100_columns(demo: Path, capsys):
    code, out, _ = invoke(["status", "--config", str(demo)], capsys)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "Phase 3 (Analytics)" in out and "BY SEASON" in out


def test_plan_json_for_the_test_window_matches_the_warehouse(demo: Path, capsys):
    truth = Truth(demo)
    code, out, err = invoke(["plan", *WINDOW, "--json", "--config", str(demo)], capsys)
    assert code == 0, err
    plan = json.loads(out)
    expected = truth.expected(*WINDOW)
    planned: dict[str, list[str]] = {}
    for item in plan["items"]:
        planned.setdefault(item["processor"], []).extend(item["dates"])
        proc = truth.procs[item["processor"]][1]
        own = {"{python}": sys.executable, "{config}": str(demo.resolve())}
        assert item["argv"] == [own.get(a, a) for a in proc["command"][:-4]] + [
            "--start-date",
            item["dates"][0],
            "--end-date",
            item["dates"][-1],
        ]
    for name, (phase, _) in truth.procs.items():
        if phase["name"] == "raw":
            assert name not in planned
            continue
        # Phase 2 is complete and the Phase 3 gate is reachable, so nothing is blocked here.
        want = [d for d in expected if truth.state(name, d) in ("missing", "partial")]
        assert sorted(planned.get(name, [])) == want, name
    assert planned["team_offense_game_summary"]  # the demo leaves gaps in the window
    assert all(len(v) == len(expected) for k, v in planned.items() if k in _PRECOMPUTE)
    _assert_dependency_order(plan, truth)


_PRECOMPUTE = {
    "team_defense_zone_analysis",
    "player_shot_zone_analysis",
    "player_composite_factors",
    "player_daily_cache",
    "ml_feature_store_v2",
}


def _assert_dependency_order(plan: dict[str, Any], truth: Truth) -> None:
    position = {}
    for i, item in enumerate(plan["items"]):
        for day in item["dates"]:
            position[item["processor"], day] = i
    for (name, day), i in position.items():
        for dep in truth.procs[name][1].get("depends_on", []):
            if (dep, day) in position:
                assert position[dep, day] < i, f"{name} {day} planned before {dep}"


def test_running_the_planned_commands_in_order_fills_the_window(demo: Path, capsys):
    """The plan's argv are exact: executed one by one from the config folder, they make every
    targeted cell complete."""
    code, out, _ = invoke(["plan", *WINDOW, "--json", "--config", str(demo)], capsys)
    assert code == 0
    items = json.loads(out)["items"]
    env = {**os.environ, "BACKFILL_DEMO_FAULTS": "0", "BACKFILL_DEMO_DELAY": "0"}
    env["PYTHONPATH"] = str(ROOT)
    for item in items:
        result = subprocess.run(
            item["argv"],
            cwd=demo.parent,
            env={**env, **item["env"]},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    code, out, _ = invoke(["plan", *WINDOW, "--json", "--config", str(demo)], capsys)
    after = json.loads(out)
    assert after["items"] == []
    assert after["next_action"].startswith("Nothing to do")
