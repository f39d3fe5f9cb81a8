"""Fixtures of the demo tests: one seeded warehouse per session, copied per test (copying is much
faster than seeding), and a copy whose test window was run through every processor."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.demo.processors import PROCESSORS
from core.demo.seed import SeedSummary, seed_demo_warehouse
from tests.demo.demo_helpers import WINDOW, run_job


def copy_warehouse(source: Path, target: Path) -> Path:
    # A reader's -shm index is rebuilt by the next opener; copying it could carry a stale one.
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*-shm"))
    return target


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeedSummary:
    return seed_demo_warehouse(tmp_path_factory.mktemp("seeded") / "warehouse")


@pytest.fixture
def warehouse(seeded: SeedSummary, tmp_path: Path) -> Path:
    return copy_warehouse(seeded.folder, tmp_path / "warehouse")


@pytest.fixture(scope="session")
def window_filled(seeded: SeedSummary, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded warehouse after every processor ran over the test window, faults off."""
    copy = copy_warehouse(seeded.folder, tmp_path_factory.mktemp("window") / "warehouse")
    for name in PROCESSORS:
        result = run_job(
            copy, name, "--start-date", WINDOW[0], "--end-date", WINDOW[1], faults=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
    return copy


@pytest.fixture
def window_warehouse(window_filled: Path, tmp_path: Path) -> Path:
    return copy_warehouse(window_filled, tmp_path / "warehouse")
