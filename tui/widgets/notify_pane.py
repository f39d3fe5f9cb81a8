"""The notify channels: each one's health as the engine journaled it (sent, failed, unhealthy
and the last error) and the outcome of the dashboard's own test message (`n`, `:notify test`).

Rows are keyed by channel name and updated in place; every cell is a Text (names, URLs' hosts
and errors come from the config and from receivers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.text import Text
from textual.widgets import DataTable

from core.notify import ChannelHealth
from tui.text import literal

#: a test not sent yet (None), under way, delivered, or the error
SENDING = "sending…"


class NotifyPane(DataTable[Text]):
    DEFAULT_CSS = """
    NotifyPane { height: 1fr; }
    """

    def __init__(self, channels: Iterable[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._names = list(channels)
        self._health: dict[str, ChannelHealth] = {n: ChannelHealth(n) for n in self._names}
        #: channel -> "" (none yet), SENDING, "delivered" or "failed: ..."
        self.tests: dict[str, str] = dict.fromkeys(self._names, "")

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_column("Channel", key="name", width=14)
        self.add_column("Health", key="health", width=10)
        self.add_column("Test", key="test")
        self.add_column("Sent", key="sent", width=5)
        self.add_column("Failed", key="failed", width=6)
        self.add_column("Last error", key="error")
        if not self._names:
            self.add_row(
                Text("—", "dim"),
                Text("no notify: channels in the config", "dim"),
                Text(""),
                Text(""),
                Text(""),
                Text(""),
            )
        for name in self._names:
            self.add_row(*self._cells(name), key=name)

    def health(self, name: str) -> ChannelHealth:
        return self._health[name]

    def show_health(self, healths: Iterable[ChannelHealth]) -> None:
        """The journal's health of the channels (those it does not name have sent nothing)."""
        given = {h.name: h for h in healths}
        for name in self._names:
            fresh = given.get(name, ChannelHealth(name))
            if fresh != self._health[name]:
                self._health[name] = fresh
                self._update(name)

    def show_tests(self, outcomes: Mapping[str, str | None]) -> None:
        """Test outcomes by channel: SENDING, None (delivered) or the error."""
        for name, error in outcomes.items():
            if name in self.tests:
                self.tests[name] = (
                    error
                    if error == SENDING
                    else "delivered"
                    if error is None
                    else f"failed: {error}"
                )
                self._update(name)

    @property
    def unhealthy(self) -> list[str]:
        return [n for n in self._names if not self._health[n].healthy]

    def _update(self, name: str) -> None:
        for key, cell in zip(
            ("name", "health", "test", "sent", "failed", "error"), self._cells(name), strict=True
        ):
            # Test outcomes and errors are as long as they are: their columns grow (and the
            # table scrolls sideways) rather than cut the one line that says what is wrong.
            self.update_cell(name, key, cell, update_width=key in ("test", "error"))

    def _cells(self, name: str) -> tuple[Text, ...]:
        h = self._health[name]
        if not h.healthy:
            health = Text("UNHEALTHY", "bold red")
        elif h.sent or h.failed:
            health = Text("healthy", "green")
        else:
            health = Text("no sends", "dim")
        test = self.tests[name]
        style = "green" if test == "delivered" else "dim italic" if test == SENDING else "red"
        return (
            literal(name, newlines=False),
            health,
            literal(test, style, newlines=False),
            Text(str(h.sent)),
            Text(str(h.failed), "red" if h.failed else ""),
            literal(h.last_error or "", newlines=False),
        )
