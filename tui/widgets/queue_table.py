"""The work queue: one line per item, drawn through the Line API so only the rows on screen cost.

A backfill can hold tens of thousands of items and the dashboard refreshes the queue about twice
a second. A `DataTable` keeps a renderable per cell and re-sorts or re-indexes every row when one
moves, so a tick cost grew with the queue. Here the queue is a model, `QueueModel`: the items by
id and their order keys, (state rank, id), in sorted lists. `apply` moves a changed item with
`bisect` (a memmove at worst), and `render_line` draws only the lines Textual asks for, from
strips cached per item, so a tick costs what the changes and the screen cost, not the queue.

Layout: a header line that never scrolls vertically (it does scroll horizontally, with the
columns), then one line per shown item. Rows are in (state rank, id) order: what needs the
operator's eyes first (running, then failed) comes first, finished work last. Within a state the
id (the plan's order) decides, never a value that changes while an item keeps its state (its
dates shrink when some are completed meanwhile): a row moves only when its state changes.

Cursor: it is an item id, not a row index. Until the operator moves it, it rides the top row (the
first running item, whose log the pane then tails). Once the operator has put it on an item, it
stays on that item whatever moves around it, and the view scrolls with the item so the highlighted
row keeps its line on screen: the row the operator is looking at is the item `c` cancels and the
log pane shows. When the cursor's item goes away (removed, filtered out) the cursor lands on the
item that now takes its place in the order.

Filter: words, all of which must match. A state word (`failed`, `running`, `queued`...) matches
items in that state only; any other word is a case-insensitive substring of the processor,
phase, dates, state or reason.

Text: every cell is drawn as typed, never parsed as markup (segments are built directly), and
control characters are removed so a job's terminal escape codes cannot reach the terminal.

Keys: up/down (k/j), pageup/pagedown, home/g (first row), end/G (last row), enter (choose). A
click moves the cursor; a click on the cursor row chooses it.
"""

from __future__ import annotations

import time
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.engine.api import ItemState, ItemView
from core.printable import strip_controls
from core.progress import format_duration
from tui.text import MARK
from tui.widgets.scrolling import resize_content

#: Row order by state: what needs the operator's eyes first, finished work last.
STATE_RANK: dict[ItemState, int] = {
    ItemState.RUNNING: 0,
    ItemState.FAILED: 1,
    ItemState.PENDING: 2,
    ItemState.BLOCKED: 3,
    ItemState.CANCELLED: 4,
    ItemState.DONE: 5,
}

#: the reason column's width when the pane has nothing to spare
REASON_WIDTH = 36
#: (label, key, fixed width or None for "as wide as the widest value"). What an operator reads
#: first comes first, so a narrow terminal cuts the least useful: the phase is implied by the
#: processor. The short attempt and duration go before the long reason, which a narrow pane then
#: cuts (with an ellipsis) instead of hiding them; a wide one gives the reason what is left over
#: ("incomplete on 2024-01-24 (2 of 18 rows)" says by how much only at its end).
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("State", "state", 9),
    ("Processor", "processor", None),
    ("Dates", "dates", None),
    ("Att.", "attempt", 4),
    ("Duration", "duration", 8),
    ("Exit/reason", "reason", REASON_WIDTH),
    ("Started", "started", 8),
    ("Phase", "phase", None),
)
COLUMN_KEYS: tuple[str, ...] = tuple(key for _, key, _ in COLUMNS)
REASON = COLUMN_KEYS.index("reason")
#: A pathological processor or phase name must not push every other column off screen.
MAX_AUTO_WIDTH = 40
#: One blank cell each side of a value, as DataTable's default cell padding.
PADDING = 1

#: Above 1/REBUILD_SHARE of the queue (and REBUILD_MIN items) changed at once, the order is
#: sorted again from scratch: n moves of O(log n + memmove) each would cost more than one sort
#: (the first snapshot of a run, for one, carries every item).
REBUILD_SHARE = 8
REBUILD_MIN = 64

#: Filter words that mean a state, not a substring: "failed" must not find the blocked items
#: whose reason says "upstream failed". The heatmap calls a pending item's cells "queued".
STATE_WORDS: dict[str, ItemState] = {state.value: state for state in ItemState} | {
    "queued": ItemState.PENDING
}

Order = tuple[int, int]


def item_order(item: ItemView) -> Order:
    """Sort key: state rank, then id (so keys are unique and move only with the state)."""
    return (STATE_RANK.get(item.state, len(STATE_RANK)), item.id)


