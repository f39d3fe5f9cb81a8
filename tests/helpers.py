"""Small real warehouses and configs for tests: SQLite files on disk, YAML written to tmp."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path

from core.cli import run_cli
from core.warehouse import sqlite_layout
from tui.cli import cli


def day(text: str) -> date:
    return date.fromisoformat(text)


def span(start: str, end: str) -> list[date]:
    first, last = day(start), day(end)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def write_tables(
    folder: Path,
    tables: Mapping[str, Mapping[date, int]],
    *,
    date_column: str = "game_date",
    extra: Mapping[str, Mapping[date, list[dict[str, object]]]] | None = None,
) -> None:
    """Create `dataset.table` with `n` rows per date (one column: the date)."""
    datasets = {t.split(".")[0] for t in tables}
    conn = sqlite_layout.connect(folder, datasets, readonly=False)
    try:
        for table, per_date in tables.items():
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({date_column} TEXT, status INT)")
            conn.executemany(
                f"INSERT INTO {table} VALUES (?, 3)",
                [(d.isoformat(),) for d, n in per_date.items() for _ in range(n)],
            )
    finally:
        conn.close()


def write_config(folder: Path, text: str, name: str = "backfill.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def invoke(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the real CLI entry point in-process; returns (exit code, stdout, stderr)."""
    code = run_cli(cli.main, args)
    out = capsys.readouterr()
    return code, out.out, out.err
