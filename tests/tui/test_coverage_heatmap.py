"""The coverage heatmap: zoom to fit, cursor keys and mouse, messages, live row refresh, what
each state looks like (in words, glyphs and styles), and two pinned screenshots.

Cells are read back from `render_line` strips, so these tests check what the terminal would
show, not the widget's internals.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from rich.style import Style
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets._footer import FooterKey

from core.config import load_config
from core.coverage import CellState, worst
from core.grid import CODE, CODES, Grid, GridRow
from tui.screens.dashboard import DashboardScreen
from tui.widgets.coverage_heatmap import GAP_GLYPH, GLYPHS, CoverageHeatmap, HeatmapLegend

S = CellState
START = date(2024, 1, 1)  # a Monday: week columns start on day 0, 7, 14, ...
DAYS = 60  # 2024-01-01 .. 2024-02-29: 9 ISO weeks, 2 months
LABEL = CoverageHeatmap.LABEL_WIDTH
HEADER = CoverageHeatmap.HEADER_HEIGHT
SEASONS = [("2023-24", date(2023, 10, 24), date(2024, 6, 17))]

#: every state once in the first 9 days of `proc_one`, then a repeating mix
MIX = [S.COMPLETE, S.PARTIAL, S.MISSING, S.NOT_EXPECTED, S.SKIPPED, S.QUEUED, S.RUNNING]
MIX += [S.FAILED, S.BLOCKED, S.KNOWN_EMPTY, S.CANCELLED]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def day(i: int) -> date:
    return START + timedelta(days=i)


def make_grid() -> Grid:
    """A phase summary row (worst of its processors) and two processors over 60 days.

    proc_one: days 0-9 every state in CellState order, then the same cycle.
    proc_two: complete, except week 3 (days 14-20) not expected, day 22 failed and days 28-34
    complete/not-expected alternating."""
    one = [MIX[i % len(MIX)] for i in range(DAYS)]
    two = [S.COMPLETE] * DAYS
    two[14:21] = [S.NOT_EXPECTED] * 7
    two[22] = S.FAILED
    for i in range(28, 35):
        two[i] = S.COMPLETE if i % 2 else S.NOT_EXPECTED
    phase = [worst([a, b]) for a, b in zip(one, two, strict=True)]
    rows = (
        GridRow("phase:analytics", "Phase 3 (Analytics)", "analytics", True),
        GridRow("proc_one", "proc_one", "analytics", False),
        GridRow("proc_two", "proc_two", "analytics", False),
    )
    codes = [bytearray(CODE[s] for s in states) for states in (phase, one, two)]
    return Grid(tuple(day(i) for i in range(DAYS)), rows, codes)


class HeatmapApp(App[None]):
    """The widget alone plus its legend, recording the messages it posts."""

    def __init__(self, grid: Grid | None = None) -> None:
        super().__init__()
        self.grid = grid or make_grid()
        self.highlighted: list[CoverageHeatmap.CellHighlighted] = []
        self.selected: list[CoverageHeatmap.CellSelected] = []

    def compose(self) -> ComposeResult:
        yield CoverageHeatmap(id="heatmap")
        yield HeatmapLegend()

    def on_mount(self) -> None:
        heatmap = self.query_one(CoverageHeatmap)
        heatmap.set_grid(self.grid, SEASONS)
        heatmap.focus()

    def on_coverage_heatmap_cell_highlighted(self, message: CoverageHeatmap.CellHighlighted):
        self.highlighted.append(message)

    def on_coverage_heatmap_cell_selected(self, message: CoverageHeatmap.CellSelected):
        self.selected.append(message)


#: columns of `make_grid` per zoom (no gaps: no date is unexpected on every row)
COLUMNS = {"day": DAYS, "week": 9, "month": 2}


def cell(heatmap: CoverageHeatmap, row: int, column: int) -> tuple[str, Style]:
    """The character and style drawn for a cell of `make_grid` (column relative to the scrolled
    view): its first character, columns being as wide as the width allows."""
    width = max(1, (heatmap.virtual_size.width - LABEL) // COLUMNS[heatmap.zoom])
    x = LABEL + column * width
    for segment in heatmap.render_line(HEADER + row):
        if x < len(segment.text):
            assert segment.style is not None
            return segment.text[x], segment.style
        x -= len(segment.text)
    raise AssertionError("cell outside the line")


def away_from(heatmap: CoverageHeatmap, row: int) -> None:
    """Park the cursor on another row so the row under test draws plain cells."""
    heatmap.cursor = (0 if row else 2, heatmap.cursor[1])


@pytest.mark.asyncio
async def test_zoom_fits_the_whole_range_to_the_width_until_chosen():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        assert heatmap.zoom == "day"  # 60 days in 90 cells
        assert heatmap.virtual_size.width == LABEL + DAYS
        await pilot.resize_terminal(60, 30)
        await pilot.pause()
        assert heatmap.zoom == "week"  # 9 weeks in 30 cells, 60 days do not fit
        await pilot.resize_terminal(36, 30)
        await pilot.pause()
        assert heatmap.zoom == "month"  # 2 months in 6 cells
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        assert heatmap.zoom == "day"
        await pilot.press("z")  # an explicit zoom sticks
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert heatmap.zoom == "month"

    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        heatmap.zoom = "day"  # chosen, though it is already the zoom
        await pilot.resize_terminal(60, 30)
        await pilot.pause()
        assert heatmap.zoom == "day"


@pytest.mark.asyncio
async def test_z_cycles_zoom_and_keeps_the_cursor_on_the_same_date():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        heatmap.move_to("proc_two", date(2024, 2, 14))
        await pilot.pause()
        expected = [
            ("month", date(2024, 2, 1), date(2024, 2, 29)),
            ("week", date(2024, 2, 12), date(2024, 2, 18)),
            ("day", date(2024, 2, 14), date(2024, 2, 14)),
            ("month", date(2024, 2, 1), date(2024, 2, 29)),
        ]
        for zoom, start, end in expected:
            await pilot.press("z")
            await pilot.pause()
            assert heatmap.zoom == zoom
            assert heatmap.cursor_cell() == (app.grid.rows[2], start, end)
            last = app.highlighted[-1]
            assert (last.row.key, last.start, last.end) == ("proc_two", start, end)


@pytest.mark.asyncio
async def test_keys_move_the_cursor_and_post_cell_highlighted():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        steps = [
            ("right", "phase:analytics", 1),
            ("l", "phase:analytics", 2),
            ("down", "proc_one", 2),
            ("j", "proc_two", 2),
            ("j", "proc_two", 2),  # bottom edge: stays (no message either)
            ("k", "proc_one", 2),
            ("h", "proc_one", 1),
            ("left", "proc_one", 0),
            ("end", "proc_one", DAYS - 1),
            ("pageup", "proc_one", DAYS - 1 - (120 - LABEL)),
            ("home", "proc_one", 0),
            ("pagedown", "proc_one", 120 - LABEL),
            ("up", "phase:analytics", 120 - LABEL),
            ("G", "proc_two", 120 - LABEL),
            ("g", "phase:analytics", 120 - LABEL),
        ]
        for key, row_key, column in steps:
            await pilot.press(key)
            await pilot.pause()
            column = min(max(column, 0), DAYS - 1)
            row, start, end = heatmap.cursor_cell()
            assert (row.key, start, end) == (row_key, day(column), day(column)), key
            last = app.highlighted[-1]
            assert (last.row.key, last.start, last.end) == (row_key, day(column), day(column))
        assert app.highlighted[-1].state is CODES[app.grid.codes[0][DAYS - 1]]


@pytest.mark.asyncio
async def test_enter_and_double_click_post_cell_selected_and_a_click_moves_the_cursor():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        await pilot.press("j", "l", "enter")
        await pilot.pause()
        [selected] = app.selected
        assert (selected.row.key, selected.start, selected.end) == ("proc_one", day(1), day(1))
        assert selected.state is S.PARTIAL

        await pilot.click(CoverageHeatmap, offset=(LABEL + 10, HEADER + 2))
        await pilot.pause()
        assert heatmap.cursor == (2, 10)
        assert app.highlighted[-1].row.key == "proc_two"
        assert app.highlighted[-1].start == day(10)
        assert len(app.selected) == 1

        await pilot.double_click(CoverageHeatmap, offset=(LABEL + 22, HEADER + 2))
        await pilot.pause()
        assert heatmap.cursor == (2, 22)
        assert (app.selected[-1].start, app.selected[-1].state) == (day(22), S.FAILED)


@pytest.mark.asyncio
async def test_move_to_jumps_to_a_row_and_date_and_clamps_dates_to_the_range():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        heatmap.move_to(key="proc_one")
        heatmap.move_to(day=date(2030, 1, 1))
        await pilot.pause()
        assert heatmap.cursor == (1, DAYS - 1)
        heatmap.move_to(day=date(2000, 1, 1))
        assert heatmap.cursor == (1, 0)
        with pytest.raises(KeyError):
            heatmap.move_to(key="nope")


@pytest.mark.asyncio
async def test_refresh_rows_repaints_a_cell_changed_in_place():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        away_from(heatmap, 2)
        await pilot.pause()
        app.highlighted.clear()
        before = cell(heatmap, 2, 5)
        assert before[0] == GLYPHS[S.COMPLETE]

        app.grid.codes[2][5] = CODE[S.RUNNING]
        assert cell(heatmap, 2, 5) == before  # cached until told
        heatmap.refresh_rows([2])
        await pilot.pause()
        assert app.highlighted == []  # the cursor's cell did not change
        glyph, style = cell(heatmap, 2, 5)
        assert glyph == GLYPHS[S.RUNNING]
        assert style == cell(heatmap, 1, 6)[1]  # proc_one is running on day 6
        assert style != before[1]
        assert cell(heatmap, 2, 4) == before  # neighbours untouched

        await pilot.press("z", "z")  # week: the change reaches the bucket too
        await pilot.pause()
        assert heatmap.zoom == "week"
        away_from(heatmap, 2)
        assert cell(heatmap, 2, 0)[0] == GLYPHS[S.RUNNING]
        app.grid.codes[2][5] = CODE[S.COMPLETE]
        heatmap.refresh_rows([2])
        assert cell(heatmap, 2, 0)[0] == GLYPHS[S.COMPLETE]

        heatmap.cursor = (2, 0)  # a change under the cursor is announced
        await pilot.pause()
        app.highlighted.clear()
        app.grid.codes[2][3] = CODE[S.FAILED]
        heatmap.refresh_rows([2])
        await pilot.pause()
        [message] = app.highlighted
        assert (message.row.key, message.start, message.state) == ("proc_two", day(0), S.FAILED)


@pytest.mark.asyncio
async def test_a_bucket_shows_its_worst_state_and_the_share_done():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        heatmap.zoom = "week"
        away_from(heatmap, 1)
        await pilot.pause()
        complete = cell(heatmap, 2, 0)  # proc_two's first week: every day complete
        assert complete[0] == GLYPHS[S.COMPLETE]

        # proc_one week 1: complete, partial, missing, not expected, skipped, queued, running:
        # worst is missing; 1 of 5 due days complete -> the second-lowest bar, share colour.
        glyph, style = cell(heatmap, 1, 0)
        assert glyph == "▂"
        share = app.query_one(HeatmapLegend).get_component_rich_style("heatmap--share")
        assert style.color == share.color
        away_from(heatmap, 2)
        # proc_two week 4 (days 21-27) holds the failed day 22: failed wins.
        assert cell(heatmap, 2, 3)[0] == GLYPHS[S.FAILED]
        # week 3 is not expected at all: blank; week 5 is complete on every expected day.
        assert cell(heatmap, 2, 2)[0] == GLYPHS[S.NOT_EXPECTED]
        assert cell(heatmap, 2, 4) == complete
        # The phase row takes the worst of both processors.
        assert cell(heatmap, 0, 3)[0] == GLYPHS[S.FAILED]

        heatmap.zoom = "day"
        away_from(heatmap, 1)
        await pilot.pause()
        assert style != cell(heatmap, 1, 2)[1]  # not the colour of what is missing in it
        assert style.color == cell(heatmap, 1, 1)[1].color  # the partial colour
        assert heatmap.cursor_cell() is not None


@pytest.mark.asyncio
async def test_every_state_has_its_own_glyph_and_style_and_a_legend_entry():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        away_from(heatmap, 1)
        await pilot.pause()
        drawn = {MIX[i]: cell(heatmap, 1, i) for i in range(len(MIX))}
        assert set(drawn) == set(CellState)
        assert len({glyph for glyph, _ in drawn.values()}) == len(CellState)
        assert len({style for _, style in drawn.values()}) == len(CellState)
        colours = {state: (style.color, style.bgcolor) for state, (_, style) in drawn.items()}
        assert colours[S.QUEUED] != colours[S.COMPLETE]
        assert len(set(colours.values())) == len(CellState)

        legend = str(app.query_one(HeatmapLegend).render())
        for state in CellState:
            assert f"{GLYPHS[state]} {state.value.replace('_', ' ')}" in legend


@pytest.mark.asyncio
async def test_headers_and_labels_stay_put_while_cells_scroll():
    days = 400
    grid = Grid(
        tuple(START + timedelta(days=i) for i in range(days)),
        make_grid().rows,
        [bytearray([CODE[S.COMPLETE]] * days) for _ in range(3)],
    )
    app = HeatmapApp(grid)
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        heatmap.zoom = "day"
        await pilot.pause()
        axis = heatmap.render_line(1).text
        assert axis[LABEL:].startswith("Jan 2024")
        assert "Feb" in axis
        heatmap.move_to("proc_two", date(2024, 12, 1))
        await pilot.pause()
        assert heatmap.scroll_x > 0
        label = heatmap.render_line(HEADER + 2).text[:LABEL]
        assert label.strip(" │") == "proc_two"
        assert heatmap.render_line(0).text.startswith(" day zoom")
        assert heatmap.render_line(1).text.startswith(" 2024-12-01 complete")
        assert "Dec" in heatmap.render_line(1).text[LABEL:]
        assert "2023-24" not in heatmap.render_line(0).text  # season scrolled off to the left


@pytest.mark.asyncio
async def test_highlights_are_coalesced_and_a_theme_change_restyles_the_cells():
    app = HeatmapApp()
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(CoverageHeatmap)
        await pilot.pause()
        app.highlighted.clear()
        for column in range(1, 50):  # a burst, as a held key would make
            heatmap.cursor = (2, column)
        await pilot.pause()
        assert 1 <= len(app.highlighted) < 5
        assert app.highlighted[-1].start == day(49)

        dark = cell(heatmap, 1, 0)
        app.theme = "textual-light"
        await pilot.pause()
        light = cell(heatmap, 1, 0)
        assert light[0] == dark[0] == GLYPHS[S.COMPLETE]
        assert light[1] != dark[1]


@pytest.mark.asyncio
async def test_an_empty_grid_draws_blank_lines():
    empty = Grid((), make_grid().rows, [bytearray(), bytearray(), bytearray()])
    no_rows = Grid(make_grid().days, (), [])
    for grid in (empty, no_rows):
        app = HeatmapApp(grid)
        async with app.run_test(size=(80, 10)) as pilot:
            heatmap = app.query_one(CoverageHeatmap)
            await pilot.press("down", "right", "z", "enter")
            assert [heatmap.render_line(y).text.strip(" │") for y in range(2, 5)] == [""] * 3
            assert heatmap.cursor_cell() is None
            assert app.selected == []


def test_snapshot_day_zoom(snap_compare):
    async def cursor_to_a_failed_cell(pilot) -> None:
        await pilot.press("j", "j", *["l"] * 22)

    assert snap_compare(HeatmapApp(), terminal_size=(100, 8), run_before=cursor_to_a_failed_cell)


def test_snapshot_week_zoom_fitted(snap_compare):
    assert snap_compare(HeatmapApp(), terminal_size=(60, 8), press=["j", "l", "l"])


# ------------------------------------------------------------------ on the dashboard's screen

ROOT = Path(__file__).parents[2]
DEMO = load_config(ROOT / "backfill.yaml")
DEMO_SEASONS = [(s.name, s.start, s.end) for s in DEMO.calendar.seasons]


def demo_grid() -> Grid:
    """The bundled demo's rows and range with made-up states: game days inside the seasons,
    raw complete, analytics complete up to 2022-11-15 then missing, precompute missing with
    one failed day (2022-01-10 of player_daily_cache)."""
    first, last = DEMO.calendar.start, DEMO.calendar.end
    assert isinstance(last, date)
    days = tuple(first + timedelta(days=i) for i in range((last - first).days + 1))
    in_season = [any(s <= d <= e for _, s, e in DEMO_SEASONS) and d.day % 3 != 0 for d in days]

    def states(processor: str, phase: str) -> list[CellState]:
        row = []
        for d, expected in zip(days, in_season, strict=True):
            if not expected:
                row.append(S.NOT_EXPECTED)
            elif phase == "raw" or (phase == "analytics" and d <= date(2022, 11, 15)):
                row.append(S.COMPLETE)
            elif processor == "player_daily_cache" and d == date(2022, 1, 10):
                row.append(S.FAILED)
            else:
                row.append(S.MISSING)
        return row

    rows: list[GridRow] = []
    codes: list[bytearray] = []
    for phase in DEMO.phases:
        members = [states(p.name, phase.name) for p in phase.processors]
        rows.append(GridRow(f"phase:{phase.name}", phase.label, phase.name, True))
        codes.append(bytearray(CODE[worst(list(c))] for c in zip(*members, strict=True)))
        for proc, member in zip(phase.processors, members, strict=True):
            rows.append(GridRow(proc.name, proc.name, phase.name, False))
            codes.append(bytearray(CODE[s] for s in member))
    return Grid(days, tuple(rows), codes)


class DashboardHost(App[None]):
    """The dashboard's screen and stylesheet, without a session: the heatmap laid out as the
    operator gets it."""

    CSS_PATH = ROOT / "tui" / "app.tcss"

    def get_default_screen(self) -> DashboardScreen:
        return DashboardScreen(DEMO, read_only=False)

    def on_dashboard_screen_ready(self) -> None:
        heatmap = self.screen.query_one(CoverageHeatmap)
        heatmap.set_grid(demo_grid(), DEMO_SEASONS)
        heatmap.focus()


def on_screen_lines(app: App[None], heatmap: CoverageHeatmap) -> list[str]:
    """The heatmap's lines the terminal shows (clipped by its container), as text."""
    visible = app.screen.find_widget(heatmap).visible_region
    top = visible.y - heatmap.region.y
    return [heatmap.render_line(y).text for y in range(top, top + visible.height)]