def format_dates(dates: Sequence[date]) -> str:
    """One date as is; a range as "first..last (n)", the last without its year when it is the
    first's ("2024-01-22..01-28 (7)"), so a row stays narrow."""
    if not dates:
        return ""
    first, last = min(dates), max(dates)
    if len(dates) == 1:
        return first.isoformat()
    end = f"{last:%m-%d}" if last.year == first.year else last.isoformat()
    return f"{first.isoformat()}..{end} ({len(dates)})"


def _dates_width(count: int, across_years: bool) -> int:
    """The cell width of `format_dates` for `count` dates (a range over a new year's day when
    `across_years`), without formatting them."""
    return 0 if count == 0 else 10 if count == 1 else (25 if across_years else 20) + len(str(count))


def format_reason(item: ItemView) -> str:
    """The engine's reason (it already says "exit 1; retry in 30s", "killed: stall", ...), else
    the exit code of a failed attempt; first line only, control characters removed (the column
    cuts it to its width)."""
    text = item.reason or ""
    if not text and item.exit_code not in (None, 0):
        text = f"exit {item.exit_code}"
    return strip_controls(text.strip().splitlines()[0]).strip() if text.strip() else ""


def _row_width(widths: Sequence[int]) -> int:
    return sum(width + 2 * PADDING for width in widths)


def item_duration(item: ItemView, now: float) -> float | None:
    """How long the last attempt took, or for a running item how long it has been running."""
    if item.state is ItemState.RUNNING and item.started_at is not None:
        return max(0.0, now - item.started_at)
    return item.duration


def render_cells(item: ItemView, now: float | None = None) -> tuple[str, ...]:
    """The row's display text per column, in COLUMNS order; `now` (default: the clock) is what
    a running item's duration counts up to."""
    duration = item_duration(item, time.time() if now is None else now)
    text = {
        "state": item.state.value,
        "phase": strip_controls(item.phase),
        "processor": strip_controls(item.processor),
        "dates": format_dates(item.dates),
        "attempt": str(item.attempt) if item.attempt else "",
        "started": time.strftime("%H:%M:%S", time.localtime(item.started_at))
        if item.started_at is not None
        else "",
        "duration": format_duration(duration) if duration is not None else "",
        "reason": format_reason(item),
    }
    return tuple(text[key] for key in COLUMN_KEYS)


def filter_text(item: ItemView) -> str:
    """What a filter matches: processor, phase, state, reason and every date of the item (so a
    date inside a range finds the item), lower-cased once."""
    parts = [item.processor, item.phase, item.state.value, item.reason or ""]
    parts += [format_dates(item.dates), *(d.isoformat() for d in item.dates)]
    return " ".join(parts).lower()


#: Every character a dates text has (`format_dates` and ISO dates): a filter word with any other
#: character is never part of an item's dates, so only the item's other fields decide it.
_DATE_CHARS = frozenset("0123456789-.() ")

#: The fields of an item a filter reads besides its dates: (processor, phase, state, reason).
#: Items share them (ten processors, a few states and reasons for 30,000 items), so a filter
#: judges each distinct one once, not each item.
Fields = tuple[str, str, str, str]


def _fields(item: ItemView) -> Fields:
    return (item.processor, item.phase, item.state.value, item.reason or "")


def dates_text(item: ItemView) -> str:
    """The dates part of `filter_text` (one date: its ISO form, which is all of it)."""
    if len(item.dates) == 1:
        return item.dates[0].isoformat()
    return " ".join([format_dates(item.dates), *(d.isoformat() for d in item.dates)]).lower()


def _verdict(words: tuple[str, ...], fields: Fields) -> bool | tuple[str, ...]:
    """Whether items with these fields match every word, whatever their dates (True or False),
    or the words their dates text must hold for them to match. Words hold no whitespace and
    `filter_text` joins its parts with spaces, so a word is part of it exactly when it is part
    of one of them: of the fields' text, or of the dates text."""
    text = " ".join(fields).lower()
    in_dates: list[str] = []
    for word in words:
        state = STATE_WORDS.get(word)
        if state is not None:
            if fields[2] != state.value:
                return False
        elif word in text:
            continue
        elif _DATE_CHARS.issuperset(word):
            in_dates.append(word)
        else:
            return False
    return tuple(in_dates) or True


def _narrows(old: tuple[str, ...], new: tuple[str, ...]) -> bool:
    """Whether every item matching all of `new` matches all of `old`: each old state word is
    among the new ones, and each old text word is part of a new text word."""
    texts = [w for w in new if w not in STATE_WORDS]
    return all(w in new if w in STATE_WORDS else any(w in longer for longer in texts) for w in old)


