"""The journal: bulk items and their dates, last attempts, and one connection per thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from core.state import Journal
from core.state.journal import CLOSE_WAIT_S
from tests.helpers import assert_close_under_reads_survives

T = TypeVar("T")
D1, D2, D3, D4 = (date(2024, 1, d) for d in range(1, 5))


@pytest.fixture
def journal(tmp_path):
    journal = Journal(tmp_path)
    yield journal
    journal.close()


def in_other_thread(fn: Callable[[], T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=30)


def count(journal: Journal, table: str) -> int:
    n: int = journal.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return n


def test_add_items_returns_ids_in_the_order_given_with_their_dates(journal):
    run_id = journal.start_run(D1, D4, {"phases": ["raw"]})
    first = journal.add_items(run_id, [("box", "raw", [D1, D2])])
    ids = journal.add_items(
        run_id, [("team", "raw", [D3]), ("box", "raw", [D3, D4]), ("team", "analytics", [D1])]
    )

    assert len(first) == 1 and ids == [first[0] + 1, first[0] + 2, first[0] + 3]
    assert [(i.id, i.processor, i.phase, i.dates, i.state) for i in journal.items(run_id)] == [
        (first[0], "box", "raw", (D1, D2), "pending"),
        (ids[0], "team", "raw", (D3,), "pending"),
        (ids[1], "box", "raw", (D3, D4), "pending"),
        (ids[2], "team", "analytics", (D1,), "pending"),
    ]
    assert journal.item(ids[1]).dates == (D3, D4)
    assert journal.add_items(run_id, []) == []
    # item_dates is what cell lookups read
    assert journal.attempts_for_cell("box", D4) == []
    attempt = journal.start_attempt(ids[1], 1, ["job"], Path("/logs/x.log"))
    assert journal.attempts_for_cell("box", D4) == [attempt]


def test_items_of_another_run_are_not_mixed_in(journal):
    one, (a,) = journal.start_run_with_items(D1, D2, {}, [("box", "raw", [D1])])
    two, (b,) = journal.start_run_with_items(D1, D2, {}, [("box", "raw", [D1, D2])])
    assert [i.id for i in journal.items(one)] == [a]
    assert [(i.id, i.dates) for i in journal.items(two)] == [(b, (D1, D2))]
    assert journal.items(999) == []


def test_start_run_with_items_writes_the_run_and_its_plan_in_one_commit(journal):
    days = [D1 + timedelta(days=n) for n in range(3)]
    run_id, ids = journal.start_run_with_items(
        D1, days[-1], {"phases": ["raw"]}, [("box", "raw", [d]) for d in days]
    )
    assert journal.unfinished_run().id == run_id
    assert [(i.id, i.dates) for i in journal.items(run_id)] == [
        (item_id, (d,)) for item_id, d in zip(ids, days, strict=True)
    ]
    assert [kind for _, _, kind, _ in journal.events(run_id)] == ["run_started"]


def test_a_plan_that_fails_half_way_leaves_no_run(journal):
    plan = [("box", "raw", [D1]), ("box", "raw", ["not a date"])]  # fails on the second item
    with pytest.raises(AttributeError):
        journal.start_run_with_items(D1, D2, {}, plan)

    assert journal.unfinished_run() is None and journal.runs() == []
    assert (count(journal, "items"), count(journal, "item_dates"), count(journal, "events")) == (
        0,
        0,
        0,
    )
    assert not journal.conn.in_transaction
    run_id, ids = journal.start_run_with_items(D1, D2, {}, [("box", "raw", [D1])])
    assert journal.items(run_id)[0].id == ids[0]


def test_last_attempts_has_each_items_latest_attempt_of_that_run_only(journal):
    run_id, (a, b, _) = journal.start_run_with_items(
        D1, D2, {}, [("box", "raw", [D1]), ("box", "raw", [D2]), ("team", "raw", [D1])]
    )
    other, (c,) = journal.start_run_with_items(D1, D2, {}, [("box", "raw", [D1])])
    for number in (1, 2, 3):
        attempt = journal.start_attempt(a, number, ["job"], Path(f"/logs/a{number}.log"))
        last_a = journal.end_attempt(
            attempt, exit_code=0, reason="exit", outcome="ok", duration=2.0, tail=[str(number)]
        )
    last_b = journal.start_attempt(b, 1, ["job"], Path("/logs/b.log"))
    journal.start_attempt(c, 1, ["job"], Path("/logs/c.log"))

    assert journal.last_attempts(run_id) == {a: last_a, b: last_b}  # the third has none
    assert list(journal.last_attempts(other)) == [c]
    assert [x.number for x in journal.attempts_of_item(a)] == [1, 2, 3]
    assert last_a.number == 3 and last_a.tail == ("3",)
    assert journal.open_attempts(run_id) == [last_b]


def test_an_attempt_keeps_its_executor_and_remote_reference(journal):
    """Written before the attempt starts, read back by every reader (a new engine included)."""
    run_id, (a, b) = journal.start_run_with_items(
        D1, D2, {}, [("box", "raw", [D1]), ("box", "raw", [D2])]
    )
    remote = journal.start_attempt(
        a, 1, ["job"], Path("/logs/a.log"), executor="ray", remote_ref="backfill-7-1"
    )
    local = journal.start_attempt(b, 1, ["job"], Path("/logs/b.log"))
    assert (remote.executor, remote.remote_ref, remote.where) == (
        "ray",
        "backfill-7-1",
        "ray backfill-7-1",
    )
    assert (local.executor, local.remote_ref, local.where) == ("local", None, "local")
    reopened = Journal(journal.path.parent)
    try:
        assert reopened.open_attempts(run_id) == [remote, local]
        ended = journal.end_attempt(
            remote, exit_code=0, reason="exit", outcome="ok", duration=1.0, tail=[]
        )
        assert reopened.attempts_of_item(a) == [ended]
        assert (ended.executor, ended.remote_ref) == ("ray", "backfill-7-1")
    finally:
        reopened.close()


def test_update_item_rewrites_the_dates_of_its_cells(journal):
    _, (item_id,) = journal.start_run_with_items(D1, D4, {}, [("box", "raw", [D1, D2, D3])])
    attempt = journal.start_attempt(item_id, 1, ["job"], Path("/logs/a.log"))
    journal.end_attempt(attempt, exit_code=1, reason="exit", outcome="failed", duration=1, tail=[])

    journal.update_item(item_id, dates=(D2, D3), attempts=1, not_before=7.5, reason="narrowed")

    row = journal.item(item_id)
    assert (row.dates, row.attempts, row.not_before, row.reason) == ((D2, D3), 1, 7.5, "narrowed")
    assert journal.attempts_for_cell("box", D1) == []
    assert journal.failed_cells(D1, D4) == {("box", D2), ("box", D3)}
    journal.update_item(item_id, state="done")
    assert journal.item(item_id).state == "done" and journal.item(item_id).dates == (D2, D3)
    with pytest.raises(TypeError, match="priority"):
        journal.update_item(item_id, priority=3)


def test_durations_count_the_dates_of_the_item(journal):
    _, (a, b) = journal.start_run_with_items(
        D1, D4, {}, [("box", "raw", [D1, D2, D3]), ("box", "raw", [D4])]
    )
    for item_id, seconds in ((a, 3.0), (b, 1.0)):
        attempt = journal.start_attempt(item_id, 1, ["job"], Path("/logs/a.log"))
        journal.end_attempt(
            attempt, exit_code=0, reason="exit", outcome="ok", duration=seconds, tail=[]
        )
    assert journal.durations("box") == [(1.0, 1), (3.0, 3)]
    assert journal.durations("team") == []


def test_runs_lists_the_newest_first(journal):
    first = journal.start_run(D1, D2, {"n": 1})
    journal.end_run(first, "finished")
    second = journal.start_run(D3, D4, {"n": 2})

    runs = journal.runs()
    assert [(r.id, r.status, r.start, r.request) for r in runs] == [
        (second, "running", D3, {"n": 2}),
        (first, "finished", D1, {"n": 1}),
    ]
    assert runs[0].ended_at is None and runs[1].ended_at is not None
    assert [r.id for r in journal.runs(limit=1)] == [second]


def test_another_thread_sees_only_what_is_committed(journal):
    with journal.transaction():
        run_id = journal.start_run(D1, D2, {})
        assert journal.unfinished_run().id == run_id  # its own writes, uncommitted
        assert in_other_thread(journal.unfinished_run) is None
    seen = in_other_thread(journal.unfinished_run)
    assert seen is not None and seen.id == run_id


def test_a_write_from_another_thread_waits_for_the_open_transaction(journal):
    done = threading.Event()

    def write() -> None:
        with journal.transaction():  # its own depth: it begins, and so waits for the lock
            journal.event("from_worker", run_id=1)
        done.set()

    with journal.transaction():
        journal.event("from_owner", run_id=1)
        worker = threading.Thread(target=write)
        worker.start()
        assert not done.wait(0.3)
    worker.join(timeout=30)
    assert done.is_set()
    assert [kind for _, _, kind, _ in journal.events(1)] == ["from_owner", "from_worker"]


def test_each_thread_has_its_own_connection_and_close_closes_them_all(tmp_path):
    journal = Journal(tmp_path)
    mine = journal.conn
    ready, release = threading.Event(), threading.Event()
    theirs: list[sqlite3.Connection] = []

    def hold() -> None:
        theirs.append(journal.conn)
        ready.set()
        release.wait(30)

    worker = threading.Thread(target=hold)
    worker.start()
    ready.wait(30)
    assert theirs[0] is not mine and journal.conn is mine
    for conn in (mine, theirs[0]):
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (10000,)

    journal.close()

    for conn in (mine, theirs[0]):
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
    with pytest.raises(sqlite3.ProgrammingError):
        journal.unfinished_run()
    release.set()
    worker.join(timeout=30)


def test_the_connection_of_an_ended_thread_is_closed_when_another_opens(journal):
    ended = in_other_thread(lambda: journal.conn)
    in_other_thread(lambda: journal.conn)  # a new pool, a new thread
    with pytest.raises(sqlite3.ProgrammingError):
        ended.execute("SELECT 1")


def test_closing_the_journal_while_another_thread_reads_does_not_crash(tmp_path: Path):
    # A dashboard quitting while its coverage worker read the known-empty cells: close() shut
    # that thread's connection under its query and the process died (rc -11, seen in CI).
    assert_close_under_reads_survives(
        tmp_path / "state",
        setup="""
            from datetime import date, timedelta
            from core.state import Journal
            days = [date(2020, 1, 1) + timedelta(days=i) for i in range(3000)]
            journal = Journal(folder)
            for p in range(4):
                journal.mark_known_empty(f"p{p}", days, "no games", "test", run_id=None)
            journal.close()
        """,
        opened="Journal(folder)",
        read="subject.known_empty(days[0], days[-1])",
    )


def test_close_frees_an_idle_transaction_before_it_waits_for_a_statement_blocked_on_it(
    tmp_path: Path,
):
    # Thread B's BEGIN waits for the write lock thread C holds, idle inside its transaction:
    # waiting for B first, close() gave up after CLOSE_WAIT_S and left B's connection open.
    journal = Journal(tmp_path)
    b_ready, c_in, c_release = threading.Event(), threading.Event(), threading.Event()
    refused: list[BaseException] = []

    def b() -> None:
        journal.conn  # noqa: B018 (its connection: listed before C's)
        b_ready.set()
        c_in.wait(30)
        try:
            with journal.transaction():
                journal.event("b", run_id=None)
        except sqlite3.ProgrammingError as exc:
            refused.append(exc)

    def c() -> None:
        b_ready.wait(30)
        with contextlib.suppress(sqlite3.ProgrammingError), journal.transaction():
            journal.event("c", run_id=None)
            c_in.set()
            c_release.wait(30)

    threads = [threading.Thread(target=b), threading.Thread(target=c)]
    for thread in threads:
        thread.start()
    c_in.wait(30)
    time.sleep(0.2)  # B is inside its BEGIN IMMEDIATE, waiting for C's lock
    connections = [c.conn for c in journal._connections]
    started = time.monotonic()
    journal.close()
    took = time.monotonic() - started
    c_release.set()
    for thread in threads:
        thread.join(30)
    assert took < CLOSE_WAIT_S / 2, took
    for conn in connections:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
    assert refused, "B wrote after close() began"
    assert not (tmp_path / "journal.sqlite-wal").exists()
