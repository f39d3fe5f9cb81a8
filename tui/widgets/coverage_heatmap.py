"""The coverage heatmap: one line per phase summary and processor, one column per date bucket.

It is the dashboard's main view: where the holes are, what is running, what failed, at a glance
over a multi-year range. It draws a `core.grid.Grid` (codes copied from a core snapshot and kept
up to date in place by `core.grid.refresh_cells`) through Textual's Line API, because a
2,000-day x 25-row grid would be far too many widgets and far too slow as a `DataTable`.

Glyphs (each state has its own, so the map reads without colour, e.g. on a monochrome terminal
or for a colour-blind operator) and colours (component classes, themed):

    state          glyph  component class           colour
    complete         █    heatmap--complete         $success
    partial          ▒    heatmap--partial          $warning
    missing          ·    heatmap--missing          $text-warning (to do, not an error)
    not_expected    " "   heatmap--not-expected     $foreground-disabled (blank cell)
    skipped          ─    heatmap--skipped          $foreground-muted
    queued           ○    heatmap--queued           $text-primary (never the complete green)
    running          ▶    heatmap--running          bold $text on $primary
    failed           ✗    heatmap--failed           bold $text on $error
    blocked          ▪    heatmap--blocked          bold $foreground
    known_empty      □    heatmap--known-empty      $success-darken-2
    cancelled        ⊘    heatmap--cancelled        bold $text-secondary (not red: not a failure)

Red is for failures only (a failed cell, or a bucket holding one): a hole still to fill is not
an error, and a half-done month must not look like a broken one.

Zoom: "day" is one column per calendar day, "week" one per ISO week (Monday to Sunday), "month"
one per calendar month. A run of columns that no row expects, at least `GAP_MIN_DAYS` long (an
off-season), is squeezed into one thin gap column (┊): it holds nothing to see or do, and
drawn in full it would take a third of a 3-year NBA range's width. Columns are one character
wide, or wider (up to `MAX_CELL_WIDTH`) when the width leaves room, so a month zoom fills a
wide terminal instead of its left quarter. A week or month column shows the WORST state of its days
(`core.coverage.worst`; not_expected only when every day is) in that state's colour. When the
worst is partial or missing but some days of the bucket are complete, the bucket is partly
done: a bar ▁▂▃▄▅▆▇ gives the share complete among its due days (expected and not skipped), in
the `heatmap--share` colour ($warning, the partial colour), whatever is missing in it (a full
bucket is █, nothing done keeps the state's own glyph). The legend shows the bar next to the
states.

Layout: two header lines that never scroll vertically (season names from `set_grid(seasons=)`,
then a month axis with the year at each January and at the start; a label that does not fit
its room is abbreviated, "2021-22" -> "21-22", or left out, never cut) and a label column
(`LABEL_WIDTH` cells: phase rows bold, processors indented) that never scrolls horizontally.
The top-left corner shows the zoom and the cursor's dates and state, in words, so the cursor
cell (drawn on a bright `heatmap--cursor` background, in its state's colour; a full block turns
into ■ there so the cursor still shows) is never ambiguous. The cursor's row label
(`heatmap--cursor-label`) and its column in the month axis (`heatmap--cursor-header`) are lit too.

Keys: arrows and h/j/k/l move, Home/End go to the first/last column, PageUp/PageDown move a
page of columns, g/G the first/last row, z cycles zoom (month -> week -> day -> month) keeping
the cursor on the same date, enter (or a double click) posts `CellSelected`. `[` folds the
cursor's phase to its summary row (▸; ▾ when unfolded) or unfolds it, `]` unfolds every phase;
on a short terminal that is what keeps the phases that matter on screen. Space marks the cursor's
cells (a phase row: its processors') for the dashboard's bulk actions, drawn underlined on a grey
of their own (not a state's colour: in the default theme the accent is the partial orange), with
a ● before the row's label; esc unmarks. `set_filter` (the
dashboard's `/`) keeps the processor rows matching its words (`core.grid.rows_matching`), phase
rows always. Rows scroll under the
headers to keep the cursor in view. A click moves the cursor; every move posts one coalesced
`CellHighlighted`, and so does a `refresh_rows` that changes the state under the cursor (a
detail pane following it stays true).

Speed: `render_line` does no I/O and almost no work when warm. Each row's columns (worst code,
glyph) are aggregated once per (row, zoom) with bytes operations, widened once per cell width,
and kept until that row changes; finished line strips live in an LRU cache keyed by row, the
row's version, the widget's generation, zoom, horizontal scroll, width, room and (for the cursor
row) the cursor column. So `refresh_rows` only bumps the changed rows' versions, and a cursor
move rebuilds two lines.
Runs of same-state cells become one Segment. Styles are looked up once and again only when
`notify_style_update` reports a real change (a theme switch), which bumps the generation.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import accumulate, pairwise
from typing import ClassVar, Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from core.coverage import WORST_FIRST, CellState
from core.grid import CODE, CODES, Grid, GridRow, quiet_runs, rows_matching
from core.printable import strip_controls
from tui.text import MARK

Zoom = Literal["day", "week", "month"]

#: Finest first: zoom-to-fit takes the first one whose columns fit the width.
ZOOMS: tuple[Zoom, ...] = ("day", "week", "month")
#: `z` goes coarse to fine and wraps, so a first press from the fitted overview zooms in.
NEXT_ZOOM: dict[str, Zoom] = {"month": "week", "week": "day", "day": "month"}

GLYPHS: dict[CellState, str] = {
    CellState.COMPLETE: "█",
    CellState.PARTIAL: "▒",
    CellState.MISSING: "·",
    CellState.NOT_EXPECTED: " ",
    CellState.SKIPPED: "─",
    CellState.QUEUED: "○",
    CellState.RUNNING: "▶",
    CellState.FAILED: "✗",
    CellState.BLOCKED: "▪",
    # Hollow where complete is full: counted complete, yet no rows are there.
    CellState.KNOWN_EMPTY: "□",
    # Struck through: stopped on purpose, still to do.
    CellState.CANCELLED: "⊘",
}

#: Share complete of a partial/missing bucket that is partly done, lowest to highest.
BARS = "▁▂▃▄▅▆▇"

#: Drawn for a gap: a run of columns no row expects (an off-season), squeezed into one.
GAP_GLYPH = "┊"
#: The shortest run of days no row expects that becomes a gap: an All-Star break stays drawn.
GAP_MIN_DAYS = 14
#: How wide a column grows when the width leaves room: beyond this a cell stops reading as one.
MAX_CELL_WIDTH = 8

#: Theme-variable colours per state. Shared by the heatmap and its legend so both always agree.
STATE_CSS: dict[CellState, str] = {
    CellState.COMPLETE: "color: $success;",
    CellState.PARTIAL: "color: $warning;",
    CellState.MISSING: "color: $text-warning;",
    CellState.NOT_EXPECTED: "color: $foreground-disabled;",
    CellState.SKIPPED: "color: $foreground-muted;",
    CellState.QUEUED: "color: $text-primary;",
    CellState.RUNNING: "color: $text; background: $primary; text-style: bold;",
    CellState.FAILED: "color: $text; background: $error; text-style: bold;",
    CellState.BLOCKED: "color: $foreground; text-style: bold;",
    CellState.KNOWN_EMPTY: "color: $success-darken-2;",
    CellState.CANCELLED: "color: $text-secondary; text-style: bold;",
}

#: A partly done bucket's share bar: the partial colour, never that of what is missing in it.
SHARE_CSS = "color: $warning;"

#: A cursor cell whose glyph fills the cell would hide the cursor background: draw this instead.
_CURSOR_FILL = "■"
_FILLS = frozenset("█" + BARS)
#: What a character of a row strip is drawn as (besides an ordinary cell).
_MARKED = b"\x01"
_CURSOR = b"\x02"


def state_class(state: CellState) -> str:
    """The component class of a state (`heatmap--not-expected` for NOT_EXPECTED)."""
    return "heatmap--" + state.value.replace("_", "-")


def _state_rules(selector: str) -> str:
    rules = [f"{selector} > .{state_class(state)} {{ {css} }}" for state, css in STATE_CSS.items()]
    rules.append(f"{selector} > .heatmap--share {{ {SHARE_CSS} }}")
    return "\n".join(rules)


_COMPLETE = CODE[CellState.COMPLETE]
_PARTIAL = CODE[CellState.PARTIAL]
_MISSING = CODE[CellState.MISSING]
_SKIPPED = CODE[CellState.SKIPPED]
_NOT_EXPECTED = CODE[CellState.NOT_EXPECTED]
#: Cells no action takes: nothing is expected there, or the config skips them.
_UNMARKABLE = frozenset((_NOT_EXPECTED, CODE[CellState.SKIPPED]))
#: The draw code of a partly done bucket: past the state codes, it picks the share style.
_SHARE = len(CODES)
#: code -> rank in WORST_FIRST (0 = worst), as a bytes.translate table: min() of a translated
#: slice is the worst state of a bucket at C speed.
_RANK_OF_CODE = bytes(WORST_FIRST.index(CODES[i]) if i < len(CODES) else 255 for i in range(256))
_CODE_OF_RANK = bytes(CODE[WORST_FIRST[i]] if i < len(WORST_FIRST) else 255 for i in range(256))
#: code -> glyph, as a str.translate table over codes decoded as latin-1.
_GLYPH_OF_CODE = {i: GLYPHS[state] for i, state in enumerate(CODES)}
#: Runs of one repeated byte: the cells one Segment can draw.
_RUNS = re.compile(rb"(.)\1*", re.DOTALL)
#: A partial or missing worst code: the buckets that may draw a share bar.
_DUE = re.compile(re.escape(bytes([_PARTIAL])) + b"|" + re.escape(bytes([_MISSING])))
#: per cell width, a bytes.translate table: gap flag -> characters of the column
_WIDTH_OF_GAP = [bytes([cell, 1] + [0] * 254) for cell in range(MAX_CELL_WIDTH + 1)]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True)
class _Columns:
    """The columns of one zoom: column c covers day indexes bounds[c] to bounds[c + 1] - 1.

    Each bucket (a day, an ISO week, a month) is a column, except that a run of buckets no row
    expects is one gap column."""

    bounds: tuple[int, ...]
    #: (first, past-the-last) day index per bucket, gaps not merged: what rows aggregate over
    buckets: tuple[tuple[int, int], ...]
    #: the buckets in order as (first, past-the-last) bucket index and whether that run is one
    #: gap column; None when there is no gap
    pieces: tuple[tuple[int, int, bool], ...] | None
    #: per column, 1 for a gap
    gaps: bytes

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def of_day_index(self, index: int) -> int:
        return bisect_right(self.bounds, index) - 1

    def is_gap(self, column: int) -> bool:
        return self.gaps[column] == 1


@dataclass(frozen=True)
class _Layout:
    """Where the columns of one zoom fall at one width: ordinary columns `cell` characters wide,
    gap columns one."""

    cell: int
    #: the first character of each column, then the total width
    x: tuple[int, ...]

    @property
    def width(self) -> int:
        return self.x[-1]

    def span(self, column: int) -> tuple[int, int]:
        return self.x[column], self.x[column + 1]

    def column_at(self, char: int) -> int:
        return bisect_right(self.x, char) - 1


@dataclass(frozen=True)
class _RowCells:
    """One row at one zoom: per column the worst code; per character the draw code (the worst,
    or _SHARE for a partly done bucket) and the glyph drawn, for columns `cell` wide."""

    codes: bytes
    draw: bytes
    glyphs: str
    cell: int = 1


@dataclass(frozen=True)
class _Styles:
    """Rich styles resolved from the component classes, looked up once per theme."""

    base: Style
    states: tuple[Style, ...]  # by draw code
    cursor: tuple[Style, ...]  # by draw code: the cursor background, the state's colour
    marked: tuple[Style, ...]  # by draw code: the mark background, the state's colour
    label: Style
    phase: Style
    cursor_label: Style
    header: Style
    cursor_header: Style


def _bucket_bounds(days: Sequence[date], zoom: Zoom) -> list[int]:
    if zoom == "day":
        return list(range(len(days) + 1))
    bounds = []
    previous: tuple[int, int] | None = None
    for i, day in enumerate(days):
        key = day.isocalendar()[:2] if zoom == "week" else (day.year, day.month)
        if key != previous:
            bounds.append(i)
            previous = key
    bounds.append(len(days))
    return bounds


def _columns(days: Sequence[date], zoom: Zoom, quiet: Sequence[tuple[int, int]]) -> _Columns:
    """The zoom's buckets, each run of whole buckets inside a quiet run of days made one gap."""
    bounds = _bucket_bounds(days, zoom)
    buckets = tuple(pairwise(bounds))
    runs = []
    for first, stop in quiet:
        lo, hi = bisect_left(bounds, first), bisect_right(bounds, stop) - 1
        if hi > lo and bounds[hi] - bounds[lo] >= GAP_MIN_DAYS:
            runs.append((lo, hi))
    if not runs:
        return _Columns(tuple(bounds), buckets, None, bytes(len(buckets)))
    pieces: list[tuple[int, int, bool]] = []
    at = 0
    for lo, hi in runs:
        if lo > at:
            pieces.append((at, lo, False))
        pieces.append((lo, hi, True))
        at = hi
    if at < len(buckets):
        pieces.append((at, len(buckets), False))
    columns: list[int] = []
    gaps = bytearray()
    for lo, hi, gap in pieces:
        columns += [lo] if gap else range(lo, hi)
        gaps += b"\x01" if gap else bytes(hi - lo)
    merged = (*(bounds[b] for b in columns), len(days))
    return _Columns(merged, buckets, tuple(pieces), bytes(gaps))


