"""Command palette: jump to a processor or a date of the heatmap."""

from __future__ import annotations

from datetime import date
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from core.config.values import parse_date


class JumpProvider(Provider):
    def _jump(self, key: str | None = None, day: date | None = None) -> None:
        jump_to = getattr(self.app, "jump_to", None)
        if jump_to is not None:
            jump_to(key=key, day=day)

    def _processors(self) -> list[str]:
        config = getattr(self.app, "config", None)
        return [p.name for p in config.processors] if config else []

    async def discover(self) -> Hits:
        for name in self._processors():
            yield DiscoveryHit(f"Go to {name}", partial(self._jump, key=name))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        try:
            day = parse_date(query.strip())
        except ValueError:
            day = None
        if day is not None:
            yield Hit(100, f"Go to date {day}", partial(self._jump, day=day))
        for name in self._processors():
            text = f"Go to {name}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._jump, key=name))