@pytest.mark.asyncio
async def test_a_phase_folds_to_its_summary_row_and_unfolds():
    app = DashboardHost()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        heatmap = app.screen.query_one(CoverageHeatmap)
        rows = heatmap.virtual_size.height
        assert heatmap.cursor_cell()[0].key == "phase:raw"
        await pilot.press("left_square_bracket")
        await pilot.pause()
        lines = on_screen_lines(app, heatmap)
        assert lines[HEADER][:LABEL].strip(" │") == "▸ Phase 2 (Raw)"
        assert lines[HEADER + 1][:LABEL].strip(" │▾") == "Phase 3 (Analytics)"
        assert heatmap.virtual_size.height == rows - 5
        await pilot.click(CoverageHeatmap, offset=(LABEL + 3, HEADER + 1))
        assert heatmap.cursor_cell()[0].key == "phase:analytics"  # the row drawn there
        await pilot.press("k")

        await pilot.press("j", "j")  # rows of a folded phase are skipped
        assert heatmap.cursor_cell()[0].key == "team_offense_game_summary"
        await pilot.press("left_square_bracket")  # on a processor: folds its phase
        await pilot.pause()
        assert heatmap.cursor_cell()[0].key == "phase:analytics"
        assert heatmap.virtual_size.height == rows - 10

        heatmap.move_to(key="player_game_summary")  # a jump opens the phase it lands in
        await pilot.pause()
        assert any(line[:LABEL].strip(" │") == "player_game_summary" for line in lines_of(heatmap))
        await pilot.press("right_square_bracket")  # unfolds every phase
        await pilot.pause()
        assert heatmap.virtual_size.height == rows

        footer = {key.key: key.description for key in app.screen.query(FooterKey)}
        assert footer.get("left_square_bracket") == "Fold"


