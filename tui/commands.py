"""Command palette: jump to a processor or a date of the heatmap (partial dates too: 2024-01,
jan 2024).

A hit's str prompt is parsed as markup (and `Matcher.highlight` parses its candidate too), so the
prompts, which hold processor names from the config, are built as literal Content.
"""

from __future__ import annotations

from datetime import date
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from core.printable import strip_controls
from tui.command_line import parse_when


def _highlight(matcher: Matcher, text: str) -> Content:
    """`matcher.highlight` without parsing `text` as markup."""
    content = Content(text)
    score, offsets = matcher.fuzzy_search.match(matcher.query, text)
    if not score:
        return content
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


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
            text = f"Go to {strip_controls(name)}"
            yield DiscoveryHit(Content(text), partial(self._jump, key=name), text=text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        span = parse_when(query)
        day = None if span is None else span[0]
        if day is not None:
            text = f"Go to date {day}"
            yield Hit(100, Content(text), partial(self._jump, day=day), text=text)
        for name in self._processors():
            text = f"Go to {strip_controls(name)}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score, _highlight(matcher, text), partial(self._jump, key=name), text=text
                )
