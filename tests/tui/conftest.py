"""The bundled demo for dashboard tests: a seeded warehouse copied per test, fast jobs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.demo.seed import seed_demo_warehouse
from tests.tui.drive import ROOT, fault_free, stop_engine


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tui-seed") / "warehouse"
    seed_demo_warehouse(folder)
    return folder


@pytest.fixture
def demo(tmp_path: Path, seeded: Path, monkeypatch) -> Iterator[Path]:
    """The bundled demo with fast jobs: a short per-date delay, a 6 s stall timeout and no
    retries, so the injected hang leaves a failed cell within seconds (a job's first line can
    take 2 s to come on a loaded machine: Python starting, its imports). An engine a test left
    running (they outlive dashboards) is stopped afterwards."""
    text = (ROOT / "backfill.yaml").read_text()
    text = text.replace("stall_timeout: 20s", "stall_timeout: 6s").replace(
        "retries: 2", "retries: 0"
    )
    (tmp_path / "backfill.yaml").write_text(text)
    shutil.copytree(seeded, tmp_path / ".backfill" / "warehouse")
    monkeypatch.setenv("BACKFILL_DEMO_DELAY", "0.05")
    yield tmp_path / "backfill.yaml"
    stop_engine(tmp_path / "backfill.yaml")


@pytest.fixture
def slow_demo(demo: Path, monkeypatch) -> Path:
    """Jobs that take seconds per date, so there is time to cancel or quit while they run."""
    monkeypatch.setenv("BACKFILL_DEMO_DELAY", "3")
    return demo


@pytest.fixture
def steady_demo(demo: Path, monkeypatch) -> Path:
    """A second per date and no injected faults: a run that lasts long enough to watch."""
    return fault_free(demo, monkeypatch, 1)
