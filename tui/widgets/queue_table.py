"""The work queue: one row per item, diffed in place so the cursor and scroll survive every tick.

The dashboard refreshes the queue about twice a second with fresh `ItemView`s, and a backfill can
hold thousands of items. Clearing and refilling a `DataTable` per tick would lose the operator's
cursor and scroll position and re-measure every cell, so `update_items` applies a keyed diff
instead: rows are keyed by item id, only cells whose text changed get `update_cell`, rows come and
go with `add_row`/`remove_row`, and the table is re-sorted only when some row's place changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import DataTable

from core.engine import ItemState, ItemView
from core.progress import format_duration

#: Row order by state: what needs the operator's eyes first, finished work last.
STATE_RANK: dict[ItemState, int] = {
    ItemState.RUNNING: 0,
    ItemState.FAILED: 1,
    ItemState.PENDING: 2,
    ItemState.BLOCKED: 3,
    ItemState.CANCELLED: 4,
    ItemState.DONE: 5,
}

#: (label, key, fixed width or None for auto). Columns whose text changes while a row lives get a
#: fixed width: an auto-width column re-measures *every* cell of the column whenever one of its
#: cells shrinks, which at 3,000 rows and 2 ticks/s would cost more than the diff saves.
#: What an operator reads first comes first, so a narrow terminal cuts the least useful: the
#: phase is implied by the processor.
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("State", "state", 9),
    ("Processor", "processor", None),
    ("Dates", "dates", None),
    ("Exit/reason", "reason", 36),
    ("Att.", "attempt", 4),
    ("Duration", "duration", 8),
    ("Started", "started", 8),
    ("Phase", "phase", None),
)
COLUMN_KEYS: tuple[str, ...] = tuple(key for _, key, _ in COLUMNS)
REASON_WIDTH = 36

#: Above this many removals at once (typically a filter being typed), rebuilding the table is
#: cheaper: `DataTable.remove_row` re-indexes every remaining row, so n removals cost O(n * rows).
REBUILD_AFTER_REMOVALS = 64

Order = tuple[int, date, int]


def item_order(item: ItemView) -> Order:
    """Sort key: state rank, then first date, then id (ids break ties deterministically)."""
    return (STATE_RANK.get(item.state, len(STATE_RANK)), min(item.dates, default=date.max), item.id)


def format_dates(dates: Sequence[date]) -> str:
    """One date as is; a range as "first..last (n)" so a row stays narrow."""
    if not dates:
        return ""
    first, last = min(dates), max(dates)
    if len(dates) == 1:
        return first.isoformat()
    return f"{first.isoformat()}..{last.isoformat()} ({len(dates)})"


def format_reason(item: ItemView, width: int = REASON_WIDTH) -> str:
    """The engine's reason (it already says "exit 1; retry in 30s", "killed: stall", ...), else
    the exit code of a failed attempt; first line only, shortened to fit its column."""
    text = item.reason or ""
    if not text and item.exit_code not in (None, 0):
        text = f"exit {item.exit_code}"
    text = text.strip().splitlines()[0] if text.strip() else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def render_cells(item: ItemView) -> tuple[str, ...]:
    """The row's display text per column, in COLUMNS order (pure: what the diff compares)."""
    text = {
        "state": item.state.value,
        "phase": item.phase,
        "processor": item.processor,
        "dates": format_dates(item.dates),
        "attempt": str(item.attempt) if item.attempt else "",
        "started": time.strftime("%H:%M:%S", time.localtime(item.started_at))
        if item.started_at is not None
        else "",
        "duration": format_duration(item.duration) if item.duration is not None else "",
        "reason": format_reason(item),
    }
    return tuple(text[key] for key in COLUMN_KEYS)


def filter_text(item: ItemView) -> str:
    """What a filter matches: processor, phase, state, reason and every date of the item (so a
    date inside a range finds the item), lower-cased once."""
    parts = [item.processor, item.phase, item.state.value, item.reason or ""]
    parts += [format_dates(item.dates), *(d.isoformat() for d in item.dates)]
    return " ".join(parts).lower()


