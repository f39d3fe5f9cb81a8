"""The journal's schema versions: journals made before versions existed are upgraded in place,
newer ones and files that are not whole databases are refused with one line naming the file."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from core.errors import UserError
from core.state import JOURNAL_FILE, Journal, migrations
from core.state.migrations import LATEST, Migration

# The schema of core/journal.py before schema versions, verbatim: what existing state dirs hold.
SCHEMA_BEFORE_VERSIONS = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,            -- running | finished | incomplete | stopped | abandoned
    range_start TEXT NOT NULL,
    range_end TEXT NOT NULL,
    request TEXT NOT NULL            -- JSON: phases, processors, reprocess
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    processor TEXT NOT NULL,
    phase TEXT NOT NULL,
    dates TEXT NOT NULL,             -- JSON list of ISO dates
    state TEXT NOT NULL,             -- pending | running | done | failed | blocked | cancelled
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,   -- attempts that count against retries
    not_before REAL NOT NULL DEFAULT 0,    -- retry backoff: no dispatch before this time
    reason TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS item_dates (
    item_id INTEGER NOT NULL REFERENCES items(id),
    processor TEXT NOT NULL,
    day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS item_dates_cell ON item_dates (processor, day);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    number INTEGER NOT NULL,
    argv TEXT NOT NULL,
    log_path TEXT NOT NULL,
    pid INTEGER,
    pgid INTEGER,
    started_at REAL NOT NULL,
    ended_at REAL,
    exit_code INTEGER,
    reason TEXT,                     -- exit | timeout | stall | cancelled | interrupted
    outcome TEXT,                    -- ok | failed | incomplete | interrupted | cancelled
    duration REAL,
    tail TEXT                        -- JSON list of the last log lines
);
CREATE TABLE IF NOT EXISTS coverage_cache (
    id INTEGER PRIMARY KEY CHECK (id = 1),   -- only the latest refresh is kept
    measured_at TEXT NOT NULL,
    range_start TEXT NOT NULL,
    range_end TEXT NOT NULL,
    payload TEXT NOT NULL            -- JSON: expected, rows, absent
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    run_id INTEGER,
    item_id INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


def old_journal(state_dir: Path) -> Path:
    """A journal as the code before versions left it: user_version 0, dates as JSON and in
    item_dates, one item with an attempt."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / JOURNAL_FILE
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(SCHEMA_BEFORE_VERSIONS)
    conn.execute(
        "INSERT INTO runs (id, created_at, status, range_start, range_end, request)"
        " VALUES (1, 1.0, 'running', '2024-01-01', '2024-01-10', ?)",
        (json.dumps({"phases": ["raw"]}),),
    )
    items = {
        10: ("box", ["2024-01-02", "2024-01-03", "2024-01-05"]),
        11: ("team", ["2024-01-04"]),
    }
    for item_id, (processor, days) in items.items():
        conn.execute(
            "INSERT INTO items (id, run_id, processor, phase, dates, state, priority, attempts,"
            " not_before, reason, updated_at) VALUES (?, 1, ?, 'raw', ?, 'pending', 3, 1, 5.0,"
            " 'retry', 2.0)",
            (item_id, processor, json.dumps(days)),
        )
    # Rows in another order than the dates: the order an item's dates come back in is the day's.
    for item_id, (processor, days) in reversed(items.items()):
        conn.executemany(
            "INSERT INTO item_dates (item_id, processor, day) VALUES (?, ?, ?)",
            [(item_id, processor, d) for d in reversed(days)],
        )
    conn.execute(
        "INSERT INTO attempts (item_id, number, argv, log_path, started_at, ended_at, outcome,"
        " duration, tail) VALUES (10, 1, '[\"job\"]', '/logs/a.log', 3.0, 4.0, 'ok', 1.0, '[]')"
    )
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
    return path


def columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def schema(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
    finally:
        conn.close()
    return {name: columns(path, name) for name in names}


def version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        user_version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return user_version
    finally:
        conn.close()


def test_a_journal_from_before_versions_is_upgraded_and_keeps_its_items(tmp_path):
    path = old_journal(tmp_path)

    journal = Journal(tmp_path)

    assert version(path) == LATEST == 5
    assert "dates" not in columns(path, "items") and "priority" not in columns(path, "items")
    run = journal.unfinished_run()
    assert run is not None and (run.id, run.start, run.request) == (
        1,
        date(2024, 1, 1),
        {"phases": ["raw"]},
    )
    items = journal.items(1)
    assert [(i.id, i.processor, i.dates) for i in items] == [
        (10, "box", (date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 5))),
        (11, "team", (date(2024, 1, 4),)),
    ]
    assert (items[0].state, items[0].attempts, items[0].not_before, items[0].reason) == (
        "pending",
        1,
        5.0,
        "retry",
    )
    assert journal.item(11) == items[1]
    assert journal.last_attempts(1)[10].outcome == "ok"
    assert journal.durations("box") == [(1.0, 3)]
    assert [a.item_id for a in journal.attempts_for_cell("box", date(2024, 1, 3))] == [10]
    # New rows go on from the old ones.
    assert journal.add_items(1, [("team", "raw", [date(2024, 1, 6)])]) == [12]
    journal.close()


def test_attempts_from_before_executors_are_local_ones(tmp_path):
    """Version 4 adds the executor per attempt: every earlier attempt was a local process, and
    says so, so that an engine resuming an older run adopts it with the local executor."""
    old_journal(tmp_path)
    journal = Journal(tmp_path)
    try:
        (attempt,) = journal.attempts_of_item(10)
        assert (attempt.executor, attempt.remote_ref, attempt.outcome) == ("local", None, "ok")
    finally:
        journal.close()


