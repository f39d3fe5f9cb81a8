"""How an embedded SQLite warehouse lies on disk.

A warehouse is a folder; dataset ``X`` is the file ``X.sqlite`` in it, attached under the schema
name ``X``. That way ``dataset.table`` names and ``where`` predicates read the same on SQLite as on
BigQuery. Dates are stored as ISO text (``YYYY-MM-DD``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

SUFFIX = ".sqlite"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Writers (job programs) and readers (status, the dashboard) run at the same time; a writer that
# finds the file busy waits this long before giving up.
BUSY_TIMEOUT_MS = 30_000


def dataset_file(folder: Path, dataset: str) -> Path:
    if not IDENTIFIER.match(dataset):
        raise ValueError(f"unsafe dataset name {dataset!r}")
    return folder / f"{dataset}{SUFFIX}"


def existing_datasets(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob(f"*{SUFFIX}") if IDENTIFIER.match(p.stem))


def connect(folder: Path, datasets: Iterable[str], *, readonly: bool) -> sqlite3.Connection:
    """One connection with every named dataset attached under its own name.

    Read-only connections never take a write lock, so a status refresh never blocks a job that is
    writing; with WAL each SELECT reads a consistent snapshot in its own short transaction.
    Datasets whose file does not exist are not attached when reading (their tables count as
    absent) and are created when writing.
    """
    conn = sqlite3.connect(":memory:", uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    for dataset in sorted(set(datasets)):
        path = dataset_file(folder, dataset)
        if readonly:
            if not path.exists():
                continue
            uri = f"{path.resolve().as_uri()}?mode=ro"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = path.resolve().as_uri()
        conn.execute("ATTACH DATABASE ? AS " + dataset, (uri,))
        if not readonly:
            conn.execute(f"PRAGMA {dataset}.journal_mode = WAL")
            conn.execute(f"PRAGMA {dataset}.synchronous = NORMAL")
    return conn


def attached(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA database_list")} - {"main", "temp"}


def table_exists(conn: sqlite3.Connection, dataset: str, table: str) -> bool:
    if dataset not in attached(conn):
        return False
    row = conn.execute(
        f"SELECT 1 FROM {dataset}.sqlite_master WHERE type IN ('table', 'view') AND name = ?",
        (table,),
    ).fetchone()
    return row is not None