def _layout(columns: _Columns, room: int) -> _Layout:
    """Ordinary columns as wide as the room allows, up to MAX_CELL_WIDTH; gaps one character."""
    gaps = columns.gaps.count(1)
    ordinary = len(columns) - gaps
    cell = 1
    if ordinary and room - gaps > ordinary:
        cell = max(1, min(MAX_CELL_WIDTH, (room - gaps) // ordinary))
    widths = columns.gaps.translate(_WIDTH_OF_GAP[cell]) if cell > 1 else b""
    if not widths:
        return _Layout(1, tuple(range(len(columns) + 1)))
    return _Layout(cell, (0, *accumulate(widths)))


def _aggregate(codes: bytes, columns: _Columns, zoom: Zoom) -> _RowCells:
    """Worst code and glyph per column. Why bytes tricks and one comprehension: a cold
    week-zoom frame aggregates ~2,000 days x 25 rows inside the 16 ms frame budget."""
    if zoom == "day":
        cells = _RowCells(codes, codes, codes.decode("latin-1").translate(_GLYPH_OF_CODE))
        return _squeeze(cells, columns)
    ranks = codes.translate(_RANK_OF_CODE)
    worst = bytes([min(ranks[lo:hi]) for lo, hi in columns.buckets]).translate(_CODE_OF_RANK)
    glyphs = worst.decode("latin-1").translate(_GLYPH_OF_CODE)
    # Partial or missing buckets that are partly done draw the share bar instead.
    bars: list[tuple[int, str]] = []
    for match in _DUE.finditer(worst):
        c = match.start()
        lo, hi = columns.buckets[c]
        chunk = codes[lo:hi]
        done = chunk.count(_COMPLETE)
        if done:
            due = hi - lo - chunk.count(_NOT_EXPECTED) - chunk.count(_SKIPPED)
            bars.append((c, BARS[min(len(BARS), math.ceil(done * len(BARS) / due)) - 1]))
    if not bars:
        return _squeeze(_RowCells(worst, worst, glyphs), columns)
    chars = list(glyphs)
    draw = bytearray(worst)
    for c, bar in bars:
        chars[c] = bar
        draw[c] = _SHARE
    return _squeeze(_RowCells(worst, bytes(draw), "".join(chars)), columns)


def _squeeze(cells: _RowCells, columns: _Columns) -> _RowCells:
    """Per bucket -> per column: each gap's buckets (all not expected) become one gap cell."""
    if columns.pieces is None:
        return cells
    gap = bytes([_NOT_EXPECTED])
    codes, draw, glyphs = cells.codes, cells.draw, cells.glyphs
    return _RowCells(
        b"".join(gap if is_gap else codes[lo:hi] for lo, hi, is_gap in columns.pieces),
        b"".join(gap if is_gap else draw[lo:hi] for lo, hi, is_gap in columns.pieces),
        "".join(GAP_GLYPH if is_gap else glyphs[lo:hi] for lo, hi, is_gap in columns.pieces),
    )


def _widen(cells: _RowCells, columns: _Columns, cell: int) -> _RowCells:
    """Per column -> per character, ordinary columns `cell` characters wide."""
    if cell == 1:
        return cells
    widths = [1 if gap else cell for gap in columns.gaps]
    draw, glyphs = cells.draw, cells.glyphs
    return _RowCells(
        cells.codes,
        b"".join(draw[c : c + 1] * w for c, w in enumerate(widths)),
        "".join(glyphs[c] * w for c, w in enumerate(widths)),
        cell,
    )


#: What separates labels on the header lines.
_SEPARATORS = frozenset(" ─" + GAP_GLYPH)


def _whole_words(text: str, first: int, last: int) -> str:
    """text[first:last] without the pieces of labels that the view's edges cut through."""
    shown = text[first:last]
    if not shown:
        return shown
    if first > 0 and text[first - 1] not in _SEPARATORS and shown[0] not in _SEPARATORS:
        cut = next((i for i, char in enumerate(shown) if char in _SEPARATORS), len(shown))
        shown = " " * cut + shown[cut:]
    if last < len(text) and text[last] not in _SEPARATORS and shown[-1] not in _SEPARATORS:
        keep = next((i for i in range(len(shown), 0, -1) if shown[i - 1] in _SEPARATORS), 0)
        shown = shown[:keep] + " " * (len(shown) - keep)
    return shown


def _short_season(name: str) -> str | None:
    """ "2021-22" or "2021-2022" -> "21-22": what fits when the season's columns are few."""
    match = re.fullmatch(r"\d\d(\d\d)([-/])(?:\d\d)?(\d\d)", name)
    return f"{match[1]}{match[2]}{match[3]}" if match else None


def _share_complete(codes: bytes) -> float | None:
    due = len(codes) - codes.count(_NOT_EXPECTED) - codes.count(_SKIPPED)
    return codes.count(_COMPLETE) / due if due else None


class CoverageHeatmap(ScrollView, can_focus=True):
    """Phases and processors x dates, coloured by cell state, with a keyboard cursor."""

    LABEL_WIDTH: ClassVar[int] = 30
    """Cells of the fixed label column, its separator included."""
    HEADER_HEIGHT: ClassVar[int] = 2
    """Fixed header lines: seasons, then the month axis."""

    ALLOW_SELECT = False
    """A double click selects a cell, not text."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *(state_class(state) for state in CellState),
        "heatmap--share",
        "heatmap--cursor",
        "heatmap--marked",
        "heatmap--label",
        "heatmap--phase",
        "heatmap--cursor-label",
        "heatmap--header",
        "heatmap--cursor-header",
    }

    DEFAULT_CSS = f"""
    CoverageHeatmap {{
        width: 1fr;
        height: 1fr;
        background: $surface;
    }}
    {_state_rules("CoverageHeatmap")}
    CoverageHeatmap > .heatmap--cursor {{ background: $foreground; text-style: bold; }}
    CoverageHeatmap > .heatmap--marked {{
        background: $foreground 35%;
        text-style: bold underline;
    }}
    CoverageHeatmap > .heatmap--label {{ color: $text; }}
    CoverageHeatmap > .heatmap--phase {{ color: $text; text-style: bold; }}
    CoverageHeatmap > .heatmap--cursor-label {{
        color: $block-cursor-foreground;
        background: $block-cursor-background;
        text-style: bold;
    }}
    CoverageHeatmap > .heatmap--header {{ color: $text-muted; }}
    CoverageHeatmap > .heatmap--cursor-header {{
        color: $background;
        background: $foreground;
        text-style: bold;
    }}
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("z", "cycle_zoom", "Zoom", id="heatmap.zoom"),
        Binding("enter", "select_cell", "Open cell", show=False, id="heatmap.select"),
        Binding(
            "left_square_bracket",
            "toggle_fold",
            "Fold",
            id="heatmap.fold",
            tooltip="Fold the cursor's phase to its summary row, or unfold it",
        ),
        Binding(
            "right_square_bracket", "unfold_all", "Unfold all", show=False, id="heatmap.unfold"
        ),
        Binding("up,k", "cursor_up", "Up", show=False, id="heatmap.up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="heatmap.down"),
        Binding("left,h", "cursor_left", "Earlier", show=False, id="heatmap.left"),
        Binding("right,l", "cursor_right", "Later", show=False, id="heatmap.right"),
        Binding("home", "first_column", "First date", show=False, id="heatmap.first"),
        Binding("end", "last_column", "Last date", show=False, id="heatmap.last"),
        Binding("pageup", "page_left", "Page earlier", show=False, id="heatmap.page_left"),
        Binding("pagedown", "page_right", "Page later", show=False, id="heatmap.page_right"),
        Binding("g", "first_row", "First row", show=False, id="heatmap.top"),
        Binding("G", "last_row", "Last row", show=False, id="heatmap.bottom"),
        Binding(
            "space",
            "mark",
            "Mark",
            show=False,
            id="heatmap.mark",
            tooltip="Mark the cursor's cells (a phase row: its processors') for r, c, e, X; "
            "again unmarks",
        ),
        Binding("escape", "clear_marks", "Clear marks", show=False, id="heatmap.clear_marks"),
    ]

    class CellHighlighted(Message):
        """The cursor moved to another cell (or zoom): a detail pane may follow it.

        Coalesced: a newer one replaces any still queued, so holding an arrow key never floods
        the listeners."""

        def __init__(
            self, heatmap: CoverageHeatmap, row: GridRow, start: date, end: date, state: CellState
        ) -> None:
            super().__init__()
            self.heatmap = heatmap
            self.row = row
            self.start = start
            self.end = end
            #: the cell's state (a bucket's worst)
            self.state = state

        @property
        def control(self) -> CoverageHeatmap:
            return self.heatmap

        def can_replace(self, message: Message) -> bool:
            return (
                isinstance(message, CoverageHeatmap.CellHighlighted)
                and message.heatmap is self.heatmap
            )

    class FilterChanged(Message):
        """The heatmap changed its filter's rows on its own (states changed under a state
        word, or a jump cleared it): a note saying what the filter keeps follows."""

    class MarksChanged(Message):
        """Cells were marked or unmarked: what the bulk actions (r, c, e, X) now act on."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class CellSelected(Message):
        """Enter or a double click on a cell: open its details (attempts, logs)."""

        def __init__(
            self, heatmap: CoverageHeatmap, row: GridRow, start: date, end: date, state: CellState
        ) -> None:
            super().__init__()
            self.heatmap = heatmap
            self.row = row
            self.start = start
            self.end = end
            self.state = state

        @property
        def control(self) -> CoverageHeatmap:
            return self.heatmap

    zoom: reactive[Zoom] = reactive("day", init=False)
    """Column granularity. Until set (by code or `z`) it follows the width: zoom to fit."""

    cursor: reactive[tuple[int, int]] = reactive((0, 0), repaint=False, init=False)
    """(row index in the grid, column index in the current zoom's columns); never a row of a
    folded phase."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._grid: Grid | None = None
        self._seasons: tuple[tuple[str, date, date], ...] = ()
        #: bumped on new data or a new theme: every cached strip becomes unreachable
        self._generation = 0
        #: bumped per row by refresh_rows: only that row's strips become unreachable
        self._row_version: list[int] = []
        #: phases (by name) shown as their summary row only; kept across new grids
        self._folded: set[str] = set()
        #: `/` on the heatmap: the processor rows it keeps (phase rows always stay)
        self._filter = ""
        self._matching: set[int] | None = None
        #: the grid rows on screen, top to bottom, and each grid row's place among them (-1:
        #: folded away)
        self._shown: list[int] = []
        self._place: list[int] = []
        #: day runs no row expects, the gaps' material (from set_grid)
        self._quiet: list[tuple[int, int]] = []
        self._columns: dict[Zoom, _Columns] = {}
        self._layouts: dict[tuple[Zoom, int], _Layout] = {}
        #: per (row, zoom): aggregated per column, and widened per character for the layout
        self._aggregated: dict[tuple[int, Zoom], _RowCells] = {}
        self._cells: dict[tuple[int, Zoom], _RowCells] = {}
        self._axis: dict[tuple[Zoom, int], tuple[str, str]] = {}
        self._strips: LRUCache[tuple[object, ...], Strip] = LRUCache(1024)
        self._styles: _Styles | None = None
        self._previous_styles: _Styles | None = None
        #: the date the cursor means: kept across zoom changes so month -> week -> day returns
        #: to the day the operator was on, not to the start of the month
        self._anchor: date | None = None
        #: zoom to fit until the zoom is chosen explicitly
        self._auto_zoom = True
        self._fitting = False
        #: cells marked with space, for bulk actions: per processor, its days (dates, so marks
        #: survive new grids and zooms)
        self._marked: dict[str, set[date]] = {}

    # ----------------------------------------------------------------------------------- data

    @property
    def grid(self) -> Grid | None:
        """The grid on display (the caller's object: it mutates codes, then `refresh_rows`)."""
        return self._grid

    def set_grid(self, grid: Grid, seasons: Sequence[tuple[str, date, date]] = ()) -> None:
        """Show new data. Keeps the cursor on the same row key and date when they still exist."""
        old_key = self._cursor_row_key()
        self._grid = grid
        self._seasons = tuple(seasons)
        self._generation += 1
        self._row_version = [0] * len(grid.rows)
        self._fold_rows()
        self._quiet = quiet_runs(grid, GAP_MIN_DAYS)
        self._columns.clear()
        self._layouts.clear()
        self._aggregated.clear()
        self._cells.clear()
        self._axis.clear()
        self._strips.clear()
        if self._auto_zoom:
            self._fit_zoom()
        row = 0
        if old_key is not None:
            row = next((i for i, r in enumerate(grid.rows) if r.key == old_key), 0)
        row = self._shown_row(row)
        anchor = self._anchor
        if anchor is None or not grid.days or not grid.days[0] <= anchor <= grid.days[-1]:
            anchor = grid.days[0] if grid.days else None
        self._anchor = anchor
        column = self._column_of_date(anchor) if anchor is not None else 0
        self.set_reactive(CoverageHeatmap.cursor, self.validate_cursor((row, column)))
        self._update_virtual_size()
        self.refresh()

    def refresh_rows(self, rows: Iterable[int]) -> None:
        """Repaint only these rows: the caller changed their codes in place."""
        if self._grid is None:
            return
        count = len(self._grid.rows)
        rows = {row for row in rows if 0 <= row < count}
        not_expected = bytes([_NOT_EXPECTED])
        for row in rows:
            codes = self._grid.codes[row]
            if any(codes.count(not_expected, a, b) != b - a for a, b in self._quiet):
                # A gap is no longer empty: lay the columns out again.
                before = self.cursor_state()
                self.set_grid(self._grid, self._seasons)
                if self.cursor_state() != before:
                    self._post_highlight()
                return
        if self._filter:
            # a state word keeps the rows that have that state: which ones may have changed
            shown = self._shown
            self._fold_rows()
            if self._shown != shown:
                self._relist()
                self.post_message(self.FilterChanged())
        cursor_row = self.cursor[0]
        top = round(self.scroll_y)
        body = self._body_height()
        for row in rows:
            before = self.cursor_state() if row == cursor_row else None
            self._row_version[row] += 1
            for zoom in ZOOMS:
                self._aggregated.pop((row, zoom), None)
                self._cells.pop((row, zoom), None)
            if row == cursor_row:
                # The corner names the cursor's state, and a pane following the cursor must
                # hear that the cell under it changed (queued -> running -> complete).
                self.refresh(Region(0, 0, self.size.width, self.HEADER_HEIGHT))
                if self.cursor_state() != before:
                    self._post_highlight()
            place = self._place[row]
            if place >= 0 and top <= place < top + body:
                self.refresh(Region(0, self.HEADER_HEIGHT + place - top, self.size.width, 1))

    def cursor_cell(self) -> tuple[GridRow, date, date] | None:
        """The cursor's row and the first and last day of its column."""
        grid = self._grid
        if grid is None or not grid.rows or not grid.days:
            return None
        row, column = self.cursor
        start, end = self._column_dates(column)
        return grid.rows[row], start, end

    def cursor_state(self) -> CellState | None:
        """The state drawn under the cursor (a bucket's worst)."""
        if self._grid is None or not self._grid.rows or not self._grid.days:
            return None
        row, column = self.cursor
        return CODES[self._aggregated_cells(row).codes[column]]

    def move_to(self, key: str | None = None, day: date | None = None) -> None:
        """Jump to a row (by key) and/or a date; a date outside the range goes to its edge.

        Raises KeyError for a key that is not a row of the grid."""
        grid = self._grid
        if grid is None or not grid.rows or not grid.days:
            return
        row, column = self.cursor
        if key is not None:
            row = next((i for i, r in enumerate(grid.rows) if r.key == key), -1)
            if row < 0:
                raise KeyError(key)
            if self._place[row] < 0:  # a jump shows its target
                self._set_folded(grid.rows[row].phase, False)
            if self._place[row] < 0:  # the filter keeps it out: the jump wins
                self.set_filter("")
                self.post_message(self.FilterChanged())
        if day is not None:
            day = min(max(day, grid.days[0]), grid.days[-1])
            column = self._column_of_date(day)
        self.cursor = (row, column)
        if day is not None:
            self._anchor = day
        self._scroll_to_cursor(center=True)

    # ----------------------------------------------------------------------------- folding

    def _fold_rows(self) -> None:
        """Recompute which rows are shown, after new data, a fold or a filter."""
        rows = self._grid.rows if self._grid is not None else ()
        self._matching = None if self._grid is None else rows_matching(self._grid, self._filter)
        kept = self._matching
        self._shown = [
            i
            for i, r in enumerate(rows)
            if r.is_phase or (r.phase not in self._folded and (kept is None or i in kept))
        ]
        self._place = [-1] * len(rows)
        for place, row in enumerate(self._shown):
            self._place[row] = place

    # ----------------------------------------------------------------------------- filter

    @property
    def filter(self) -> str:
        return self._filter

    @property
    def filter_counts(self) -> tuple[int, int]:
        """(processor rows the filter keeps, processor rows)."""
        rows = self._grid.rows if self._grid is not None else ()
        total = sum(not r.is_phase for r in rows)
        return (total if self._matching is None else len(self._matching)), total

    def set_filter(self, text: str) -> None:
        """Keep only the processor rows matching `text` (`core.grid.rows_matching`); the
        cursor moves to the nearest row still shown."""
        text = " ".join(text.split())
        if text == self._filter:
            return
        self._filter = text
        self._relist()

    def _relist(self) -> None:
        """The shown rows changed: the cursor, the scroll range and the picture follow."""
        row, column = self.cursor
        self._fold_rows()
        self.set_reactive(CoverageHeatmap.cursor, (self._shown_row(row), column))
        self._update_virtual_size()
        self._scroll_to_cursor()
        self.refresh()
        if self.cursor[0] != row:
            self._post_highlight()

    def _summary_row(self, phase: str) -> int | None:
        rows = self._grid.rows if self._grid is not None else ()
        return next((i for i, r in enumerate(rows) if r.is_phase and r.phase == phase), None)

    def _shown_row(self, row: int) -> int:
        """`row`, or the summary row of its phase when that phase is folded, or the row above
        it that the filter keeps (its phase's summary row at worst)."""
        if self._grid is None or not self._place or self._place[row] >= 0:
            return row
        if self._grid.rows[row].phase in self._folded:
            summary = self._summary_row(self._grid.rows[row].phase)
            return row if summary is None else summary
        return next((r for r in range(row, -1, -1) if self._place[r] >= 0), self._shown[0])

    def _set_folded(self, phase: str, folded: bool) -> None:
        summary = self._summary_row(phase)
        if (phase in self._folded) == folded or summary is None:
            return  # a phase without a summary row has nothing to fold into
        if folded:
            self._folded.add(phase)
        else:
            self._folded.discard(phase)
        self._row_version[summary] += 1  # its ▸/▾ mark
        self._relist()

    # ------------------------------------------------------------------------------ marks

    @property
    def marked(self) -> frozenset[tuple[str, date]]:
        """The marked cells, (processor, day), that the grid on display holds."""
        grid = self._grid
        if grid is None or not grid.days or not self._marked:
            return frozenset()
        first, last = grid.days[0], grid.days[-1]
        keys = {r.key for r in grid.rows if not r.is_phase}
        return frozenset(
            (key, day)
            for key, days in self._marked.items()
            if key in keys
            for day in days
            if first <= day <= last
        )

    def cursor_cells(self) -> frozenset[tuple[str, date]]:
        """The cells under the cursor that an action can take: the column's days that the
        row expects (not skipped), of the row's processor or, on a phase row, of each of its
        processors that the filter keeps."""
        grid = self._grid
        if grid is None or not grid.rows or not grid.days:
            return frozenset()
        row, column = self.cursor
        bounds = self._columns_of(self.zoom).bounds
        lo, hi = bounds[column], bounds[column + 1]
        return frozenset(
            (grid.rows[i].key, grid.days[d])
            for i in self._rows_under(row)
            for d in range(lo, hi)
            if grid.codes[i][d] not in _UNMARKABLE
        )

    def chosen_cells(self) -> frozenset[tuple[str, date]]:
        """What a bulk action takes: the marked cells, else the cursor's."""
        return self.marked or self.cursor_cells()

    def clear_marks(self) -> bool:
        """Unmark every cell; False when none was marked."""
        if not self._marked:
            return False
        self._marked.clear()
        self._marks_changed()
        return True

    def _rows_under(self, row: int) -> list[int]:
        """The processor rows a cursor on `row` stands for."""
        assert self._grid is not None
        target = self._grid.rows[row]
        if not target.is_phase:
            return [row]
        kept = self._matching
        return [
            i
            for i, r in enumerate(self._grid.rows)
            if not r.is_phase and r.phase == target.phase and (kept is None or i in kept)
        ]

    def _marks_changed(self) -> None:
        # Marks are drawn into the row strips (and a phase row shows its processors'): every
        # row's cache key changes; one repaint of what is on screen.
        self._row_version = [v + 1 for v in self._row_version]
        self.refresh()
        self.post_message(self.MarksChanged(len(self.marked)))

    def _marked_columns(self, row: int) -> list[int]:
        """The columns of `row` at the current zoom holding a marked day (a phase row: a
        marked day of one of its processors)."""
        grid = self._grid
        assert grid is not None
        target = grid.rows[row]
        keys = (
            [r.key for r in grid.rows if not r.is_phase and r.phase == target.phase]
            if target.is_phase
            else [target.key]
        )
        of_day = self._columns_of(self.zoom).of_day_index
        return sorted(
            {
                of_day(index)
                for key in keys
                for day in self._marked.get(key, ())
                if (index := grid.column_of(day)) is not None
            }
        )

    # ---------------------------------------------------------------------------- geometry

    def _cursor_row_key(self) -> str | None:
        if self._grid is None or not self._grid.rows:
            return None
        return self._grid.rows[min(self.cursor[0], len(self._grid.rows) - 1)].key

    def _columns_of(self, zoom: Zoom) -> _Columns:
        columns = self._columns.get(zoom)
        if columns is None:
            days = self._grid.days if self._grid is not None else ()
            columns = self._columns[zoom] = _columns(days, zoom, self._quiet)
        return columns

    def _layout(self) -> _Layout:
        key = (self.zoom, self._cell_width())
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = _layout(self._columns_of(self.zoom), key[1])
        return layout

    def _column_count(self) -> int:
        return len(self._columns_of(self.zoom)) if self._grid is not None else 0

    def _column_dates(self, column: int) -> tuple[date, date]:
        """The first and last day of a column (of a gap: the whole off-season)."""
        assert self._grid is not None
        bounds = self._columns_of(self.zoom).bounds
        return self._grid.days[bounds[column]], self._grid.days[bounds[column + 1] - 1]

    def _column_of_date(self, day: date) -> int:
        assert self._grid is not None
        index = self._grid.column_of(day)
        if index is None:
            index = 0 if day < self._grid.days[0] else len(self._grid.days) - 1
        return self._columns_of(self.zoom).of_day_index(index)

    def _cell_width(self) -> int:
        # Not `size`: scrollbars cover the last columns and lines of it.
        return max(0, self.scrollable_content_region.width - self.LABEL_WIDTH)

    def _body_height(self) -> int:
        return max(0, self.scrollable_content_region.height - self.HEADER_HEIGHT)

    def _update_virtual_size(self) -> None:
        width = self._layout().width if self._grid is not None else 0
        # The layout reactive on purpose, not tui.widgets.scrolling.resize_content: the height
        # is auto, and a zoom without the layout was slower in benchmarks/dashboard_loop.py
        # (median 55 ms against 14 in the same hour; the cause was not looked into).
        self.virtual_size = Size(self.LABEL_WIDTH + width, self.HEADER_HEIGHT + len(self._shown))

    def _relayout(self) -> None:
        """The room changed (a resize, a scrollbar): zoom, cell width, cursor in view."""
        if self._auto_zoom:
            self._fit_zoom()
        if self._grid is not None:
            self._update_virtual_size()
        self._scroll_to_cursor()

    def _fit_zoom(self) -> None:
        """The finest zoom whose columns all fit the width (month when none does)."""
        width = self._cell_width()
        if self._grid is None or width <= 0:
            return
        fit: Zoom = next((z for z in ZOOMS if len(self._columns_of(z)) <= width), "month")
        if fit != self.zoom:
            self._fitting = True
            try:
                self.zoom = fit
            finally:
                self._fitting = False

    def _scroll_to_cursor(self, *, center: bool = False) -> None:
        row, column = self.cursor
        width, height = self._cell_width(), self._body_height()
        if width <= 0 or height <= 0 or not self._place:
            return
        row = self._place[row]
        left, right = self._layout().span(column) if self._column_count() else (0, 1)
        x, y = round(self.scroll_x), round(self.scroll_y)
        if center and not (x <= left and right <= x + width):
            x = (left + right - width) // 2
        elif left < x:
            x = left
        elif right > x + width:
            x = right - width
        if center and not (y <= row < y + height):
            y = row - height // 2
        elif row < y:
            y = row
        elif row >= y + height:
            y = row - height + 1
        self.scroll_to(max(0, x), max(0, y), animate=False)

    # ------------------------------------------------------------------------------ cursor

    def validate_cursor(self, cursor: tuple[int, int]) -> tuple[int, int]:
        rows = len(self._grid.rows) if self._grid is not None else 0
        columns = self._column_count()
        row, column = cursor
        row = self._shown_row(min(max(row, 0), max(rows - 1, 0)))
        return (row, min(max(column, 0), max(columns - 1, 0)))

    def watch_cursor(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        if self._grid is None or not self._grid.days:
            return
        self._anchor = self._column_dates(new[1])[0]
        self._refresh_cursor_cells(old, new)
        self._post_highlight()

    def _refresh_cursor_cells(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        """Repaint the old and new cursor cells, their labels and the header: nothing else."""
        top, left = round(self.scroll_y), round(self.scroll_x)
        regions = [Region(0, 0, self.size.width, self.HEADER_HEIGHT)]
        layout, count = self._layout(), self._column_count()
        for row, column in (old, new):
            if row >= len(self._place) or self._place[row] < 0 or column >= count:
                continue
            y = self.HEADER_HEIGHT + self._place[row] - top
            if y < self.HEADER_HEIGHT:
                continue
            x0, x1 = layout.span(column)
            regions.append(Region(0, y, self.LABEL_WIDTH, 1))
            regions.append(Region(self.LABEL_WIDTH + x0 - left, y, x1 - x0, 1))
        self.refresh(*regions)

    def _post_highlight(self) -> None:
        cell = self.cursor_cell()
        state = self.cursor_state()
        if cell is not None and state is not None:
            self.post_message(self.CellHighlighted(self, *cell, state))

    def validate_zoom(self, zoom: str) -> Zoom:
        if zoom not in ZOOMS:
            raise ValueError(f"zoom must be one of {ZOOMS}, not {zoom!r}")
        if not self._fitting:  # chosen (even if unchanged): stop zooming to fit
            self._auto_zoom = False
        return zoom

    def watch_zoom(self, old: Zoom, new: Zoom) -> None:
        if self._grid is None or not self._grid.days:
            return
        anchor = self._anchor or self._grid.days[0]
        cursor = self.validate_cursor((self.cursor[0], self._column_of_date(anchor)))
        self.set_reactive(CoverageHeatmap.cursor, cursor)
        self._update_virtual_size()
        self._scroll_to_cursor(center=True)
        self.refresh()
        self._post_highlight()

    def on_resize(self, event: events.Resize) -> None:
        # A shorter terminal must not leave the cursor below the last line shown.
        self._relayout()

    def watch_show_vertical_scrollbar(self, shown: bool) -> None:
        # The scrollbar covers the last columns without a resize: cells must fit what is left.
        self.call_after_refresh(self._relayout)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self._grid is None or not self._grid.days:
            return
        row, column = self.cursor
        if offset.y >= self.HEADER_HEIGHT:
            place = offset.y - self.HEADER_HEIGHT + round(self.scroll_y)
            if place >= len(self._shown):
                return
            row = self._shown[place]
        if offset.x >= self.LABEL_WIDTH:
            column = self._layout().column_at(offset.x - self.LABEL_WIDTH + round(self.scroll_x))
        if not 0 <= column < self._column_count():
            return
        self.cursor = (row, column)
        if event.chain >= 2:
            self.action_select_cell()

    # ----------------------------------------------------------------------------- actions

    def _move(self, rows: int = 0, columns: int = 0) -> None:
        """Move by shown rows (a folded phase's rows are skipped) and columns (a gap is stepped
        over: there is nothing in it)."""
        row, column = self.cursor
        if rows and self._shown:
            place = min(max(self._place[row] + rows, 0), len(self._shown) - 1)
            row = self._shown[place]
        row, target = self.validate_cursor((row, column + columns))
        count = self._column_count()
        if target != column and count and self._columns_of(self.zoom).is_gap(target):
            beyond = target + (1 if columns > 0 else -1)
            target = beyond if 0 <= beyond < count else target
        self.cursor = (row, target)
        self._scroll_to_cursor()

    def action_cursor_up(self) -> None:
        self._move(rows=-1)

    def action_cursor_down(self) -> None:
        self._move(rows=1)

    def action_cursor_left(self) -> None:
        self._move(columns=-1)

    def action_cursor_right(self) -> None:
        self._move(columns=1)

    def action_first_column(self) -> None:
        self._move(columns=-self.cursor[1])

    def action_last_column(self) -> None:
        self._move(columns=self._column_count())

    def action_page_left(self) -> None:
        self._move(columns=-max(1, self._cell_width() // self._layout().cell))

    def action_page_right(self) -> None:
        self._move(columns=max(1, self._cell_width() // self._layout().cell))

    def action_first_row(self) -> None:
        self._move(rows=-len(self._shown))

    def action_last_row(self) -> None:
        self._move(rows=len(self._shown))

    def action_toggle_fold(self) -> None:
        if self._grid is None or not self._grid.rows:
            return
        phase = self._grid.rows[self.cursor[0]].phase
        self._set_folded(phase, phase not in self._folded)

    def action_unfold_all(self) -> None:
        for phase in list(self._folded):
            self._set_folded(phase, False)

    def action_cycle_zoom(self) -> None:
        self.zoom = NEXT_ZOOM[self.zoom]

    def action_mark(self) -> None:
        """Mark the cursor's cells, or unmark them when all are marked; then step to the next
        date, so holding space marks a run of dates (as k9s steps down)."""
        cells = self.cursor_cells()
        if cells:
            if all(day in self._marked.get(key, ()) for key, day in cells):
                for key, day in cells:
                    self._marked[key].discard(day)
                self._marked = {key: days for key, days in self._marked.items() if days}
            else:
                for key, day in cells:
                    self._marked.setdefault(key, set()).add(day)
            self._marks_changed()
        self._move(columns=1)

    def action_clear_marks(self) -> None:
        self.clear_marks()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_marks":
            # Esc with nothing marked is the screen's ("back"), not swallowed here.
            return bool(self._marked)
        return True

    def action_select_cell(self) -> None:
        cell = self.cursor_cell()
        state = self.cursor_state()
        if cell is not None and state is not None:
            self.post_message(self.CellSelected(self, *cell, state))

    # ------------------------------------------------------------------------------ styles

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # Looked up again lazily; only a real change (a theme) bumps the generation there, so
        # a focus or hover restyle that changes nothing keeps every cached strip.
        self._styles = None

    def _get_styles(self) -> _Styles:
        styles = self._styles
        if styles is not None:
            return styles
        base = self.rich_style
        component = self.get_component_rich_style
        states = tuple(base + component(state_class(state)) for state in CODES)
        states += (base + component("heatmap--share"),)  # at _SHARE
        cursor = component("heatmap--cursor")
        marked = component("heatmap--marked")

        def over(background: Style) -> tuple[Style, ...]:
            # The state's colour (its background, for a state drawn on one) on `background`.
            return tuple(
                base
                + background
                + Style(
                    color=(style.bgcolor if style.bgcolor != base.bgcolor else None) or style.color
                )
                for style in states
            )

        styles = _Styles(
            base=base,
            states=states,
            cursor=over(cursor),
            marked=over(marked),
            label=base + component("heatmap--label"),
            phase=base + component("heatmap--phase"),
            cursor_label=base + component("heatmap--cursor-label"),
            header=base + component("heatmap--header"),
            cursor_header=base + component("heatmap--cursor-header"),
        )
        if self._previous_styles is not None and self._previous_styles != styles:
            self._generation += 1
        self._previous_styles = self._styles = styles
        return styles

    # ----------------------------------------------------------------------------- drawing

    def _aggregated_cells(self, row: int) -> _RowCells:
        """The row per column at the current zoom."""
        zoom = self.zoom
        cells = self._aggregated.get((row, zoom))
        if cells is None:
            assert self._grid is not None
            codes = bytes(self._grid.codes[row])
            cells = _aggregate(codes, self._columns_of(zoom), zoom)
            self._aggregated[(row, zoom)] = cells
        return cells

    def _row_cells(self, row: int) -> _RowCells:
        """The row per character at the current zoom and cell width."""
        zoom, cell = self.zoom, self._layout().cell
        cells = self._cells.get((row, zoom))
        if cells is None or cells.cell != cell:
            wide = _widen(self._aggregated_cells(row), self._columns_of(zoom), cell)
            cells = self._cells[(row, zoom)] = wide
        return cells

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        styles = self._get_styles()
        grid = self._grid
        if grid is None or not grid.days:
            return Strip.blank(width, styles.base)
        scroll_x, scroll_y = self.scroll_offset
        if y < self.HEADER_HEIGHT:
            return self._header_strip(y, scroll_x, width, styles)
        row = y - self.HEADER_HEIGHT + scroll_y
        if row >= len(self._shown):
            return Strip.blank(width, styles.base)
        row = self._shown[row]
        cursor_row, cursor_column = self.cursor
        key = (
            row,
            self._row_version[row],
            self._generation,
            self.zoom,
            scroll_x,
            width,
            self._cell_width(),
            cursor_column if row == cursor_row else -1,
        )
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._row_strip(row, key[-1], scroll_x, width, styles)
        return strip

    def _label(self, row: GridRow, is_cursor: bool, has_marks: bool, styles: _Styles) -> Segment:
        # Segments are drawn as they are: a label from the config must not carry controls.
        label = strip_controls(row.label)
        if row.is_phase:
            text = ("▸ " if row.phase in self._folded else "▾ ") + label
        else:
            text = (MARK + " " if has_marks else "  ") + label
        room = self.LABEL_WIDTH - 2
        if cell_len(text) > room:
            text = set_cell_size(text, room - 1) + "…"
        text = set_cell_size(text, room)
        style = styles.cursor_label if is_cursor else styles.phase if row.is_phase else styles.label
        return Segment(" " + text.ljust(room), style)

    def _row_strip(
        self, row: int, cursor_column: int, scroll_x: int, width: int, styles: _Styles
    ) -> Strip:
        assert self._grid is not None
        cells = self._row_cells(row)
        first = scroll_x
        last = min(len(cells.draw), scroll_x + self._cell_width())
        layout = self._layout()
        marked = [layout.span(c) for c in self._marked_columns(row)] if self._marked else []
        segments = [
            self._label(self._grid.rows[row], cursor_column >= 0, bool(marked), styles),
            Segment("│", styles.header),
        ]
        codes, glyphs = cells.draw, cells.glyphs
        # What each character of the view is drawn as: a cell, a marked cell or the cursor
        # (one column, cell wide), in runs.
        kinds = bytearray(max(0, last - first))
        for lo, hi in marked:
            lo, hi = min(max(lo, first), last), min(max(hi, first), last)
            kinds[lo - first : hi - first] = _MARKED * (hi - lo)
        if cursor_column >= 0:
            lo, hi = layout.span(cursor_column)
            lo, hi = min(max(lo, first), last), min(max(hi, first), last)
            kinds[lo - first : hi - first] = _CURSOR * (hi - lo)
        by_kind = (styles.states, styles.marked, styles.cursor)
        for piece in _RUNS.finditer(kinds):
            kind = kinds[piece.start()]
            a0, b0 = first + piece.start(), first + piece.end()
            if kind == _CURSOR[0]:
                marks = "".join(_CURSOR_FILL if g in _FILLS else g for g in glyphs[a0:b0])
                segments.append(Segment(marks, styles.cursor[codes[a0]]))
                continue
            state_styles = by_kind[kind]
            for match in _RUNS.finditer(codes, a0, b0):
                a, b = match.span()
                text = glyphs[a:b]
                if kind:  # a full block would hide the mark's background
                    text = "".join(_CURSOR_FILL if g in _FILLS else g for g in text)
                segments.append(Segment(text, state_styles[codes[a]]))
        used = self.LABEL_WIDTH + max(0, last - first)
        if used < width:
            segments.append(Segment(" " * (width - used), styles.base))
        strip = Strip(segments, max(used, width))
        return strip.crop(0, width) if used > width else strip

    # ----------------------------------------------------------------------------- headers

    def _header_strip(self, y: int, scroll_x: int, width: int, styles: _Styles) -> Strip:
        cursor = self.cursor
        key = (
            "header",
            y,
            self._generation,
            self._row_version[cursor[0]] if self._row_version else 0,
            self.zoom,
            scroll_x,
            width,
            self._cell_width(),
            cursor,
        )
        strip = self._strips.get(key)
        if strip is not None:
            return strip
        seasons, axis = self._axis_text()
        text = seasons if y == 0 else axis
        first, last = scroll_x, min(len(text), scroll_x + self._cell_width())
        text = text[:first] + _whole_words(text, first, last) + text[last:]
        corner = self._corner(y)[: self.LABEL_WIDTH - 1].ljust(self.LABEL_WIDTH - 1)
        segments = [Segment(corner, styles.header), Segment("│", styles.header)]
        lo, hi = self._layout().span(cursor[1])
        if y == 1 and first <= lo and hi <= last:
            mark = text[lo:hi] if text[lo:hi].strip() else "▼".ljust(hi - lo)
            segments += [
                Segment(text[first:lo], styles.header),
                Segment(mark, styles.cursor_header),
                Segment(text[hi:last], styles.header),
            ]
        else:
            segments.append(Segment(text[first:last], styles.header))
        used = self.LABEL_WIDTH + max(0, last - first)
        if used < width:
            segments.append(Segment(" " * (width - used), styles.base))
        strip = Strip(segments, max(used, width))
        strip = strip.crop(0, width) if used > width else strip
        self._strips[key] = strip
        return strip

    def _corner(self, y: int) -> str:
        """Top-left corner: the zoom, then the cursor's dates and state in words."""
        if y == 0:
            return f" {self.zoom} zoom · z to change"
        cell, state = self.cursor_cell(), self.cursor_state()
        if cell is None or state is None:
            return ""
        _row, start, end = cell
        if self.zoom == "month" and (start.year, start.month) == (end.year, end.month):
            when = f"{start:%Y-%m}"
        elif self.zoom == "month":
            when = f"{start:%Y-%m}…{end:%m}" if start.year == end.year else f"{start:%Y-%m}…{end}"
        elif start == end:
            when = start.isoformat()
        elif start.year != end.year:
            when = f"{start}…{end}"
        else:
            when = f"{start}…{end:%d}" if start.month == end.month else f"{start}…{end:%m-%d}"
        words = state.value.replace("_", " ")
        if self._columns_of(self.zoom).is_gap(self.cursor[1]):
            words = "off-season"
        if self.zoom != "day" and state in (CellState.PARTIAL, CellState.MISSING):
            assert self._grid is not None
            row, column = self.cursor
            bounds = self._columns_of(self.zoom).bounds
            share = _share_complete(
                bytes(self._grid.codes[row][bounds[column] : bounds[column + 1]])
            )
            if share:
                words += f" {share:.0%}"
        return f" {when} {words}"

    def _axis_text(self) -> tuple[str, str]:
        """The season line and the month axis line, a character per cell of the layout (and
        as far right as the view, so a label may run past the last column but is never cut)."""
        zoom, room = self.zoom, self._cell_width()
        cached = self._axis.get((zoom, room))
        if cached is not None:
            return cached
        assert self._grid is not None
        days = self._grid.days
        columns = self._columns_of(zoom)
        layout = self._layout()
        x = layout.x
        length = max(layout.width, room)

        seasons = [" "] * length
        spans = []
        for name, start, end in sorted(self._seasons, key=lambda season: season[1]):
            start, end = max(start, days[0]), min(end, days[-1])
            if start <= end:
                lo = x[self._column_of_date(start)]
                spans.append((strip_controls(name), lo, x[self._column_of_date(end) + 1]))
        for i, (name, lo, hi) in enumerate(spans):
            # Room: the season's own cells, or up to the next season (one blank before it).
            limit = max(hi, spans[i + 1][1] - 1 if i + 1 < len(spans) else length)
            short = _short_season(name)
            label = next((v for v in (name, short) if v and len(v) <= limit - lo), "")
            line = (label + " " if label else "").ljust(hi - lo, "─")
            seasons[lo : lo + max(len(label), hi - lo)] = list(line[: max(len(label), hi - lo)])

        axis = [" "] * length
        taken = [False] * (length + 1)
        bounds = columns.bounds
        starts = []  # (priority, first character, label variants longest first)
        previous_month = None
        for c in range(len(columns)):
            if columns.is_gap(c):
                previous_month = None  # the month after an off-season is named again
                continue
            # The month a column shows is that of its last day: a week column holding the 1st
            # opens the new month.
            shown = days[bounds[c + 1] - 1]
            month = (shown.year, shown.month)
            if month == previous_month:
                continue
            opens = previous_month is None
            previous_month = month
            abbr = _MONTHS[shown.month - 1]
            if zoom == "month" and layout.cell < len(abbr):
                if shown.month != 1 and c != 0:
                    continue
                variants = [str(shown.year), f"'{shown.year % 100:02d}"]
            elif shown.month == 1 or c == 0:
                variants = [f"{abbr} {shown.year}", str(shown.year), abbr]
            else:
                variants = [abbr]
            priority = 0 if shown.month == 1 else 1 if c == 0 or opens else 2
            starts.append((priority, x[c], variants))
        for _priority, at, variants in sorted(starts):
            for label in variants:
                stop = at + len(label)
                if stop <= length and not any(taken[max(0, at - 1) : stop + 1]):
                    axis[at:stop] = list(label)
                    for i in range(at, stop):
                        taken[i] = True
                    break
        result = ("".join(seasons), "".join(axis))
        self._axis[(zoom, room)] = result
        return result


class HeatmapLegend(Static):
    """One line: each state's glyph in its heatmap colour and its name, then the share bar."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *(state_class(state) for state in CellState),
        "heatmap--share",
    }

    DEFAULT_CSS = f"""
    HeatmapLegend {{
        height: 1;
        color: $text-muted;
    }}
    {_state_rules("HeatmapLegend")}
    """

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for state in CellState:
            style = self.get_component_rich_style(state_class(state), partial=True)
            text.append(GLYPHS[state], style)
            text.append(f" {state.value.replace('_', ' ')}  ")
        share = self.get_component_rich_style("heatmap--share", partial=True)
        text.append("▁▃▅▇", share)
        text.append(" share done")
        return text

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.refresh()
