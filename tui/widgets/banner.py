"""The banner under the status line: what must not be missed. Unlike a toast it stays.

A sticky banner (a run finished, complete or not; the engine stopped or went away) stays until
the operator dismisses it (`x`, or a click) or a newer one replaces it; starting a run clears
it too. A passing one (dispatch held up by a full disk) also goes once its cause clears. A
dismissed text is not shown again by the tick that keeps reporting the same state.

Drawn as Text: engine errors and reasons come from outside (`tui.text.literal`).
"""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual import events
from textual.widgets import Static

from tui.text import literal

Kind = Literal["ok", "warning", "error"]
HINT = "  · x dismisses"


class Banner(Static):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("", markup=False, **kwargs)  # type: ignore[arg-type]
        #: the text shown (without the hint), None when hidden
        self.text: str | None = None
        self.sticky = False
        self._dismissed: str | None = None

    def show(self, text: str, *, kind: Kind = "warning", sticky: bool = False) -> bool:
        """Show `text` (True), unless it is the one the operator dismissed (False)."""
        if text == self._dismissed:
            return False
        if text == self.text and self.display:
            return False
        self.text, self.sticky = text, sticky
        shown = literal(text)
        shown.append(Text(HINT, "dim"))
        self.update(shown)
        self.set_class(kind == "error", "-error")
        self.set_class(kind == "ok", "-ok")
        self.display = True
        return True

    def hide(self, *, passing_only: bool = False) -> None:
        """Hide it (not counted as dismissed); `passing_only`: only a banner that is not
        sticky."""
        if passing_only and self.sticky:
            return
        self.text, self.sticky = None, False
        self.display = False

    def dismiss(self) -> bool:
        """The operator saw it: hide it, and do not show the same text again."""
        if not self.display:
            return False
        self._dismissed = self.text
        self.hide()
        return True

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.dismiss()
