"""Re-reading the warehouse after attempts end: the verdict on every attempt, several per read.

An attempt is judged by the rows it left, not by its exit status. The read runs in a worker
thread (the warehouse may be a network away), one read at a time; attempts that end while a read
is under way are verified together by the next one: one thread hop and one query per table (one
BigQuery job in all), however many attempts ended meanwhile. On a busy run that is most of what
verifying costs, and fewer concurrent jobs is what BigQuery's quotas want too.

Each read waits GATHER_S first, so attempts ending at about the same time share it: a job's
concurrency slot is free as soon as its process ends, so a verdict that comes 50 ms later
delays no work. A read joins only requests within BATCH_SPAN of the first one waiting, so a
retry of an old date never makes one read scan years of partitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import anyio

from core.coverage import Reread
from core.errors import UserError

BATCH_SPAN = timedelta(days=31)
GATHER_S = 0.05

Read = Callable[[date, date, frozenset[str]], Reread]


@dataclass(eq=False)
class _Request:
    start: date
    end: date
    processors: frozenset[str]
    done: anyio.Event = field(default_factory=anyio.Event)
    error: UserError | None = None


class Verifier:
    def __init__(self, read: Read, on_read: Callable[[Reread], None]) -> None:
        """`read` runs in a worker thread; `on_read` gets each result in the event loop before
        the attempts it answers are told."""
        self._read = read
        self._on_read = on_read
        self._waiting: list[_Request] = []
        self._wanted = anyio.Event()

    async def verify(self, start: date, end: date, processors: frozenset[str]) -> None:
        """Until these processors' rows over start..end have been read and handed to `on_read`.
        Raises the UserError of a read that failed (the warehouse did not answer)."""
        request = _Request(start, end, processors)
        self._waiting.append(request)
        self._wanted.set()
        await request.done.wait()
        if request.error is not None:
            raise request.error

    async def run(self) -> None:
        """Serve requests until cancelled (start it in the engine's task group)."""
        while True:
            await self._wanted.wait()
            # Let the attempts ending about now join this read: no slot waits on a verdict.
            await anyio.sleep(GATHER_S)
            self._wanted = anyio.Event()
            while self._waiting:
                batch = self._next_batch()
                start = min(r.start for r in batch)
                end = max(r.end for r in batch)
                processors = frozenset().union(*(r.processors for r in batch))
                try:
                    fresh = await anyio.to_thread.run_sync(self._read, start, end, processors)
                except UserError as exc:
                    for request in batch:
                        request.error = exc
                else:
                    self._on_read(fresh)
                for request in batch:
                    request.done.set()

    def _next_batch(self) -> list[_Request]:
        first = self._waiting[0]
        lo, hi = first.start - BATCH_SPAN, first.end + BATCH_SPAN
        batch: list[_Request] = []
        later: list[_Request] = []
        for request in self._waiting:
            (batch if lo <= request.start and request.end <= hi else later).append(request)
        self._waiting = later
        return batch