def lines_of(heatmap: CoverageHeatmap) -> list[str]:
    return [heatmap.render_line(y).text for y in range(heatmap.size.height)]


def row_line(heatmap: CoverageHeatmap, key: str) -> Strip:
    """The line drawn for a row, found by its label."""
    for y in range(heatmap.HEADER_HEIGHT, heatmap.size.height):
        strip = heatmap.render_line(y)
        if strip.text[:LABEL].strip(" │▸▾") == key:
            return strip
    raise AssertionError(f"{key} is not on screen")


def cells_of(strip: Strip) -> list[tuple[str, Style]]:
    """(character, style) of each cell right of the label column."""
    out = []
    for segment in strip:
        assert segment.style is not None
        out += [(char, segment.style) for char in segment.text]
    return out[LABEL:]


@pytest.mark.asyncio
async def test_at_80x24_the_cursor_row_the_legend_and_the_cell_line_stay_on_screen():
    app = DashboardHost()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        heatmap = app.screen.query_one(CoverageHeatmap)
        await pilot.press("G")  # the last processor of Phase 4
        await pilot.pause()
        assert heatmap.cursor_cell()[0].key == "ml_feature_store_v2"
        lines = on_screen_lines(app, heatmap)
        assert any(line[:LABEL].strip(" │") == "ml_feature_store_v2" for line in lines)
        assert heatmap.scroll_y > 0
        for widget in (app.screen.query_one("#legend"), app.screen.query_one("#cell")):
            assert app.screen.find_widget(widget).visible_region.height == 1
        assert app.screen.query_one("#bottom").region.height > 0  # the queue keeps its room

        await pilot.press("g")  # back up: the first row shows again, under the headers
        await pilot.pause()
        assert heatmap.scroll_y == 0
        assert on_screen_lines(app, heatmap)[HEADER][:LABEL].strip(" │▾") == "Phase 2 (Raw)"


