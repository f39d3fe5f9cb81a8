"""The verifier reads once for all the attempts that ended while it was reading."""

from __future__ import annotations

import threading
from datetime import date, datetime

import anyio
import pytest

from core.coverage import Reread
from core.engine.verifier import Verifier
from core.errors import UserError
from tests.helpers import day


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Warehouse:
    """Reads as a worker thread sees them; the first one waits until `release` is set."""

    def __init__(self, fail: bool = False) -> None:
        self.reads: list[tuple[date, date, frozenset[str]]] = []
        self.release = threading.Event()
        self.fail = fail

    def read(self, start: date, end: date, processors: frozenset[str]) -> Reread:
        self.reads.append((start, end, processors))
        if len(self.reads) == 1:
            self.release.wait(10)
        if self.fail:
            raise UserError("warehouse unreachable")
        return Reread(start, end, {}, frozenset(), datetime.now())


@pytest.mark.anyio
async def test_attempts_ending_during_a_read_share_the_next_one_unless_far_apart():
    warehouse = Warehouse()
    seen: list[Reread] = []
    verifier = Verifier(warehouse.read, seen.append)
    asked = [
        (day("2024-01-01"), day("2024-01-01"), frozenset({"a"})),  # alone: starts the first read
        (day("2024-01-05"), day("2024-01-06"), frozenset({"b"})),  # these two end meanwhile
        (day("2024-01-03"), day("2024-01-03"), frozenset({"a", "c"})),
        (day("2023-06-01"), day("2023-06-01"), frozenset({"a"})),  # a retry of an old date
    ]
    async with anyio.create_task_group() as tg:
        tg.start_soon(verifier.run)
        async with anyio.create_task_group() as waiting:
            waiting.start_soon(verifier.verify, *asked[0])
            while not warehouse.reads:
                await anyio.sleep(0.01)
            for request in asked[1:]:
                waiting.start_soon(verifier.verify, *request)
            await anyio.sleep(0.1)
            warehouse.release.set()
        tg.cancel_scope.cancel()
    assert warehouse.reads == [
        asked[0],
        (day("2024-01-03"), day("2024-01-06"), frozenset({"a", "b", "c"})),
        asked[3],
    ]
    assert [(r.start, r.end) for r in seen] == [r[:2] for r in warehouse.reads]


@pytest.mark.anyio
async def test_a_failed_read_fails_every_attempt_it_was_for():
    warehouse = Warehouse(fail=True)
    warehouse.release.set()
    verifier = Verifier(warehouse.read, lambda fresh: None)
    errors: list[str] = []

    async def verify(day_: str) -> None:
        try:
            await verifier.verify(day(day_), day(day_), frozenset({"a"}))
        except UserError as exc:
            errors.append(str(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(verifier.run)
        async with anyio.create_task_group() as waiting:
            waiting.start_soon(verify, "2024-01-01")
            waiting.start_soon(verify, "2024-01-02")
        tg.cancel_scope.cancel()
    assert errors == ["warehouse unreachable"] * 2
