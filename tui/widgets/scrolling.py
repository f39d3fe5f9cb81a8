"""Scrollable widgets whose content changes often, without laying the screen out each time.

`virtual_size` is a layout reactive in Textual: setting it lays out the whole screen and then
repaints every widget on it (35 ms for the 200x60 dashboard). A widget whose own size does not
depend on its content (`1fr`, a fixed height) needs only its scrollbars updated: a new row
count in the queue, a filter's text one key longer. A scrollbar that comes or goes still lays
the screen out: its own reactive asks for that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Input


def resize_content(widget: Widget, size: Size) -> None:
    """Set `widget`'s virtual size, laying the screen out only where the widget's own size
    follows its content (an `auto` width or height whose dimension changed)."""
    old = widget.virtual_size
    if size == old:
        return
    styles = widget.styles
    follows = (size.width != old.width and styles.is_auto_width) or (
        size.height != old.height and styles.is_auto_height
    )
    if follows or not widget.is_mounted or not widget.container_size:
        widget.virtual_size = size
        return
    widget.set_reactive(Widget.virtual_size, size)
    widget._scroll_update(size)
    widget.refresh()


class KeystrokeInput(Input):
    """An Input whose every keystroke repaints it, not the screen (a filter typed over a busy
    dashboard: Input sets its virtual size to the width of its value on every change).

    `on_change` is called with the new value as it is set, in the keystroke's own call: what
    it changes is drawn in the same frame as the typed character. Handled from the posted
    `Changed` message, the character's frame came first and the change waited a whole frame
    period (16 ms) for the next one."""

    def __init__(
        self,
        *args: Any,
        on_change: Callable[[KeystrokeInput, str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        # Before Input's own __init__, which sets the value (and so calls _watch_value).
        self._on_change = on_change
        super().__init__(*args, **kwargs)

    def _watch_value(self, value: str) -> None:
        # Set first, Input's own assignment of the same size then changes nothing.
        resize_content(self, Size(self.content_width, 1))
        if self._on_change is not None and self.is_mounted:
            self._on_change(self, value)
        super()._watch_value(value)
