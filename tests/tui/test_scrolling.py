"""KeystrokeInput sets its virtual size without a screen layout: it must still scroll a long
value and show its end as Textual's own Input does."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input

from tui.widgets.scrolling import KeystrokeInput


class OneInput(App[None]):
    def __init__(self, kind: type[Input]) -> None:
        super().__init__()
        self.kind = kind

    def compose(self) -> ComposeResult:
        yield self.kind(id="typed")


async def typed_into(kind: type[Input], text: str) -> tuple[int, int, int]:
    app = OneInput(kind)
    async with app.run_test(size=(30, 5)) as pilot:
        field = app.query_one("#typed", Input)
        field.focus()
        for char in text:
            await pilot.press(char)
        await pilot.pause()
        typed = field.scroll_offset.x
        await pilot.press("home")
        await pilot.pause()
        return field.virtual_size.width, typed, field.scroll_offset.x


@pytest.mark.asyncio
async def test_a_long_value_scrolls_as_in_textuals_input():
    text = "abcdefghij" * 6
    ours, theirs = await typed_into(KeystrokeInput, text), await typed_into(Input, text)
    assert ours == theirs
    width, typed, home = ours
    assert width == len(text) + 1 and typed >= len(text) - 30 and home == 0


class Prefilled(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[str] = []

    def compose(self) -> ComposeResult:
        yield KeystrokeInput(value="abc", on_change=lambda _, value: self.changes.append(value))


@pytest.mark.asyncio
async def test_on_change_hears_the_values_set_once_mounted_not_the_one_it_was_built_with():
    app = Prefilled()
    async with app.run_test(size=(30, 5)) as pilot:
        field = app.query_one(KeystrokeInput)
        assert field.value == "abc" and app.changes == []
        field.focus()
        await pilot.press("end", "d")
        assert app.changes[-1] == "abcd"
        field.value = ""
        assert app.changes[-1] == ""