def test_a_version_4_journal_gains_known_empty_cells_and_keeps_its_runs(tmp_path):
    """Version 5 adds the known_empty table: a journal of version 4 (every run before it)
    starts with none marked, and can mark and undo them at once."""
    old_journal(tmp_path)
    Journal(tmp_path).close()
    path = tmp_path / JOURNAL_FILE
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE known_empty")  # what version 4 had: no such table
    conn.execute("PRAGMA user_version = 4")
    conn.close()

    journal = Journal(tmp_path)
    try:
        assert version(path) == 5
        assert columns(path, "known_empty") == ["processor", "day", "reason", "who", "at"]
        assert journal.known_empty(date(2024, 1, 1), date(2024, 1, 31)) == []
        assert [i.id for i in journal.items(1)] == [10, 11]  # the run is still there
        days = [date(2024, 1, 2), date(2024, 1, 3)]
        assert journal.mark_known_empty("box", days, "no games", "me", run_id=1) == 2
        assert journal.known_empty_cells(date(2024, 1, 1), date(2024, 1, 31)) == {
            ("box", date(2024, 1, 2)),
            ("box", date(2024, 1, 3)),
        }
        assert journal.unmark_known_empty("box", [date(2024, 1, 3)], "me", run_id=1) == 1
        assert journal.unmark_known_empty("box", [date(2024, 1, 9)], "me", run_id=1) == 0
        assert journal.known_empty_cells(date(2024, 1, 1), date(2024, 1, 31)) == {
            ("box", date(2024, 1, 2))
        }
    finally:
        journal.close()


def test_an_upgraded_journal_has_the_schema_of_a_new_one(tmp_path):
    old = old_journal(tmp_path / "old")
    Journal(tmp_path / "old").close()
    Journal(tmp_path / "new").close()
    assert schema(old) == schema(tmp_path / "new" / JOURNAL_FILE)
    assert version(tmp_path / "new" / JOURNAL_FILE) == LATEST


def test_a_journal_at_the_latest_version_is_opened_as_it_is(tmp_path):
    Journal(tmp_path).close()
    path = tmp_path / JOURNAL_FILE
    before = schema(path)
    journal = Journal(tmp_path)
    assert schema(path) == before and version(path) == LATEST
    journal.close()


def test_a_journal_newer_than_the_code_is_refused_untouched(tmp_path):
    Journal(tmp_path).close()
    path = tmp_path / JOURNAL_FILE
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    before = schema(path)

    with pytest.raises(UserError) as refused:
        Journal(tmp_path)

    assert str(refused.value) == (
        f"{path}: journal schema version 7 is newer than this backfill knows ({LATEST});"
        " use a newer backfill"
    )
    with pytest.raises(UserError):
        Journal.open_if_exists(tmp_path)
    assert version(path) == 7 and schema(path) == before


def damaged(path: Path, reason: str) -> str:
    return (
        f"{path} is damaged ({reason}); move it aside to start afresh — run history and logs in"
        f" {path.parent / 'logs'} stay"
    )


def test_a_file_that_is_not_a_database_is_refused_with_one_line(tmp_path):
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(b"not a journal at all\n" * 200)

    with pytest.raises(UserError) as refused:
        Journal(tmp_path)

    assert str(refused.value) == damaged(path, "file is not a database")
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_a_truncated_journal_is_refused_with_one_line(tmp_path):
    journal = Journal(tmp_path)
    journal.start_run_with_items(
        date(2024, 1, 1),
        date(2024, 1, 1),
        {},
        [("box", "raw", [date(2024, 1, 1)]) for _ in range(5000)],
    )
    journal.close()  # the last connection out checkpoints the WAL into the file
    path = tmp_path / JOURNAL_FILE
    assert not Path(f"{path}-wal").exists()
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)

    with pytest.raises(UserError) as refused:
        Journal(tmp_path)

    assert str(refused.value) == damaged(path, "database disk image is malformed")


def test_each_migration_commits_whole_or_not_at_all(tmp_path, monkeypatch):
    Journal(tmp_path).close()
    path = tmp_path / JOURNAL_FILE
    broken = Migration(
        LATEST + 1,
        "half of it fails",
        ("CREATE TABLE extra (x INTEGER)", "ALTER TABLE no_such_table ADD COLUMN y TEXT"),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    monkeypatch.setattr(migrations, "LATEST", LATEST + 1)

    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        Journal(tmp_path)

    assert version(path) == LATEST and "extra" not in schema(path)


def test_every_command_on_a_damaged_journal_says_so_in_one_line_and_exits_2(tmp_path, capsys):
    from tests.helpers import invoke, write_config, write_tables

    write_tables(tmp_path / "wh", {"ds.t": {date(2024, 1, 1): 1}}, date_column="d")
    config = write_config(
        tmp_path,
        """
        name: damaged
        warehouse: {kind: sqlite, path: wh}
        calendar: {start: 2024-01-01, end: 2024-01-02}
        phases:
          - name: p
            processors:
              - {name: t, table: ds.t, date_column: d, command: ["true"]}
        """,
    )
    state = tmp_path / ".backfill"
    state.mkdir()
    (state / JOURNAL_FILE).write_bytes(b"garbage, not a database " * 100)
    for args in (
        ["status"],
        ["logs", "t", "2024-01-01"],
        ["run", "2024-01-01", "2024-01-02", "--headless"],
        ["pause"],
    ):
        code, out, err = invoke([*args, "--config", str(config)], capsys)
        assert "Traceback" not in out + err, args
        if args == ["pause"]:  # no engine to talk to: the journal is not read
            assert code == 3, args
            continue
        assert code == 2, (args, out, err)
        assert "is damaged" in err and err.strip().count("\n") == 0, (args, err)
