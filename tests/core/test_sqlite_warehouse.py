"""The SQLite warehouse keeps a read connection open per thread; what it reads must stay true
while jobs create, fill, drop and replace the files behind it."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from datetime import date
from pathlib import Path

import pytest

from core.errors import UserError
from core.warehouse.base import Scan
from core.warehouse.sqlite import SqliteWarehouse
from tests.helpers import assert_close_under_reads_survives, day, write_tables

OUT = Scan("out.job", "d")
BASE = Scan("src.base", "d")
JAN = (date(2024, 1, 1), date(2024, 1, 31))


def counts(warehouse: SqliteWarehouse, scan: Scan) -> dict[str, int] | None:
    """Rows per ISO date, or None when the table does not exist."""
    result = warehouse.rows_per_date([scan], *JAN)[scan]
    return {d.isoformat(): n for d, n in result.counts.items()} if result.table_exists else None


def test_a_kept_connection_sees_tables_and_files_that_appear_change_and_go(tmp_path: Path):
    folder = tmp_path / "wh"
    write_tables(folder, {"src.base": {day("2024-01-01"): 1}}, date_column="d")
    warehouse = SqliteWarehouse(folder)
    assert counts(warehouse, OUT) is None  # no out.sqlite yet

    write_tables(folder, {"out.job": {day("2024-01-02"): 2}}, date_column="d")  # a job's 1st run
    assert counts(warehouse, OUT) == {"2024-01-02": 2}
    write_tables(folder, {"out.job": {day("2024-01-03"): 1}}, date_column="d")  # and its 2nd
    assert counts(warehouse, OUT) == {"2024-01-02": 2, "2024-01-03": 1}

    # The folder re-seeded under a running dashboard: new files, same names.
    shutil.rmtree(folder)
    write_tables(folder, {"src.base": {day("2024-01-09"): 4}}, date_column="d")
    assert counts(warehouse, BASE) == {"2024-01-09": 4}
    assert counts(warehouse, OUT) is None  # its file is gone

    write_tables(folder, {"out.job": {day("2024-01-05"): 1}}, date_column="d")
    assert counts(warehouse, OUT) == {"2024-01-05": 1}
    conn = sqlite3.connect(folder / "out.sqlite")
    conn.execute("DROP TABLE job")
    conn.commit()
    conn.close()
    assert counts(warehouse, OUT) is None  # dropped behind a connection that knew it

    empty = SqliteWarehouse(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    assert counts(empty, OUT) is None  # a folder with no dataset file yet
    (tmp_path / "empty").rmdir()
    with pytest.raises(UserError, match="does not exist"):  # not an empty answer
        counts(empty, OUT)
    warehouse.close()


def test_each_thread_reads_with_its_own_connection_until_it_ends(tmp_path: Path):
    folder = tmp_path / "wh"
    write_tables(folder, {"out.job": {day("2024-01-02"): 1}}, date_column="d")
    warehouse = SqliteWarehouse(folder)
    seen: list[dict[str, int] | None] = []
    all_read = threading.Barrier(3)  # all three alive at once: none of theirs is closed yet

    def read() -> None:
        seen.append(counts(warehouse, OUT))
        all_read.wait(10)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [{"2024-01-02": 1}] * 3
    assert len(warehouse._readers) == 3
    # Those threads have ended: the next connection opened closes theirs.
    assert counts(warehouse, OUT) == {"2024-01-02": 1}
    assert [r.thread for r in warehouse._readers] == [threading.current_thread()]
    warehouse.close()
    assert warehouse._readers == []
    assert counts(warehouse, OUT) == {"2024-01-02": 1}  # usable again: a new connection
    warehouse.close()


def test_closing_the_warehouse_while_another_thread_reads_does_not_crash(tmp_path: Path):
    # A dashboard quitting while its coverage worker read: close() shut that thread's
    # connection under its query and the process died of a segmentation fault (rc -11).
    assert_close_under_reads_survives(
        tmp_path / "wh",
        setup="""
            from datetime import date
            from core.warehouse.base import Scan
            from core.warehouse.sqlite import SqliteWarehouse
            from tests.helpers import write_tables
            tables = {f"ds.t{i}": {date(2024, 1, d): 3 for d in range(1, 29)} for i in range(8)}
            write_tables(folder, tables, date_column="d")
            scans = [Scan(f"ds.t{i}", "d") for i in range(8)]
        """,
        opened="SqliteWarehouse(folder)",
        read="subject.rows_per_date(scans, date(2024, 1, 1), date(2024, 1, 28))",
    )
