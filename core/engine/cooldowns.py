"""Throttling cooldowns per phase: after a throttling error the phase takes no new work for its
`cooldown`, then runs one fewer at a time until an attempt in it succeeds again."""

from __future__ import annotations

import time
from collections.abc import Callable


class Cooldowns:
    def __init__(self, journal_event: Callable[..., None]) -> None:
        #: phase -> time.monotonic() the cooldown ends (kept after that: one fewer at a time)
        self.until: dict[str, float] = {}
        self._journal_event = journal_event

    def start(self, phase: str, seconds: float, *, item_id: int) -> None:
        self.until[phase] = time.monotonic() + seconds
        self._journal_event("cooldown", item_id=item_id, phase=phase, until=time.time() + seconds)

    def succeeded(self, phase: str) -> None:
        """A clean success after the cooldown ended: full speed again."""
        if self.until.get(phase, float("inf")) <= time.monotonic():
            del self.until[phase]

    def limit(self, phase: str, limit: int) -> int:
        return max(1, limit - 1) if phase in self.until else limit
