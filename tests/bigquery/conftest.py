"""Fixtures of the BigQuery tests: one emulator per session, one project per test (the emulator
serves any project id, so tests never see each other's tables), the bundled demo on it."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from core.demo import bigquery_io
from core.demo.seed import SeedSummary, seed_demo_warehouse
from core.warehouse.bigquery import BigQueryWarehouse
from tests.bigquery.emulator import REQUIRED_VARIABLE, bqemulator, missing_reason
from tests.helpers import invoke

ROOT = Path(__file__).parents[2]
#: the emulator holds the 2023-24 season up to here: enough history for Phase 4's windows
SEASON_START, COPIED_UNTIL = date(2023, 10, 24), date(2024, 1, 31)


@pytest.fixture(scope="session")
def emulator() -> Iterator[str]:
    reason = missing_reason()
    if reason is not None:
        if os.environ.get(REQUIRED_VARIABLE):
            pytest.fail(f"the BigQuery emulator is required here ({REQUIRED_VARIABLE}): {reason}")
        pytest.skip(f"no BigQuery emulator: {reason}")
    with bqemulator("backfill-tests") as url:
        yield url


@pytest.fixture
def project() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def demo_sqlite(tmp_path_factory: pytest.TempPathFactory) -> SeedSummary:
    return seed_demo_warehouse(tmp_path_factory.mktemp("bq-seed") / "warehouse")


def bigquery_config(folder: Path, project: str, url: str, *, extra: str = "") -> Path:
    """The bundled demo's backfill.yaml with its warehouse block pointed at a project of the
    emulator: nothing else changes (demo jobs read the warehouse from `--config {config}`)."""
    text = re.sub(
        r"^warehouse:\n(?:  .*\n)+",
        f"warehouse:\n  kind: bigquery\n  project: {project}\n  api_endpoint: {url}\n"
        f"  demo: true\n{extra}",
        (ROOT / "backfill.yaml").read_text(),
        count=1,
        flags=re.MULTILINE,
    )
    assert "kind: sqlite" not in text
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "backfill.yaml"
    path.write_text(text)
    return path


RANGE = ["--start", SEASON_START.isoformat(), "--end", COPIED_UNTIL.isoformat()]
#: what names the place, not what it holds
WHERE_KEYS = ("name", "config", "warehouse", "measured_at", "refresh_bytes")


def sqlite_config(folder: Path, seeded: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "backfill.yaml", folder / "backfill.yaml")
    shutil.copytree(seeded, folder / ".backfill" / "warehouse")
    return folder / "backfill.yaml"


def copy_demo(
    emulator: str, project: str, demo_sqlite: SeedSummary, locations: dict[str, str]
) -> None:
    """The demo's rows of the 2023-24 season to January, in datasets created in `locations`
    first (the rest in US)."""
    from google.cloud import bigquery

    warehouse = BigQueryWarehouse(project, api_endpoint=emulator)
    for dataset, location in locations.items():
        made = bigquery.Dataset(f"{project}.{dataset}")
        made.location = location
        warehouse.client().create_dataset(made)
    bigquery_io.copy_from_sqlite(
        warehouse, demo_sqlite.folder, start=SEASON_START, end=COPIED_UNTIL
    )
    warehouse.close()


@pytest.fixture
def both(
    emulator: str, project: str, demo_sqlite: SeedSummary, tmp_path: Path
) -> tuple[Path, Path]:
    """(SQLite config, BigQuery config) over the same rows: the 2023-24 season to January."""
    bq = bigquery_config(tmp_path / "bq", project, emulator)
    copy_demo(emulator, project, demo_sqlite, {})
    return sqlite_config(tmp_path / "sqlite", demo_sqlite.folder), bq


def json_of(capsys, *args: str) -> dict[str, Any]:
    code, out, err = invoke(list(args), capsys)
    assert code == 0, err
    data = json.loads(out)
    return {k: v for k, v in data.items() if k not in WHERE_KEYS}