#: the demo's season names, whole or abbreviated
SEASON_LABELS = {"2021-22", "2022-23", "2023-24", "2024-25", "21-22", "22-23", "23-24", "24-25"}


def season_labels(line: str) -> list[str]:
    return [word for word in re.split(r"[ ─┊]+", line[LABEL:]) if word]


@pytest.mark.asyncio
async def test_month_zoom_spreads_over_the_width_with_whole_labels_and_thin_off_seasons():
    app = DashboardHost()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        heatmap = app.screen.query_one(CoverageHeatmap)
        heatmap.zoom = "month"
        await pilot.pause()
        room = heatmap.scrollable_content_region.width - LABEL
        raw = row_line(heatmap, "nbac_schedule").text
        assert len(raw.rstrip()) - LABEL >= 0.9 * room  # most of the width, not 38 columns
        seasons = heatmap.render_line(0).text
        assert season_labels(seasons) == ["2021-22", "2022-23", "2023-24", "2024-25"]
        axis = heatmap.render_line(1).text[LABEL:].split()
        assert set(axis) <= {*MONTHS, "2021", "2022", "2023", "2024"}, axis  # no label cut mid-word
        # Each off-season (no date expected by any row) is one thin column.
        assert raw[LABEL:].count(GAP_GLYPH) == 3
        heatmap.move_to(day=date(2022, 8, 1))
        assert heatmap.cursor_cell()[1:] == (date(2022, 7, 1), date(2022, 9, 30))

        await pilot.resize_terminal(80, 24)  # too narrow for the names: abbreviated or none
        await pilot.pause()
        labels = season_labels(heatmap.render_line(0).text)
        assert labels and set(labels) <= SEASON_LABELS, labels


