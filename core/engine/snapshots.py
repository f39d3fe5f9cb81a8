"""Incremental snapshots: a client asks for what changed after the version it last saw, and the
answer costs what changed, not the size of the run.

Item views are built only for items changed since the last time they were asked for (and
cached); counts come from the item store's indexes; warehouse re-reads are kept in a bounded log
a client merges into its own coverage.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from core.coverage import Coverage, Reread
from core.engine.api import EngineSnapshot, ItemView, PauseView, RunRequest, RunState
from core.progress import Forecast
from core.state.items import Item, ItemStore

#: re-reads kept for clients that fall behind; one further back gets the whole coverage instead
REREADS_KEPT = 2000


def item_view(item: Item) -> ItemView:
    last = item.last
    ended = last is not None and last.ended_at is not None
    return ItemView(
        id=item.id,
        processor=item.processor.name,
        phase=item.phase.name,
        dates=item.dates,
        state=item.state,
        attempt=last.number if last else 0,
        started_at=last.started_at if last else None,
        duration=last.duration if last is not None and ended else None,
        exit_code=last.exit_code if last else None,
        # the engine's own words; a raw runner reason only when it says more than "exit"
        reason=item.reason or (last.reason if last and last.reason != "exit" else None),
        log_path=last.log_path if last else None,
        outcome=last.outcome if last else None,
    )


def whole(coverage: Coverage) -> Reread:
    """A run's coverage as one re-read of its range: what a client that knows nothing merges."""
    return Reread(
        coverage.start, coverage.end, coverage.rows, coverage.absent_tables, coverage.measured_at
    )


class Snapshots:
    def __init__(self) -> None:
        self._views: dict[int, tuple[int, ItemView]] = {}  # item id -> (version, view)
        self._rereads: deque[tuple[int, Reread]] = deque(maxlen=REREADS_KEPT)
        #: version of the newest re-read dropped from the log: a client behind it gets the
        #: whole coverage instead
        self._dropped = 0
        self._first_done: float | None = None
        #: version at which the known-empty cells last changed (0: never in this run)
        self._known_empty_at = 0

    def view(self, store: ItemStore, item: Item) -> ItemView:
        version = store.changed_at(item.id)
        cached = self._views.get(item.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        view = item_view(item)
        self._views[item.id] = (version, view)
        return view

    def warm(self, store: ItemStore) -> None:
        """Build every item's view now (in the planning thread), so a client's first snapshot
        of a big run costs the event loop no per-item work."""
        for item in store.items.values():
            self.view(store, item)

    def reread(self, store: ItemStore, fresh: Reread) -> None:
        if len(self._rereads) == self._rereads.maxlen:
            self._dropped = self._rereads[0][0]
        self._rereads.append((store.bump(), fresh))

    def known_empty_changed(self, store: ItemStore) -> None:
        self._known_empty_at = store.bump()

    def snapshot(
        self,
        since: int,
        limit: int | None = None,
        *,
        state: RunState,
        request: RunRequest,
        store: ItemStore | None,
        coverage: Coverage | None,
        concurrency: Mapping[str, tuple[int, int]],
        forecast: Callable[[], Forecast],
        error: str | None,
        pauses: tuple[PauseView, ...] = (),
    ) -> EngineSnapshot:
        if store is None:
            return EngineSnapshot(
                0, state, None, request, {}, concurrency, Forecast("measuring"), error=error
            )
        version = store.version
        changed: tuple[ItemView, ...] = ()
        rereads: list[Reread] = []
        if since >= 0:  # a negative `since` asks for the header alone (a status line)
            items = store.changed_since(since)
            if limit is not None and len(items) > limit:
                # A page: the oldest changes first; the client asks on from the last of them.
                items = items[:limit]
                version = store.changed_at(items[-1].id)
            changed = tuple(self.view(store, item) for item in items)
            rereads = [r for v, r in reversed(self._rereads) if since < v <= version]
            rereads.reverse()
            if coverage is not None and (since == 0 or since < self._dropped):
                rereads.insert(0, whole(coverage))
        known_empty = None
        if coverage is not None and since >= 0 and (since == 0 or since < self._known_empty_at):
            known_empty = coverage.known_empty
        return EngineSnapshot(
            version=version,
            state=state,
            run_id=store.run_id,
            request=request,
            counts=store.counts(),
            concurrency=concurrency,
            forecast=forecast(),
            changed=changed,
            rereads=tuple(rereads),
            error=error,
            pauses=pauses,
            known_empty=known_empty,
        )
