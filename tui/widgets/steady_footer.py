"""A footer that is rebuilt only when the keys it shows change.

Textual's Footer recomposes (removes and mounts every key, then lays the whole screen out) on
each `refresh_bindings`, and a focus change publishes that twice. Opening and closing a filter
moves the focus: on the 200x60 dashboard each rebuild is a layout of 35-50 ms, landing on the
keys typed next, for a footer that shows the same keys before and after.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class SteadyFooter(Footer):
    _drawn: tuple[Hashable, ...] | None = None

    def _shown(self, screen: Screen[object]) -> tuple[Hashable, ...]:
        """What compose() draws from: the shown bindings, their state and their key labels."""
        app = screen.app
        shown: list[Hashable] = [
            (b.key, app.get_key_display(b), b.description, b.action, b.group, enabled, tip)
            for _, b, enabled, tip in screen.active_bindings.values()
            if b.show
        ]
        palette = screen.active_bindings.get(app.COMMAND_PALETTE_BINDING)
        if self.show_command_palette and app.ENABLE_COMMAND_PALETTE and palette is not None:
            shown.append(("palette", app.get_key_display(palette[1]), palette[2]))
        return tuple(shown)

    def bindings_changed(self, screen: Screen[object]) -> None:
        if (
            self._drawn is not None
            and screen.app.app_focus
            and screen is self.screen
            and self._shown(screen) == self._drawn
        ):
            return
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        self._drawn = self._shown(self.screen) if self._bindings_ready else None
        yield from super().compose()
