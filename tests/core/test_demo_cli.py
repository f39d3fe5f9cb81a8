"""`backfill demo init` and the first-run seeding of the demo warehouse."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import invoke, write_config

ROOT = Path(__file__).parents[2]


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "backfill.yaml", tmp_path / "backfill.yaml")
    return tmp_path / "backfill.yaml"


def test_first_command_seeds_the_absent_demo_warehouse(fresh_demo: Path, capsys):
    code, out, err = invoke(["status", "--config", str(fresh_demo)], capsys)
    assert code == 0, err
    assert "Seeding the demo warehouse" in err
    steps = re.findall(r"^  (\d+)/(\d+) (.+) \(\d+s\)$", err, re.M)  # progress, step by step
    assert [int(n) for n, _, _ in steps] == list(range(1, int(steps[0][1]) + 1))
    assert any("nba_analytics.player_game_summary" in what for _, _, what in steps)
    assert "done: 675 game dates" in err
    assert "675 expected dates" in out
    assert (fresh_demo.parent / ".backfill" / "warehouse" / "nba_raw.sqlite").exists()
    code, _, err = invoke(["status", "--config", str(fresh_demo)], capsys)
    assert code == 0 and "Seeding" not in err  # only the first time


def test_demo_init_refuses_to_overwrite_without_force_and_reseeds_with_it(fresh_demo, capsys):
    assert invoke(["demo", "init", "--config", str(fresh_demo)], capsys)[0] == 0
    marker = fresh_demo.parent / ".backfill" / "warehouse" / "scratch.txt"
    marker.write_text("left by an operator")
    code, _, err = invoke(["demo", "init", "--config", str(fresh_demo)], capsys)
    assert code == 2 and "already exists; `backfill demo init --force` reseeds it" in err
    assert marker.exists()
    code, out, _ = invoke(["demo", "init", "--force", "--config", str(fresh_demo)], capsys)
    assert code == 0 and "675 game dates" in out
    assert not marker.exists()


def test_demo_init_never_touches_a_warehouse_that_is_not_the_demo(tmp_path, capsys):
    path = write_config(
        tmp_path,
        """
        name: real
        warehouse: {kind: sqlite, path: wh}
        calendar: {start: 2024-01-01, end: 2024-01-02}
        phases: [{name: p, processors: [{name: t, table: ds.t, date_column: d}]}]
        """,
    )
    code, _, err = invoke(["demo", "init", "--force", "--config", str(path)], capsys)
    assert code == 2 and "not a demo warehouse" in err
    assert not (tmp_path / "wh").exists()
