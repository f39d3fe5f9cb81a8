"""SteadyFooter rebuilds its keys only when the keys shown change: a focus move between widgets
with the same keys keeps them (Textual's Footer mounts them all again and lays the screen out);
a key that comes or goes is drawn as Textual's own Footer draws it."""

from __future__ import annotations

from typing import ClassVar

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Button
from textual.widgets._footer import FooterKey

from tui.widgets.steady_footer import SteadyFooter


class TwoButtons(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start"),
        Binding("x", "undo", "Undo"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.undo_shown = False

    def compose(self) -> ComposeResult:
        yield Button("one", id="one")
        yield Button("two", id="two")
        yield SteadyFooter(show_command_palette=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.undo_shown if action == "undo" else True


def keys_of(app: App[None]) -> dict[str, FooterKey]:
    return {key.key: key for key in app.screen.query(FooterKey)}


@pytest.mark.asyncio
async def test_a_focus_move_with_the_same_keys_keeps_the_footer_and_a_new_key_is_drawn():
    app = TwoButtons()
    async with app.run_test(size=(60, 6)) as pilot:
        app.query_one("#one", Button).focus()
        await pilot.pause()
        before = keys_of(app)
        assert set(before) == {"s"}

        app.query_one("#two", Button).focus()
        await pilot.pause()
        await pilot.pause()
        after = keys_of(app)
        assert after.keys() == before.keys()
        assert all(after[key] is before[key] for key in before)  # not mounted again

        app.undo_shown = True
        app.screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert set(keys_of(app)) == {"s", "x"}
        assert keys_of(app)["x"].description == "Undo"

        app.undo_shown = False
        app.screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert set(keys_of(app)) == {"s"}
