"""The run's forecast from the engine's live state: open work per processor (pending dates,
running attempts and how long they have run), the duration samples and this engine's finishes.

Rebuilt at most once a second: snapshots are asked for several times a second by every
attached client, and the forecast cannot change faster than attempts finish."""

from __future__ import annotations

import time
from collections import defaultdict

from core.engine.attempts import Attempts
from core.progress import Forecast, Open, forecast, rates_for
from core.state.items import ItemState

#: seconds a forecast is reused
FRESH = 1.0


class Forecaster:
    def __init__(self, attempts: Attempts, limits: dict[str, int], started: float) -> None:
        self._attempts = attempts
        self._limits = limits
        self._started = started
        self._gated = frozenset(ph.name for ph in attempts.config.phases if ph.gate is not None)
        self._cached: tuple[float, bool, Forecast] | None = None

    def __call__(self, *, paused: bool) -> Forecast:
        now = time.monotonic()
        if self._cached is not None:
            at, was_paused, cached = self._cached
            if now - at < FRESH and was_paused == paused:
                return cached
        fresh = forecast(
            paused=paused,
            open_work=self._open_work(),
            rates=rates_for(self._attempts.history, self._attempts.own),
            limits=self._limits,
            finishes=self._attempts.finishes,
            started=self._started,
            gated=self._gated,
            now=now,
        )
        self._cached = (now, paused, fresh)
        return fresh

    def _open_work(self) -> list[Open]:
        store = self._attempts.store
        wall = time.time()
        running: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for item_id in self._attempts.handles:
            item = store.items[item_id]
            if item.state is not ItemState.RUNNING:
                continue
            began = item.last.started_at if item.last is not None else None
            running[item.processor.name].append((len(item.dates), wall - began if began else 0.0))
        work = []
        open_dates = store.open_dates()
        for proc in store.config.processors:  # in phase order, as the forecast wants
            name = proc.name
            dates = open_dates.get(name, 0)
            if dates <= 0:
                continue
            busy = running.get(name, [])
            work.append(
                Open(
                    processor=name,
                    phase=store.config.phase_of(name).name,
                    pending_dates=max(0, dates - sum(d for d, _ in busy)),
                    largest_item=proc.chunk_days,
                    running=tuple(busy),
                )
            )
        return work