class _StateCell(Text):
    """The State cell, carrying its row's sort key.

    `DataTable.sort` hands its key function cell values, never row keys, so the (state, first
    date, id) order has to ride on a cell; the State cell is the one that changes with the order.
    """

    __slots__ = ("order",)

    def __init__(self, label: str, style: Style | str, order: Order) -> None:
        super().__init__(label, style=style, end="", no_wrap=True, overflow="ellipsis")
        self.order = order


def _by_order(cell: Any) -> Order:
    return cell.order


def _plain(text: str) -> Text:
    """A Text, never a str: DataTable parses str cells as markup, and a reason like
    "[Errno 2] ..." or a processor named "[x]" must show as typed."""
    return Text(text, end="", no_wrap=True, overflow="ellipsis")


@dataclass
class _Row:
    """What a shown row currently displays, to diff the next view against."""

    item: ItemView
    cells: tuple[str, ...]
    order: Order


class QueueTable(DataTable[Text]):
    """Every item of the run, worst news first; `update_items` is cheap enough to call per tick."""

    DEFAULT_CSS = """
    QueueTable { height: 1fr; }
    QueueTable > .queue-table--running { color: $accent; text-style: bold; }
    QueueTable > .queue-table--failed { color: $error; text-style: bold; }
    QueueTable > .queue-table--pending { color: $text-muted; }
    QueueTable > .queue-table--blocked { color: $warning; }
    QueueTable > .queue-table--cancelled { color: $text-muted; text-style: italic; }
    QueueTable > .queue-table--done { color: $success; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {f"queue-table--{state.value}" for state in ItemState}

    class ItemHighlighted(Message):
        """The cursor moved to another item (not sent again while it stays on the same item)."""

        def __init__(self, item_id: int) -> None:
            super().__init__()
            self.item_id = item_id

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
        super().__init__(
            cursor_type="row",
            zebra_stripes=False,
            name=name,
            id=id,
            classes=classes,
            disabled=disabled,
        )
        #: every item of the last update, shown or filtered out
        self._items: dict[int, ItemView] = {}
        #: the rows currently in the table
        self._shown: dict[int, _Row] = {}
        self._filter = ""
        self._highlighted: int | None = None
        self._state_styles: dict[str, Style] = {}
        self._ready = False

    def on_mount(self) -> None:
        for label, key, width in COLUMNS:
            self.add_column(label, key=key, width=width)
        self._state_styles = self._resolve_state_styles()
        self._ready = True
        if self._items:
            self._apply()

    # -- public API -------------------------------------------------------------------------

    def update_items(self, items: Iterable[ItemView]) -> None:
        """Show these items (the whole queue, not a delta): rows are added, removed and updated by
        item id, only changed cells are touched, and the cursor stays on the same item."""
        self._items = {item.id: item for item in items}
        if self._ready:
            self._apply()

    def set_filter(self, text: str) -> None:
        """Show only items whose processor, phase, dates, state or reason contain `text` (case
        insensitive); an empty text shows everything again."""
        text = text.strip().lower()
        if text == self._filter:
            return
        self._filter = text
        if self._ready:
            self._apply()

    def selected_item_id(self) -> int | None:
        """The item under the cursor, or None when the table is empty."""
        if not self._shown or not self.is_valid_row_index(self.cursor_row):
            return None
        row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return int(row_key.value) if row_key.value is not None else None

    # -- diffing ----------------------------------------------------------------------------

    def _visible(self) -> dict[int, ItemView]:
        if not self._filter:
            return self._items
        needle = self._filter
        return {i: item for i, item in self._items.items() if needle in filter_text(item)}

    def _state_cell(self, state: str, order: Order) -> _StateCell:
        return _StateCell(state, self._state_styles.get(state, ""), order)

    def _row_values(self, cells: tuple[str, ...], order: Order) -> list[Text]:
        return [self._state_cell(cells[0], order), *map(_plain, cells[1:])]

    def _apply(self) -> None:
        """Bring the table in line with `_items` and the filter, touching as little as possible."""
        cursor_item = self.selected_item_id()
        visible = self._visible()
        removed = [i for i in self._shown if i not in visible]
        with self.app.batch_update():
            if len(removed) > REBUILD_AFTER_REMOVALS:
                self._rebuild(visible)
            else:
                self._diff(visible, removed)
            if cursor_item is not None and cursor_item in self._shown:
                index = self.get_row_index(str(cursor_item))
                if index != self.cursor_row:
                    self.move_cursor(row=index, scroll=False)
        self._announce_highlight()

    def _diff(self, visible: dict[int, ItemView], removed: list[int]) -> None:
        reorder = False
        for item_id in removed:
            self.remove_row(str(item_id))
            del self._shown[item_id]
        added: list[ItemView] = []
        for item_id, item in visible.items():
            row = self._shown.get(item_id)
            if row is None:
                added.append(item)
                continue
            if row.item == item:
                continue
            cells = render_cells(item)
            order = item_order(item)
            key = str(item_id)
            for column, old, new in zip(COLUMN_KEYS, row.cells, cells, strict=True):
                if column == "state":
                    if old != new or order != row.order:
                        self.update_cell(key, column, self._state_cell(new, order))
                elif old != new:
                    self.update_cell(key, column, _plain(new))
            reorder = reorder or order != row.order
            row.item, row.cells, row.order = item, cells, order
        for item in sorted(added, key=item_order):
            self._add(item)
        if (reorder or added) and self._out_of_order():
            self.sort("state", key=_by_order)

    def _add(self, item: ItemView) -> None:
        cells = render_cells(item)
        order = item_order(item)
        self.add_row(*self._row_values(cells, order), key=str(item.id))
        self._shown[item.id] = _Row(item, cells, order)

    def _out_of_order(self) -> bool:
        """Whether the rows on screen are not in (state, first date, id) order."""
        shown = self._shown
        orders = [shown[int(row.key.value)].order for row in self.ordered_rows if row.key.value]
        return any(a > b for a, b in pairwise(orders))

    def _rebuild(self, visible: dict[int, ItemView]) -> None:
        """Refill in order: for a filter change, O(rows) instead of O(rows²) removals."""
        scroll_y = self.scroll_y
        self.clear()
        self._shown.clear()
        for item in sorted(visible.values(), key=item_order):
            self._add(item)
        # The new rows are measured on idle; scroll back once the table has its height again.
        self.call_after_refresh(self.scroll_to, y=scroll_y, animate=False)

    def _announce_highlight(self) -> None:
        """Post ItemHighlighted if the item under the cursor changed (rows added under an untouched
        cursor, the cursor's item filtered out or removed, ...)."""
        current = self.selected_item_id()
        if current is not None and current != self._highlighted:
            self._highlighted = current
            self.post_message(self.ItemHighlighted(current))
        elif current is None:
            self._highlighted = None

    # -- events -----------------------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Read the cursor now rather than the event's row: during a diff the cursor may pass
        # through other rows before it is put back on its item, and those are not news.
        if event.data_table is self:
            self._announce_highlight()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self and event.row_key.value is not None:
            self.post_message(self.ItemChosen(int(event.row_key.value)))

    # -- theme ------------------------------------------------------------------------------

    def _resolve_state_styles(self) -> dict[str, Style]:
        return {
            state.value: self.get_component_rich_style(f"queue-table--{state.value}", partial=True)
            for state in ItemState
        }

    def notify_style_update(self) -> None:
        """A theme change restyles the State cells (their Rich styles are resolved from CSS)."""
        super().notify_style_update()
        if self._ready:
            # The component styles are updated after this node's own: look them up once the
            # stylesheet pass is over.
            self.call_later(self._restyle_states)

    def _restyle_states(self) -> None:
        styles = self._resolve_state_styles()
        if styles == self._state_styles:
            return
        self._state_styles = styles
        with self.app.batch_update():
            for item_id, row in self._shown.items():
                self.update_cell(str(item_id), "state", self._state_cell(row.cells[0], row.order))
