"""Quitting while a run is on: detach (the run goes on, the default), stop the run, or stay."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

QuitChoice = Literal["detach", "stop", "stay"]


class QuitScreen(ModalScreen[QuitChoice]):
    BINDINGS = [
        Binding("d", "choose('detach')", "Detach"),
        Binding("s", "choose('stop')", "Stop the run"),
        Binding("escape", "choose('stay')", "Stay"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self._attempts_running = running

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                f"The run is on ({self._attempts_running} attempts running).\n\n"
                "Detach: quit; the run goes on (backfill attaches again).\n"
                "Stop the run: cancel what runs and end it (a new start resumes it).",
                classes="dialog--question",
                markup=False,
            )
            with Horizontal(classes="dialog--buttons"):
                # First and focused: Enter must never be the destructive choice.
                yield Button("Detach (d)", variant="primary", id="detach")
                yield Button("Stop the run (s)", variant="error", id="stop")
                yield Button("Stay (esc)", id="stay")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        choice: QuitChoice = (
            "stop"
            if event.button.id == "stop"
            else ("detach" if event.button.id == "detach" else "stay")
        )
        self.dismiss(choice)

    def action_choose(self, choice: QuitChoice) -> None:
        self.dismiss(choice)