@pytest.mark.asyncio
async def test_a_partly_done_month_reads_as_partial_and_red_means_failed():
    app = DashboardHost()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        heatmap = app.screen.query_one(CoverageHeatmap)
        heatmap.zoom = "month"
        heatmap.move_to(key="nbac_schedule")
        await pilot.pause()
        failed = [s for c, s in cells_of(row_line(heatmap, "player_daily_cache")) if c == "✗"]
        assert failed, "the month with a failed day shows it"
        red = failed[0].bgcolor
        analytics = cells_of(row_line(heatmap, "player_game_summary"))  # nothing failed there
        partly = [style for char, style in analytics if char in "▁▂▃▄▅▆▇"]
        assert partly, "November 2022 is half done"
        assert all(red not in (style.color, style.bgcolor) for _, style in analytics)
        legend = app.screen.query_one(HeatmapLegend)
        share = legend.get_component_rich_style("heatmap--share", partial=True)
        assert partly[0].color == share.color


@pytest.mark.asyncio
async def test_labels_cut_by_the_edges_of_a_scrolled_view_are_left_out():
    app = DashboardHost()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        heatmap = app.screen.query_one(CoverageHeatmap)
        heatmap.zoom = "week"  # 112 columns in 48: it scrolls
        await pilot.pause()
        words = {*MONTHS, "2021", "2022", "2023", "2024"}
        for day in (date(2021, 10, 19), date(2022, 12, 20), date(2024, 11, 29)):
            heatmap.move_to(day=day)
            await pilot.pause()
            axis = heatmap.render_line(1).text[LABEL:].replace("▼", " ").split()
            assert set(axis) <= words, (day, axis)
            seasons = season_labels(heatmap.render_line(0).text)
            assert set(seasons) <= SEASON_LABELS, (day, seasons)


