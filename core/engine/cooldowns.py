"""Throttling, in two tiers.

Rate tier (per phase): after a short-term limit the phase takes no new work for its `cooldown`
and then runs one fewer at a time. A repeat before it recovered doubles the cooldown (up to
ESCALATION times) and takes one more slot off (at least one still runs); each clean success
after the cooldown gives one slot back, and once all are back the phase is out of it. An attempt
that started before the latest cooldown began was already in flight when the phase slowed
down: its failure extends nothing and escalates nothing.

Daily tier (per table): a quota that lasts hours pauses every processor writing the table for
the phase's `quota_pause`; the pause is journaled (`quota_paused`, `quota_resumed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.config import Config, Phase, Processor
from core.engine.api import PauseView

#: a repeated throttling doubles the cooldown up to this many times the phase's own
ESCALATION = 16


@dataclass
class _Cooling:
    #: time.monotonic() the cooldown ends (the state is kept after that: fewer at a time)
    until: float
    #: wall clock the latest cooldown began
    began: float
    #: throttlings since the phase last ran at full speed
    strikes: int
    #: slots taken off the phase's limit
    reduced: int
    reason: str


@dataclass
class Pause:
    phase: str
    table: str
    processors: tuple[str, ...]
    #: time.monotonic() the pause ends
    until: float
    reason: str

    @property
    def until_wall(self) -> float:
        return time.time() + (self.until - time.monotonic())


class Cooldowns:
    def __init__(
        self, config: Config, limits: Mapping[str, int], journal_event: Callable[..., None]
    ) -> None:
        """`limits`: the engine's phase limits as they are now (an operator may change them)."""
        self._config = config
        self._limits = limits
        self._journal_event = journal_event
        self._cooling: dict[str, _Cooling] = {}
        self._pauses: dict[str, Pause] = {}  # table -> its pause

    # -- rate tier -------------------------------------------------------------------------

    def throttled(
        self, phase: Phase, *, started_at: float | None, reason: str, item_id: int
    ) -> float:
        """A rate-tier error of an attempt that started at `started_at` (wall clock): the
        seconds of the cooldown in force now."""
        now = time.monotonic()
        state = self._cooling.get(phase.name)
        if state is not None and started_at is not None and started_at < state.began:
            return max(0.0, state.until - now)
        strikes = state.strikes + 1 if state else 1
        seconds = phase.cooldown * min(1 << (strikes - 1), ESCALATION)
        room = max(0, self._limits.get(phase.name, 1) - 1)
        reduced = min(room, (state.reduced if state else 0) + 1)
        self._cooling[phase.name] = _Cooling(now + seconds, time.time(), strikes, reduced, reason)
        self._journal_event(
            "cooldown",
            item_id=item_id,
            phase=phase.name,
            until=time.time() + seconds,
            strikes=strikes,
            limit=self.limit(phase.name, self._limits.get(phase.name, 1)),
        )
        return seconds

    def succeeded(self, phase: str) -> None:
        """A clean success after the cooldown ended: one slot back."""
        state = self._cooling.get(phase)
        if state is None or state.until > time.monotonic():
            return
        state.reduced -= 1
        if state.reduced <= 0:
            del self._cooling[phase]

    def limit(self, phase: str, limit: int) -> int:
        state = self._cooling.get(phase)
        return max(1, limit - state.reduced) if state else limit

    def cooling(self) -> dict[str, float]:
        """Phase -> time.monotonic() its cooldown ends."""
        return {phase: state.until for phase, state in self._cooling.items()}

    # -- daily tier ------------------------------------------------------------------------

    def pause(
        self, processor: Processor, phase: Phase, seconds: float, *, reason: str, item_id: int
    ) -> Pause | None:
        """Pause the writers of `processor`'s table; the new pause, or None when one was on
        already (it is extended)."""
        until = time.monotonic() + seconds
        current = self._pauses.get(processor.table)
        if current is not None:
            current.until = max(current.until, until)
            return None
        writers = tuple(p.name for p in self._config.processors if p.table == processor.table)
        pause = Pause(phase.name, processor.table, writers, until, reason)
        self._pauses[processor.table] = pause
        self._journal_event(
            "quota_paused",
            item_id=item_id,
            phase=phase.name,
            table=processor.table,
            processors=list(writers),
            until=pause.until_wall,
            reason=reason,
        )
        return pause

    def paused(self) -> frozenset[str]:
        """Processors that may start nothing now."""
        now = time.monotonic()
        return frozenset(n for p in self._pauses.values() if p.until > now for n in p.processors)

    def expire(self) -> list[Pause]:
        """The pauses that ended (journaled as resumed), forgotten."""
        now = time.monotonic()
        ended = [p for p in self._pauses.values() if p.until <= now]
        for pause in ended:
            del self._pauses[pause.table]
            self._journal_event(
                "quota_resumed",
                phase=pause.phase,
                table=pause.table,
                processors=list(pause.processors),
            )
        return ended

    # -- what the engine waits for and shows -----------------------------------------------

    def timers(self) -> list[float]:
        """time.monotonic() of every cooldown and pause end."""
        return [
            *(s.until for s in self._cooling.values()),
            *(p.until for p in self._pauses.values()),
        ]

    def views(self) -> tuple[PauseView, ...]:
        now, wall = time.monotonic(), time.time()
        rate = [
            PauseView(
                phase=name,
                processors=tuple(
                    p.name for p in self._config.phase(name).processors if not p.is_source
                ),
                tier="rate",
                until=wall + (state.until - now),
                reason=state.reason,
            )
            for name, state in self._cooling.items()
            if state.until > now
        ]
        daily = [
            PauseView(p.phase, p.processors, "daily", wall + (p.until - now), p.reason)
            for p in self._pauses.values()
            if p.until > now
        ]
        return (*rate, *daily)
