"""Text from operators and jobs is drawn as typed: never parsed as markup, no terminal escapes.

Markup-looking text given to a widget as a str is parsed: `[/]` raises a MarkupError that ends
the app (and, during a run, the dashboard the operator watches it from); `[red]x[/red]` silently
loses its brackets. Terminal control sequences (ESC, the C1 controls) pass through Rich and
Textual untouched, so a job printing an OSC title sequence would retitle the operator's terminal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input, Static
from textual.widgets._toast import Toast

from core.config import load_config
from tests.tui.drive import SIZE, until
from tui.app import BackfillApp
from tui.modals.start_run import StartRunScreen
from tui.widgets.log_tail import LogTail

#: What no line shown may hold: ESC, BEL, and the C1 CSI / OSC / ST controls.
CONTROLS = ("\x1b", "\x07", "\x9b", "\x9d", "\x9c")


def plain(widget: Static) -> str:
    """What a Static shows, as plain text."""
    visual = widget.visual
    return str(getattr(visual, "plain", visual))


async def type_into(pilot, field: Input, text: str) -> None:
    """Empty the field and type `text` into it, key by key, as an operator would."""
    field.focus()
    field.value = ""
    await pilot.pause()
    await pilot.press(*text)


def still_running(app: App[None]) -> bool:
    return app.is_running and app._exception is None


@pytest.mark.asyncio
async def test_markup_typed_into_the_start_dialog_is_shown_literally_and_the_app_survives(
    demo: Path,
):
    # Before the fix the dialog wrapped the parse error in "[red]...[/]": `[/]` in the field made
    # the markup unbalanced (MarkupError: the app ended), `[red]x[/red]` lost its brackets.
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.session.coverage is not None)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, StartRunScreen))
        screen = app.screen
        summary = screen.query_one("#summary", Static)

        await type_into(pilot, screen.query_one("#start", Input), "[/]")
        await pilot.pause()
        assert still_running(app)
        assert app.screen is screen
        assert "got '[/]'" in plain(summary)
        assert screen.query_one("#go").disabled

        await type_into(pilot, screen.query_one("#start", Input), "2024-02-01")
        await type_into(pilot, screen.query_one("#end", Input), "[red]x[/red]")
        await pilot.pause()
        assert still_running(app)
        assert "got '[red]x[/red]'" in plain(summary)
        assert screen.query_one("#go").disabled

        # A valid range again: the dialog goes on planning as before.
        await type_into(pilot, screen.query_one("#end", Input), "2024-02-03")
        await until(pilot, lambda: not screen.query_one("#go").disabled)
        assert "commands fill" in plain(summary)
        assert still_running(app)


@pytest.mark.asyncio
async def test_notifications_and_the_banner_show_markup_and_escapes_literally(demo: Path):
    # Before the fix a toast's message was parsed as markup (`notify` defaults to markup=True):
    # `[/]` in a coverage error raised a MarkupError when the toast was drawn, ending the app.
    # The banner was a Text (no markup) but kept ESC, which reached the terminal.
    app = BackfillApp(load_config(demo))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: app.session.grid is not None)
        hostile = "[bold]x[/bold] and [/] \x1b]2;PWNED\x07 \x1b[31mred\x1b[0m"

        app._coverage_failed(f"query failed: {hostile}")
        await until(pilot, lambda: bool(app.screen.query(Toast)))
        await pilot.pause()
        assert still_running(app)
        shown = [toast.render().plain for toast in app.screen.query(Toast)]
        toast = next(text for text in shown if "query failed" in text)
        assert "[bold]x[/bold] and [/]" in toast
        assert not any(c in toast for c in CONTROLS)

        app._show_banner(f"The engine stopped: {hostile}", error=True)
        await pilot.pause()
        assert still_running(app)
        banner = plain(app.screen.query_one("#banner", Static))
        assert "The engine stopped: [bold]x[/bold] and [/]" in banner
        assert not any(c in banner for c in CONTROLS)


class TailApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LogTail()


@pytest.mark.asyncio
async def test_the_log_pane_drops_terminal_escapes_and_shows_markup_literally(tmp_path: Path):
    # Before the fix the lines went to Textual's Log as read: it replaces only U+0000-U+0014
    # (BEL, not ESC), so `ESC]2;PWNED` and the colour codes reached the terminal.
    log_file = tmp_path / "attempt.log"
    log_file.write_bytes(
        "starting\n"
        "\x1b]2;PWNED\x07title set\n"
        "\x1b[31mred\x1b[0m\n"
        "[red]fail[/red]\n"
        "8-bit \x9b2J and \x9d0;PWNED\x9c\tdone\n".encode()
    )
    app = TailApp()
    async with app.run_test(size=(100, 20)) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(log_file, title="proc [/] \x1b]2;PWNED\x07")
        log = tail.log_widget
        await until(pilot, lambda: len(log.lines) >= 5)
        await pilot.pause()
        lines = list(log.lines)
        assert len(lines) == 5
        for line in lines:
            assert not any(c in line for c in CONTROLS), repr(line)
        assert lines[0] == "starting"
        assert lines[1].endswith("title set") and "PWNED" not in lines[1]
        assert lines[2] == "red"  # the colour codes dropped, the text kept
        assert lines[3] == "[red]fail[/red]"  # literally, brackets and all
        assert lines[4].startswith("8-bit ") and lines[4].endswith("\tdone")
        # What the Log draws, segment by segment, holds no control either.
        drawn = ["".join(segment.text for segment in log.render_line(y)) for y in range(5)]
        for text in drawn:
            assert not any(c in text for c in CONTROLS), repr(text)
        assert drawn[3].startswith("[red]fail[/red]")
        header = tail.header_text
        assert header.startswith("proc [/] ") and not any(c in header for c in CONTROLS)
        assert still_running(app)
