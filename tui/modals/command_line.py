"""`:` opens a one-line command prompt at the bottom (k9s style): tab completes, enter runs,
esc goes back. A command that does not parse stays in the prompt with its error below it."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from core.config import Config
from tui.command_line import ALIASES, COMMANDS, CommandError, Parsed, complete, parse
from tui.text import literal


class CommandLineScreen(ModalScreen[Parsed | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("tab", "complete", "Complete", priority=True),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self._config = config

    def compose(self) -> ComposeResult:
        with Vertical(id="command-line"):
            yield Static("", id="command-hint", markup=False)
            yield Input(placeholder="run 2024-01-15 2024-01-28 · retry failed · help", id="command")

    def on_mount(self) -> None:
        self._hint("")
        self.query_one(Input).focus()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._hint(event.value)

    def _hint(self, text: str, error: str | None = None) -> None:
        """What the command being typed does, or what is wrong with it."""
        hint = self.query_one("#command-hint", Static)
        hint.set_class(error is not None, "-error")
        if error is not None:
            hint.update(literal(error, newlines=False))
            return
        word = text.strip().split(" ")[0].lower() if text.strip() else ""
        name = ALIASES.get(word, word)
        if name in COMMANDS:
            hint.update(COMMANDS[name])
        else:
            names = [c for c in COMMANDS if c.startswith(name)] or list(COMMANDS)
            hint.update("tab completes · " + " · ".join(names))

    def action_complete(self) -> None:
        field = self.query_one(Input)
        completed = complete(field.value, self._config)
        if completed is not None:
            field.value = completed
            field.cursor_position = len(completed)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            parsed = parse(event.value, self._config)
        except CommandError as exc:
            self._hint(event.value, error=str(exc))
            return
        self.dismiss(parsed)