@pytest.mark.asyncio
async def test_the_cursor_steps_over_an_off_season_and_a_gap_that_fills_is_drawn_again():
    app = DashboardHost()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        heatmap = app.screen.query_one(CoverageHeatmap)
        heatmap.zoom = "month"
        heatmap.move_to(key="player_game_summary", day=date(2022, 6, 1))
        await pilot.press("l")
        assert heatmap.cursor_cell()[1] == date(2022, 10, 1)  # July-September hold nothing
        await pilot.press("h")
        assert heatmap.cursor_cell()[1] == date(2022, 6, 1)

        grid = app.screen.query_one(CoverageHeatmap).grid
        assert grid is not None
        row = grid.row_index("player_game_summary")
        grid.codes[row][grid.column_of(date(2022, 8, 2))] = CODE[S.RUNNING]
        heatmap.refresh_rows([row])
        await pilot.pause()
        # August is drawn again; July and September, still empty, stay a gap each.
        assert row_line(heatmap, "player_game_summary").text[LABEL:].count(GAP_GLYPH) == 4
        heatmap.move_to(day=date(2022, 8, 2))
        assert heatmap.cursor_cell()[1:] == (date(2022, 8, 1), date(2022, 8, 31))
        assert heatmap.cursor_state() is S.RUNNING
