"""Why these cells have no rows, before they are marked known empty (and so count as complete).

A reason is required: the journal keeps it with who and when, and the report shows it, so the
next operator knows the empty cells were judged, not forgotten."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from tui.text import literal


class KnownEmptyScreen(ModalScreen[str | None]):
    """Dismissed with the reason typed, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            # The question names processors and dates: drawn literally.
            yield Label(literal(self._question), classes="dialog--question")
            yield Input(placeholder="reason (e.g. no games that day)", id="reason")
            yield Label("", id="reason-problem")
            with Horizontal(classes="dialog--buttons"):
                yield Button("Mark known empty (enter)", variant="warning", id="yes")
                yield Button("Cancel (esc)", variant="default", id="no")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._answer()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self._answer()
        else:
            self.dismiss(None)

    def _answer(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#reason-problem", Label).update("A reason is needed: it is journaled.")
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)