def _fit(text: str, width: int) -> str:
    """`text` padded or cut (with an ellipsis) to exactly `width` cells."""
    if text.isascii():
        size = len(text)
        if size <= width:
            return text + " " * (width - size)
        return text[: width - 1] + "…"
    size = cell_len(text)
    if size <= width:
        return text + " " * (width - size)
    return set_cell_size(text, width - 1) + "…"


# ------------------------------------------------------------------------------------- model


@dataclass
class Delta:
    """What a model change did to the shown rows, so the widget repaints only that."""

    #: the first row index whose item changed place: rows from here down may show other items
    moved_from: int | None = None
    #: ids whose row kept its place but whose content changed
    updated: list[int] = field(default_factory=list)
    #: the items that are new or changed (for column widths)
    changed: list[ItemView] = field(default_factory=list)
    #: the shown rows were rebuilt from scratch (a new filter, a new queue)
    rebuilt: bool = False
    #: the column widths must be measured over every item again (a new queue)
    remeasure: bool = False

    def moved(self, row: int) -> None:
        if self.moved_from is None or row < self.moved_from:
            self.moved_from = row

    def __bool__(self) -> bool:
        return self.rebuilt or self.moved_from is not None or bool(self.updated or self.changed)


class QueueModel:
    """Every item by id, plus the order keys of all items and of the shown (filtered) ones, sorted.

    Order keys are unique (the id is in them), so an item's row is `bisect_left` of its key, and
    its id is the key's last element: no id -> row map to keep in step."""

    def __init__(self) -> None:
        self.items: dict[int, ItemView] = {}
        #: order keys of every item, sorted
        self._all: list[Order] = []
        #: order keys of the items the filter shows: `_all` itself when there is no filter
        self._shown: list[Order] = self._all
        self._filter = ""
        self._words: tuple[str, ...] = ()
        #: what a filter reads of each item, kept as items change so that a keystroke does no
        #: per-item string work: the index of its fields in `_fields`; and the dates texts, by
        #: dates (the processors of a day share them), built when a word could be part of one
        self._fields_of: dict[int, int] = {}
        self._fields: list[Fields] = []
        self._fields_index: dict[Fields, int] = {}
        self._dates: dict[tuple[date, ...], str] = {}
        #: the filter's verdict per entry of `_fields` (see `_verdict`), filled on demand
        self._verdicts: list[bool | tuple[str, ...]] = []

    def __len__(self) -> int:
        return len(self._shown)

    @property
    def filter(self) -> str:
        return self._filter

    def id_at(self, row: int) -> int:
        return self._shown[row][1]

    def row_of(self, item_id: int | None) -> int | None:
        """The row showing this item, or None (unknown or filtered out): O(log n)."""
        item = self.items.get(item_id) if item_id is not None else None
        return None if item is None else self.row_of_key(item_order(item))

    def row_of_key(self, key: Order) -> int | None:
        row = bisect_left(self._shown, key)
        return row if row < len(self._shown) and self._shown[row] == key else None

    def row_at_or_after(self, key: Order) -> int:
        """Where `key` is or would be among the shown rows."""
        return bisect_left(self._shown, key)

    def count_before(self, key: tuple[int, ...]) -> int:
        """Shown rows ordered before `key` (e.g. `(1,)`: how many are running)."""
        return bisect_left(self._shown, key)

    def _matches(self, item: ItemView) -> bool:
        if not self._filter:
            return True
        return self._decide(item.id, self._verdict_of(self._fields_of[item.id]))

    def _verdict_of(self, index: int) -> bool | tuple[str, ...]:
        verdicts = self._verdicts
        while len(verdicts) <= index:
            verdicts.append(_verdict(self._words, self._fields[len(verdicts)]))
        return verdicts[index]

    def _decide(self, item_id: int, verdict: bool | tuple[str, ...]) -> bool:
        if verdict is True or verdict is False:
            return verdict
        dates = self.items[item_id].dates
        text = self._dates.get(dates)
        if text is None:
            if len(self._dates) > 2 * len(self.items) + 256:
                self._dates.clear()
            text = self._dates[dates] = dates_text(self.items[item_id])
        return all(map(text.__contains__, verdict))

    def _index(self, item: ItemView) -> None:
        """Note what a filter reads of a new or changed item (its fields' entry)."""
        fields = _fields(item)
        index = self._fields_index.get(fields)
        if index is None:
            if len(self._fields) > 2 * len(self.items) + 256:
                # Entries of fields no item has any more (reasons that changed): start over.
                self._reindex()
                index = self._fields_index.get(fields)
            if index is None:
                index = self._fields_index[fields] = len(self._fields)
                self._fields.append(fields)
        self._fields_of[item.id] = index

    def _reindex(self) -> None:
        self._fields_of.clear()
        self._fields.clear()
        self._fields_index.clear()
        self._verdicts = []
        for item in self.items.values():
            self._index(item)

    def _filtered(self) -> bool:
        return self._shown is not self._all

    # -- changes --------------------------------------------------------------------------

    def replace(self, items: Iterable[ItemView]) -> Delta:
        """The whole queue: a delta of the items that differ (by value), plus removals; or a
        rebuild when a large share changed."""
        new = {item.id: item for item in items}
        old = self.items
        changed = [
            item
            for item_id, item in new.items()
            if (prev := old.get(item_id)) is not item and prev != item
        ]
        removed = [item_id for item_id in old if item_id not in new]
        if self._many(len(changed) + len(removed)):
            self.items = new
            self._reindex()
            self._resort()
            return Delta(rebuilt=True, remeasure=True)
        delta = self.remove(removed)
        return self.apply(changed, delta)

    def _many(self, changes: int) -> bool:
        return changes > max(REBUILD_MIN, len(self.items) // REBUILD_SHARE)

    def _resort(self) -> None:
        self._all = sorted(map(item_order, self.items.values()))
        self._shown = self._all
        self._refilter()

    def remove(self, ids: Iterable[int], delta: Delta | None = None) -> Delta:
        delta = delta if delta is not None else Delta()
        for item_id in ids:
            item = self.items.pop(item_id, None)
            if item is None:
                continue
            self._fields_of.pop(item_id, None)
            key = item_order(item)
            row = self._discard(self._shown, key)
            if row is not None:
                delta.moved(row)
            if self._filtered():
                self._discard(self._all, key)
        return delta

    def apply(self, changed: Iterable[ItemView], delta: Delta | None = None) -> Delta:
        """Add or update these items: O(log n) plus a memmove per item that moves (one sort
        instead when they are a large share of the queue)."""
        delta = delta if delta is not None else Delta()
        changed = list(changed)
        if self._many(len(changed)):
            return self._apply_many(changed)
        filtered = self._filtered()
        for item in changed:
            prev = self.items.get(item.id)
            if prev is item or prev == item:
                continue
            self.items[item.id] = item
            self._index(item)
            delta.changed.append(item)
            key = item_order(item)
            old_key = item_order(prev) if prev is not None else None
            if old_key == key:
                # Same place in the order; it may only enter or leave the filtered rows.
                row = self.row_of_key(key)
                show = self._matches(item)
                if row is not None and show:
                    delta.updated.append(item.id)
                elif row is not None:
                    del self._shown[row]
                    delta.moved(row)
                elif show:
                    delta.moved(self._insert(self._shown, key))
                continue
            if old_key is not None:
                row = self._discard(self._shown, old_key)
                if row is not None:
                    delta.moved(row)
                if filtered:
                    self._discard(self._all, old_key)
            if filtered:
                insort(self._all, key)
            if not filtered or self._matches(item):
                delta.moved(self._insert(self._shown, key))
        return delta

    def _apply_many(self, changed: list[ItemView]) -> Delta:
        items = self.items
        fresh = [i for i in changed if (prev := items.get(i.id)) is not i and prev != i]
        if not fresh:
            return Delta()
        for item in fresh:
            items[item.id] = item
            self._index(item)
        self._resort()
        return Delta(rebuilt=True, changed=fresh)

    def set_filter(self, text: str) -> bool:
        """Show only items matching every word of `text` (see the module's docstring); True if
        that changed what is shown."""
        text = " ".join(text.lower().split())
        if text == self._filter:
            return False
        narrower = self._filtered() and _narrows(self._words, tuple(text.split()))
        self._filter = text
        self._words = tuple(text.split())
        self._verdicts = []
        self._refilter(narrower)
        return True

    def _refilter(self, narrower: bool = False) -> None:
        """`narrower`: the new words match only items the old ones matched (a word typed on),
        so only the items shown are tested again: typing into a 30,000-item queue tested them
        all on every keystroke."""
        # One pass over the sorted keys keeps them sorted: no re-sort per keystroke.
        if not self._filter:
            self._shown = self._all
            return
        keys = self._shown if narrower else self._all
        fields_of = self._fields_of
        verdicts = [self._verdict_of(i) for i in range(len(self._fields))]
        if all(v is True or v is False for v in verdicts):
            # No word could be part of dates: the fields decide, a list lookup per item.
            self._shown = [key for key in keys if verdicts[fields_of[key[1]]]]
            return
        decide = self._decide
        self._shown = [key for key in keys if decide(key[1], verdicts[fields_of[key[1]]])]

    @staticmethod
    def _insert(keys: list[Order], key: Order) -> int:
        row = bisect_left(keys, key)
        keys.insert(row, key)
        return row

    @staticmethod
    def _discard(keys: list[Order], key: Order) -> int | None:
        row = bisect_left(keys, key)
        if row < len(keys) and keys[row] == key:
            del keys[row]
            return row
        return None


# ------------------------------------------------------------------------------------ widget


@dataclass(frozen=True)
class _Styles:
    base: Style
    header: Style
    cursor: Style
    states: dict[str, Style]
    cursor_states: dict[str, Style]


@dataclass(frozen=True)
class _CachedRow:
    """A drawn row and what it was drawn from: reused while all of it still holds."""

    item: ItemView
    cursor: bool
    marked: bool
    #: a running item's duration text (it counts up with the clock); "" otherwise
    clock_text: str
    width: int
    generation: int
    strip: Strip


class QueueTable(ScrollView, can_focus=True):
    """Every item of the run, worst news first; `apply` costs what changed, not the queue."""

    ALLOW_SELECT = False

    DEFAULT_CSS = """
    QueueTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .queue-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        & > .queue-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .queue-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .queue-table--running { color: $accent; text-style: bold; }
        & > .queue-table--failed { color: $error; text-style: bold; }
        & > .queue-table--pending { color: $text-muted; }
        & > .queue-table--blocked { color: $warning; }
        & > .queue-table--cancelled { color: $text-muted; text-style: italic; }
        & > .queue-table--done { color: $success; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "queue-table--header",
        "queue-table--cursor",
        *(f"queue-table--{state.value}" for state in ItemState),
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose", "Open item", show=False, id="queue.choose"),
        Binding("up,k", "cursor_up", "Up", show=False, id="queue.up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="queue.down"),
        Binding("pageup", "page_up", "Page up", show=False, id="queue.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="queue.page_down"),
        Binding("home,g", "first_row", "First row", show=False, id="queue.top"),
        Binding("end,G", "last_row", "Last row", show=False, id="queue.bottom"),
        Binding("space", "mark", "Mark", show=False, id="queue.mark"),
        Binding("escape", "clear_marks", "Clear marks", show=False, id="queue.clear_marks"),
    ]

    #: the header line above the rows
    HEADER_HEIGHT = 1

    class ItemHighlighted(Message):
        """The cursor moved to another item (not sent again while it stays on the same item)."""

        def __init__(self, item_id: int) -> None:
            super().__init__()
            self.item_id = item_id

    class MarksChanged(Message):
        """Rows were marked or unmarked: what the bulk actions (`c`) now act on."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class ItemChosen(Message):
        """Enter (or a click on the cursor row) on an item."""

        def __init__(self, item_id: int) -> None:
            super().__init__()
            self.item_id = item_id

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._model = QueueModel()
        #: the item under the cursor (an id, so it follows its item when rows move)
        self._cursor: int | None = None
        #: the operator put the cursor on its item: it stays there (else it rides the top row)
        self._pinned = False
        #: the item last announced with ItemHighlighted
        self._highlighted: int | None = None
        #: items marked with space, for bulk actions: ids, so marks follow their items
        self._marked: set[int] = set()
        #: column widths in COLUMNS order as the items need them (auto columns grow to their
        #: widest value), and as drawn: the reason widened to fill the pane
        self._measured: tuple[int, ...] = self._measure(())
        self._widths = self._measured
        self._rows: LRUCache[int, _CachedRow] = LRUCache(1024)
        self._styles: _Styles | None = None
        self._previous_styles: _Styles | None = None
        #: bumped when the styles or the column widths change: every cached row is stale
        self._generation = 0
        #: what a running item's duration counts up to (tests and benchmarks freeze it)
        self.clock: Callable[[], float] = time.time
        self._update_virtual_size()

    # -- public API ---------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Rows shown (after the filter)."""
        return len(self._model)

    @property
    def total_count(self) -> int:
        """Items in the queue, shown or filtered out."""
        return len(self._model.items)

    @property
    def cursor_row(self) -> int | None:
        """The row index of the cursor's item, or None when nothing is shown."""
        return self._model.row_of(self._cursor)

    @property
    def filter(self) -> str:
        """The filter in effect, lower-cased ("" shows every item)."""
        return self._model.filter

    def update_items(self, items: Iterable[ItemView]) -> None:
        """Show these items (the whole queue, not a delta): items not in it are removed. Costs a
        comparison per item plus what `apply` costs for the changed ones."""
        self._changed(lambda: self._model.replace(items))

    def apply(self, changed: Iterable[ItemView]) -> None:
        """Add or update just these items (a delta): cost proportional to how many changed."""
        self._changed(lambda: self._model.apply(changed))

    def set_filter(self, text: str) -> None:
        """Show only items matching every word of `text`: a state word (`failed`) matches that
        state, any other word part of the processor, phase, dates, state or reason (case
        insensitive); an empty text shows everything again."""
        self._changed(lambda: Delta(rebuilt=self._model.set_filter(text)))

    @property
    def marked(self) -> frozenset[int]:
        """The marked items still in the queue."""
        return frozenset(i for i in self._marked if i in self._model.items)

    def clear_marks(self) -> None:
        if self._marked:
            self._marked.clear()
            self.refresh()
            self.post_message(self.MarksChanged(0))

    def selected_item_id(self) -> int | None:
        """The item under the cursor, or None when the table is empty."""
        return self._cursor

    def item_id_at(self, row: int) -> int:
        """The id of the item shown on this row (0 is the first row under the header)."""
        return self._model.id_at(row)

    def row_of(self, item_id: int) -> int | None:
        """The row showing this item, or None when it is unknown or filtered out."""
        return self._model.row_of(item_id)

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        """Put the cursor on a row (clamped to the rows shown) and keep it on that row's item from
        now on; `scroll` brings it into view."""
        if not len(self._model):
            return
        row = min(max(row, 0), len(self._model) - 1)
        self._pinned = True
        self._set_cursor(self._model.id_at(row))
        if scroll:
            self._scroll_to_row(row)
        self._announce_highlight()

    # -- model changes ------------------------------------------------------------------------

    def _changed(self, change: Callable[[], Delta]) -> None:
        """Run a model change and repaint what it touched: keeps the cursor on its item, and a
        chosen item on its line of the screen."""
        cursor_key = self._cursor_key()
        line = self._cursor_line()
        delta = change()
        if not delta:
            return
        if delta.remeasure:
            grew = self._set_widths(self._measure(self._model.items.values()))
        else:
            grew = self._set_widths(self._measure(delta.changed, self._measured))
        previous = self._cursor
        self._follow_cursor(cursor_key)
        self._update_virtual_size()
        if not self.is_mounted:
            return
        scrolled = line is not None and self._keep_cursor_on_line(line)
        if delta.rebuilt or grew or scrolled:
            self.refresh()
        else:
            self._refresh_delta(delta)
            if self._cursor != previous:
                self._refresh_item(previous)
                self._refresh_item(self._cursor)
        self._announce_highlight()

    def _cursor_key(self) -> Order | None:
        item = self._model.items.get(self._cursor) if self._cursor is not None else None
        return item_order(item) if item is not None else None

    def _follow_cursor(self, old_key: Order | None) -> None:
        """Keep a chosen cursor on its item; if that is gone, on the row that took its place.
        One not chosen yet stays on the top row."""
        model = self._model
        if not model.items:
            self._pinned = False  # a new queue (a new run): nothing of it was chosen yet
        if not len(model):
            self._cursor = None
        elif not self._pinned:
            self._cursor = model.id_at(0)
        elif self._cursor is None or model.row_of(self._cursor) is None:
            row = 0 if old_key is None else min(model.row_at_or_after(old_key), len(model) - 1)
            self._cursor = model.id_at(row)

    def _cursor_line(self) -> int | None:
        """The screen line (0: the first under the header) of a chosen cursor, if on screen."""
        row = self.cursor_row if self._pinned else None
        if row is None or not self.is_mounted:
            return None
        top, bottom = self._visible_rows()
        return row - top if top <= row < bottom else None

    def _keep_cursor_on_line(self, line: int) -> bool:
        """Scroll so the cursor's row is on this screen line again (as near as the ends of the
        queue allow); True if the view moved."""
        row = self.cursor_row
        if row is None:
            return False
        most = max(0, len(self._model) - self._body_height())
        top = min(max(row - line, 0), most)
        if top == self.scroll_offset.y:
            return False
        # At once, not after the next refresh: a frame drawn in between would show the rows
        # under the cursor's line change.
        self.scroll_to(y=top, animate=False, immediate=True)
        return True

    def _refresh_delta(self, delta: Delta) -> None:
        top, bottom = self._visible_rows()
        if delta.moved_from is not None and delta.moved_from < bottom:
            # Every row from the first moved one shows another item now (or blank, if rows were
            # removed); their strips are cached per item, so this is mostly crops.
            first = max(delta.moved_from, top)
            self.refresh_lines(first + self.HEADER_HEIGHT, bottom - first)
        for item_id in delta.updated:
            self._refresh_item(item_id)

    def _refresh_item(self, item_id: int | None) -> None:
        row = self._model.row_of(item_id)
        top, bottom = self._visible_rows()
        if row is not None and top <= row < bottom:
            self.refresh_line(row + self.HEADER_HEIGHT)

    def _visible_rows(self) -> tuple[int, int]:
        """First row on screen and one past the last line of the screen (rows or not)."""
        top = self.scroll_offset.y
        return top, top + self._body_height()

    def _body_height(self) -> int:
        # Not the widget's height: a horizontal scrollbar takes its last line.
        return max(0, self.scrollable_content_region.height - self.HEADER_HEIGHT)

    def _update_virtual_size(self) -> None:
        # A new row count (each filter keystroke, rows arriving) must not lay the screen out.
        resize_content(self, Size(self._line_width(), len(self._model) + self.HEADER_HEIGHT))

    # -- column widths ------------------------------------------------------------------------

    @staticmethod
    def _measure(items: Iterable[ItemView], start: Sequence[int] = ()) -> tuple[int, ...]:
        """Column widths fitting `items` (and at least `start`): auto columns take their widest
        value, capped; fixed ones keep their width."""
        widths = list(start) or [len(label) if w is None else w for label, _, w in COLUMNS]
        auto = {key: i for i, (_, key, w) in enumerate(COLUMNS) if w is None}
        processor, phase, dates = auto["processor"], auto["phase"], auto["dates"]
        names: set[str] = set()
        phases: set[str] = set()
        most_dates, across_years = 0, False
        for item in items:
            names.add(item.processor)
            phases.add(item.phase)
            most_dates = max(most_dates, len(item.dates))
            if len(item.dates) > 1 and item.dates[0].year != item.dates[-1].year:
                across_years = True
        for column, values in ((processor, names), (phase, phases)):
            for value in values:
                widths[column] = max(widths[column], cell_len(strip_controls(value)))
            widths[column] = min(widths[column], MAX_AUTO_WIDTH)
        widths[dates] = max(widths[dates], _dates_width(most_dates, across_years))
        return tuple(widths)

    def _set_widths(self, measured: tuple[int, ...]) -> bool:
        """Adopt new column widths; True if the drawn ones changed (every cached row is then
        stale)."""
        self._measured = measured
        widths = list(measured)
        # What a vertical scrollbar leaves: a row as wide as the widget would hide its last
        # cells under it (and bring a horizontal scrollbar over the last row).
        room = self.scrollable_content_region.width if self.is_mounted else 0
        spare = room - _row_width(measured)
        if spare > 0:
            widths[REASON] += spare
        if tuple(widths) == self._widths:
            return False
        self._widths = tuple(widths)
        self._generation += 1
        return True

    def on_resize(self) -> None:
        self._fit_reason()

    def watch_show_vertical_scrollbar(self) -> None:
        # The scrollbar takes its cells without a resize.
        self._fit_reason()

    def _fit_reason(self) -> None:
        if self._set_widths(self._measured):
            self._update_virtual_size()
            self.refresh()

    def _line_width(self) -> int:
        return _row_width(self._widths)

    # -- cursor and keys ----------------------------------------------------------------------

    def _set_cursor(self, item_id: int | None) -> None:
        previous = self._cursor
        if item_id == previous:
            return
        self._cursor = item_id
        self._refresh_item(previous)
        self._refresh_item(item_id)

    def _scroll_to_row(self, row: int) -> None:
        top, height = self.scroll_offset.y, self._body_height()
        if height <= 0:
            return
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)

    def _announce_highlight(self) -> None:
        """Post ItemHighlighted if the item under the cursor changed."""
        current = self._cursor
        if current is not None and current != self._highlighted and self.is_mounted:
            self._highlighted = current
            self.post_message(self.ItemHighlighted(current))
        elif current is None:
            self._highlighted = None

    def _move(self, rows: int) -> None:
        row = self.cursor_row
        if row is not None:
            self.move_cursor(row=row + rows)

    def action_cursor_up(self) -> None:
        self._move(-1)

    def action_cursor_down(self) -> None:
        self._move(1)

    def action_page_up(self) -> None:
        self._move(-max(1, self._body_height()))

    def action_page_down(self) -> None:
        self._move(max(1, self._body_height()))

    def action_first_row(self) -> None:
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self.move_cursor(row=len(self._model) - 1)

    def action_mark(self) -> None:
        """Mark (or unmark) the cursor's item and step down, k9s style: space, space, ..."""
        if self._cursor is None:
            return
        self._marked ^= {self._cursor}
        self._refresh_item(self._cursor)
        self.post_message(self.MarksChanged(len(self.marked)))
        self._move(1)

    def action_clear_marks(self) -> None:
        self.clear_marks()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Esc with nothing marked is the app's ("back"), not swallowed here.
        if action == "clear_marks":
            return bool(self._marked)
        return True

    def action_choose(self) -> None:
        if self._cursor is not None:
            self.post_message(self.ItemChosen(self._cursor))

    def on_mount(self) -> None:
        # A running item's duration counts up with the clock; the engine need not send a view
        # per second for it.
        self.set_interval(1.0, self._refresh_running)
        self._announce_highlight()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < self.HEADER_HEIGHT:
            return
        row = offset.y - self.HEADER_HEIGHT + self.scroll_offset.y
        if row >= len(self._model):
            return
        if self._model.id_at(row) == self._cursor:
            self.action_choose()
        else:
            self.move_cursor(row=row)

    def _refresh_running(self) -> None:
        """Repaint the running rows on screen whose duration text moved on."""
        model = self._model
        top, bottom = self._visible_rows()
        # Running items sort first, so they are the rows before the first (rank 1, ...) key.
        end = min(bottom, model.count_before((STATE_RANK[ItemState.RUNNING] + 1,)))
        now = self.clock()
        for row in range(top, end):
            item_id = model.id_at(row)
            cached = self._rows.get(item_id)
            if cached is None or cached.clock_text != self._clock_text(model.items[item_id], now):
                self.refresh_line(row + self.HEADER_HEIGHT)

    # -- styles -------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # Looked up again lazily; only a real change (theme, focus) bumps the generation there.
        self._styles = None

    def _get_styles(self) -> _Styles:
        styles = self._styles
        if styles is not None:
            return styles
        base = self.rich_style
        component = self.get_component_rich_style
        cursor = component("queue-table--cursor")
        states = {
            state.value: base + component(f"queue-table--{state.value}") for state in ItemState
        }
        styles = _Styles(
            base=base,
            header=base + component("queue-table--header"),
            cursor=base + cursor,
            states=states,
            cursor_states={state: style + cursor for state, style in states.items()},
        )
        if self._previous_styles is not None and self._previous_styles != styles:
            self._generation += 1
        self._previous_styles = self._styles = styles
        return styles

    # -- drawing ------------------------------------------------------------------------------

    def _clock_text(self, item: ItemView, now: float) -> str:
        if item.state is not ItemState.RUNNING or item.started_at is None:
            return ""
        return format_duration(max(0.0, now - item.started_at))

    def render_line(self, y: int) -> Strip:
        styles = self._get_styles()
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        line_width = max(self._line_width(), width)
        if y < self.HEADER_HEIGHT:
            return self._header_strip(line_width, styles).crop_extend(
                scroll_x, scroll_x + width, styles.base
            )
        row = y - self.HEADER_HEIGHT + scroll_y
        model = self._model
        if row >= len(model):
            return Strip.blank(width, styles.base)
        item_id = model.id_at(row)
        item = model.items[item_id]
        cursor = item_id == self._cursor
        marked = item_id in self._marked
        now = self.clock()
        clock_text = self._clock_text(item, now)
        cached = self._rows.get(item_id)
        if (
            cached is None
            or cached.item is not item
            or cached.cursor != cursor
            or cached.marked != marked
            or cached.clock_text != clock_text
            or cached.width != line_width
            or cached.generation != self._generation
        ):
            strip = self._row_strip(item, cursor, marked, now, line_width, styles)
            cached = _CachedRow(
                item, cursor, marked, clock_text, line_width, self._generation, strip
            )
            # LRUCache.set keeps the value of a key it already holds: drop the stale one first.
            self._rows.discard(item_id)
            self._rows[item_id] = cached
        return cached.strip.crop_extend(scroll_x, scroll_x + width, styles.base)

    def _row_strip(
        self,
        item: ItemView,
        cursor: bool,
        marked: bool,
        now: float,
        line_width: int,
        styles: _Styles,
    ) -> Strip:
        """One row at full width: the State cell in its state's colour, the rest plain; a
        marked row has its mark in the padding before its state."""
        pad = " " * PADDING
        cells = [
            pad + _fit(text, width) + pad
            for text, width in zip(render_cells(item, now), self._widths, strict=True)
        ]
        if marked:
            cells[0] = MARK + cells[0][1:]
        state = item.state.value
        state_style = (styles.cursor_states if cursor else styles.states).get(state, styles.base)
        row_style = styles.cursor if cursor else styles.base
        rest = "".join(cells[1:])
        used = self._line_width()
        if used < line_width:
            rest += " " * (line_width - used)
        return Strip([Segment(cells[0], state_style), Segment(rest, row_style)], line_width)

    def _header_strip(self, line_width: int, styles: _Styles) -> Strip:
        pad = " " * PADDING
        text = "".join(
            pad + _fit(label, width) + pad
            for (label, _, _), width in zip(COLUMNS, self._widths, strict=True)
        )
        return Strip([Segment(text.ljust(line_width), styles.header)], line_width)
