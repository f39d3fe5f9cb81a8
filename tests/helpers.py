"""Small real warehouses and configs for tests: SQLite files on disk, YAML written to tmp."""

from __future__ import annotations

import subprocess
import sys
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


_CLOSE_UNDER_READS = """
import sys, threading, time
from pathlib import Path
folder = Path(sys.argv[1])
{setup}
for _ in range(30):
    subject, stop = {opened}, threading.Event()
    def reads():
        while not stop.is_set():
            try:
                {read}
            except Exception:
                pass
    reader = threading.Thread(target=reads)
    reader.start()
    time.sleep(0.02)
    subject.close()  # from another thread, under the reader's queries
    time.sleep(0.01)
    stop.set()
    reader.join()
print("ok")
"""


def assert_close_under_reads_survives(folder: Path, setup: str, opened: str, read: str) -> None:
    """30 times, in a process of its own (a crash must not end pytest): `opened` (an
    expression, after `setup` ran with `folder` defined) is closed while another thread runs
    `read` (a statement on `subject`) in a loop. Closing a connection under a running query
    kills the process (rc -11)."""
    script = _CLOSE_UNDER_READS.format(setup=textwrap.dedent(setup), opened=opened, read=read)
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]
