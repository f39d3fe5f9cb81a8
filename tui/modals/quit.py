"""Quitting while attempts run: stop them, or leave them running for the next start to adopt."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

QuitChoice = Literal["stop", "leave", "stay"]


class QuitScreen(ModalScreen[QuitChoice]):
    BINDINGS = [
        Binding("s", "choose('stop')", "Stop the run"),
        Binding("l", "choose('leave')", "Leave running"),
        Binding("escape", "choose('stay')", "Stay"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self._attempts_running = running

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                f"{self._attempts_running} attempts are running.\n\n"
                "Stop the run: cancel them (their dates stay missing; start again to redo).\n"
                "Leave them running: they finish on their own; the next start adopts them.",
                classes="dialog--question",
            )
            with Horizontal(classes="dialog--buttons"):
                yield Button("Stop the run (s)", variant="error", id="stop")
                yield Button("Leave running (l)", variant="primary", id="leave")
                yield Button("Stay (esc)", id="stay")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)  # type: ignore[arg-type]

    def action_choose(self, choice: QuitChoice) -> None:
        self.dismiss(choice)
