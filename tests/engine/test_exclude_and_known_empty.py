"""Operator commands that take cells out of a run: Exclude (the cells stay not complete, the
run may end without them) and KnownEmpty (the cells count as complete). Real processes, a real
SQLite warehouse and journal (tests/jobs/record.py jobs)."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from core.engine.api import Exclude, ItemState, KnownEmpty, Pause, Retry, RunResult, Stop
from core.state import Journal
from tests.engine.test_engine import _engine, _until, records, setup  # noqa: F401
from tests.helpers import day


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_excluded_items_settle_are_never_retried_and_the_run_ends_incomplete_naming_them(
    setup,  # noqa: F811
):
    # 01-02 fails for good; 01-03 hangs (running when excluded: it is cancelled first).
    config = setup(faults="x:2024-01-02:fail,x:2024-01-03:hang", stall="60s", grace="2s")
    engine = _engine(config, processors=("x",))
    result: list[RunResult] = []

    async def run() -> None:
        result.append(await engine.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await _until(
            lambda: (
                engine.store is not None
                and engine.snapshot().count(ItemState.FAILED) == 1
                and engine.snapshot().count(ItemState.DONE) == 4
                and engine.snapshot().count(ItemState.RUNNING) == 1
            )
        )
        store = engine.store
        assert store is not None
        refused = await engine.submit(Exclude("nope", frozenset({day("2024-01-02")})))
        assert not refused.ok and "nope" in refused.message
        failed = await engine.submit(Exclude("x", frozenset({day("2024-01-02")})))
        assert failed.ok and failed.count == 1
        hung = await engine.submit(Exclude("x", frozenset({day("2024-01-03")})))
        assert hung.ok and "1 running ones cancelled" in hung.message
        # A retry of this run leaves excluded items where they are.
        assert (await engine.submit(Retry())).count == 0
        with anyio.fail_after(20):
            while not result:
                await anyio.sleep(0.05)
    (ended,) = result
    assert not ended.complete
    assert ended.excluded == [("x", day("2024-01-02")), ("x", day("2024-01-03"))]
    assert set(ended.incomplete) == set(ended.excluded)
    by_day = {item.dates[0]: item for item in store.items.values()}
    assert by_day[day("2024-01-02")].state is ItemState.CANCELLED
    assert by_day[day("2024-01-02")].reason == "excluded by operator"
    assert by_day[day("2024-01-03")].state is ItemState.CANCELLED
    assert by_day[day("2024-01-03")].reason == "excluded by operator"  # cancelled, for that
    journal = Journal(config.state_path)
    try:
        assert journal.runs(1)[0].status == "incomplete"
        kinds = [k for _, _, k, _ in journal.events(ended.run_id)]
        assert kinds.count("operator_exclude") == 3
    finally:
        journal.close()
    starts = Counter(d for r in records(config) if r["kind"] == "start" for d in r["dates"])
    assert starts["2024-01-02"] == 3  # its own attempt and 2 retries; none after the exclude


@pytest.mark.anyio
async def test_known_empty_settles_pending_items_even_with_reprocess_all_and_can_be_undone(
    setup,  # noqa: F811
):
    config = setup()
    engine = _engine(config, linger=True, processors=("x",), reprocess="all")
    async with anyio.create_task_group() as tg:
        await engine.submit(Pause())  # nothing starts: every item waits, pending
        tg.start_soon(engine.run)
        await _until(lambda: engine.store is not None and engine.snapshot().total == 6)
        days = frozenset({day("2024-01-05"), day("2024-01-06")})
        assert not (await engine.submit(KnownEmpty("x", days))).ok  # no reason: refused
        reply = await engine.submit(KnownEmpty("x", days, "no games"))
        assert reply.ok and "2 pending items settled" in reply.message, reply.message
        snap = engine.snapshot()
        assert snap.known_empty == {("x", day("2024-01-05")), ("x", day("2024-01-06"))}
        assert engine.snapshot(snap.version).known_empty is None  # unchanged since
        settled = [i for i in engine.store.items.values() if i.reason == "known empty"]
        assert sorted(i.dates[0] for i in settled) == sorted(days)
        assert all(i.state is ItemState.DONE for i in settled)
        undone = await engine.submit(KnownEmpty("x", frozenset({day("2024-01-06")}), undo=True))
        assert undone.ok and undone.count == 1
        assert engine.snapshot(snap.version).known_empty == {("x", day("2024-01-05"))}
        await engine.submit(Stop())
    started = {d for r in records(config) if r["kind"] == "start" for d in r["dates"]}
    assert not started & {"2024-01-05", "2024-01-06"}


@pytest.mark.anyio
async def test_an_exclusion_outlives_the_engine_that_made_it(setup):  # noqa: F811
    # 01-02 hangs: it is excluded while running, then the engine dies before the run ends (its
    # task cancelled: the run stays open in the journal, as after a crash).
    config = setup(faults="x:2024-01-02:hang,x:2024-01-04:hang", stall="60s", grace="2s")
    first = _engine(config, processors=("x",))
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await _until(
            lambda: first.store is not None and first.snapshot().count(ItemState.RUNNING) == 2
        )
        assert (await first.submit(Exclude("x", frozenset({day("2024-01-02")})))).ok
        await _until(
            lambda: any(i.reason == "excluded by operator" for i in first.store.items.values())
        )
        tg.cancel_scope.cancel()
    first.journal.close()

    second = _engine(config, processors=("x",))
    result: list[RunResult] = []

    async def run() -> None:
        result.append(await second.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await _until(lambda: second.store is not None)
        assert second.store is not None and second.store.run_id == first.store.run_id
        # The resumed run still leaves it out: a retry does not bring it back.
        retried = await second.submit(Retry())
        (excluded,) = [i for i in second.store.items.values() if day("2024-01-02") in i.dates]
        assert (retried.count, excluded.state) == (0, ItemState.CANCELLED)
        await _until(lambda: second.snapshot().count(ItemState.RUNNING) >= 1, 30)
        await second.submit(Stop(cancel_running=True))
    second.journal.close()
    starts = Counter(d for r in records(config) if r["kind"] == "start" for d in r["dates"])
    assert starts["2024-01-02"] == 1  # never again after the exclusion
