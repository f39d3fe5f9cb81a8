"""QueueTable applies keyed diffs: sorted rows, cursor kept by item, filter, only changed cells."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from core.engine import ItemState, ItemView
from tui.widgets.queue_table import COLUMN_KEYS, QueueTable, format_dates, render_cells

SIZE = (120, 30)
DAY = date(2024, 1, 20)


def view(
    item_id: int,
    state: ItemState = ItemState.PENDING,
    *,
    day: date = DAY,
    days: int = 1,
    processor: str = "box",
    phase: str = "raw",
    **changes,
) -> ItemView:
    running = state is ItemState.RUNNING
    fields = dict(
        id=item_id,
        processor=processor,
        phase=phase,
        dates=tuple(day + timedelta(days=i) for i in range(days)),
        state=state,
        attempt=1 if state is not ItemState.PENDING else 0,
        started_at=1_700_000_000.0 if state is not ItemState.PENDING else None,
        duration=12.0 if state is not ItemState.PENDING else None,
        exit_code=None if running or state is ItemState.PENDING else 0,
        reason=None,
        log_path=Path(f"/logs/{item_id}.log"),
    )
    fields.update(changes)
    return ItemView(**fields)


class QueueApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.chosen: list[int] = []
        self.highlighted: list[int] = []

    def compose(self) -> ComposeResult:
        yield QueueTable()

    def on_mount(self) -> None:
        self.query_one(QueueTable).focus()

    def on_queue_table_item_chosen(self, event: QueueTable.ItemChosen) -> None:
        self.chosen.append(event.item_id)

    def on_queue_table_item_highlighted(self, event: QueueTable.ItemHighlighted) -> None:
        self.highlighted.append(event.item_id)


async def until(pilot, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.02)


def row_ids(table: QueueTable) -> list[int]:
    return [int(row.key.value) for row in table.ordered_rows]


def cell(table: QueueTable, item_id: int, column: str) -> str:
    return table.get_cell(str(item_id), column).plain


class CountingUpdates:
    """Counts update_cell calls (the point of a keyed diff is how few there are)."""

    def __init__(self, table: QueueTable, monkeypatch) -> None:
        self.calls: list[tuple[str, str]] = []
        original = table.update_cell

        def update_cell(row_key, column_key, value, **kwargs):
            self.calls.append((str(row_key), str(column_key)))
            return original(row_key, column_key, value, **kwargs)

        monkeypatch.setattr(table, "update_cell", update_cell)


def mixed() -> list[ItemView]:
    return [
        view(1, ItemState.DONE, day=date(2024, 1, 1)),
        view(2, ItemState.PENDING, day=date(2024, 1, 3)),
        view(3, ItemState.RUNNING, day=date(2024, 1, 5)),
        view(4, ItemState.FAILED, day=date(2024, 1, 2), exit_code=1, reason="exit 1"),
        view(5, ItemState.BLOCKED, day=date(2024, 1, 1), reason="upstream failed"),
        view(6, ItemState.CANCELLED, day=date(2024, 1, 1), reason="cancelled by operator"),
        view(7, ItemState.RUNNING, day=date(2024, 1, 4), processor="player_stats"),
        view(8, ItemState.PENDING, day=date(2024, 1, 3), phase="analytics", days=5),
    ]


def cells_of(item) -> dict[str, str]:
    return dict(zip(COLUMN_KEYS, render_cells(item), strict=True))


def test_cells_say_what_the_operator_needs():
    item = view(9, ItemState.FAILED, days=11, reason="incomplete on 2024-01-25", exit_code=0)
    keys = ("state", "phase", "processor", "dates", "attempt", "started", "duration", "reason")
    state, phase, processor, dates, attempt, started, duration, reason = (
        cells_of(item)[k] for k in keys
    )
    assert (state, phase, processor, attempt, duration) == ("failed", "raw", "box", "1", "12s")
    assert dates == "2024-01-20..2024-01-30 (11)"
    assert format_dates((DAY,)) == "2024-01-20"
    assert started == time.strftime("%H:%M:%S", time.localtime(1_700_000_000))
    assert reason == "incomplete on 2024-01-25"
    assert cells_of(view(9, ItemState.FAILED, exit_code=2))["reason"] == "exit 2"
    pending = cells_of(view(9, ItemState.PENDING))
    assert [pending[k] for k in ("attempt", "started", "duration", "reason")] == ["", "", "", ""]


@pytest.mark.asyncio
async def test_rows_are_sorted_running_first_done_last():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        # running, failed, pending, blocked, cancelled, done; then first date; then id
        assert row_ids(table) == [7, 3, 4, 2, 8, 5, 6, 1]
        assert cell(table, 4, "reason") == "exit 1"
        assert cell(table, 8, "dates") == "2024-01-03..2024-01-07 (5)"
        assert table.selected_item_id() == 7
        assert app.highlighted == [7]


@pytest.mark.asyncio
async def test_a_tick_touches_only_changed_cells_and_the_cursor_follows_its_item(monkeypatch):
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        items = mixed()
        table.update_items(items)
        await pilot.pause()
        await pilot.press("down", "down", "down")  # onto item 2 (pending)
        assert table.selected_item_id() == 2
        await until(pilot, lambda: app.highlighted[-1:] == [2])
        counting = CountingUpdates(table, monkeypatch)

        # a running item's duration ticks: one cell, no re-sort
        items = [dataclasses.replace(i, duration=13.0) if i.id == 3 else i for i in items]
        table.update_items(items)
        assert counting.calls == [("3", "duration")]
        assert cell(table, 3, "duration") == "13s"
        assert row_ids(table) == [7, 3, 4, 2, 8, 5, 6, 1]

        # the same views again: nothing at all
        counting.calls.clear()
        table.update_items(items)
        assert counting.calls == []

        # item 2 starts running: it moves to the top and the cursor goes with it
        counting.calls.clear()
        started = dataclasses.replace(
            items[1], state=ItemState.RUNNING, attempt=1, started_at=1_700_000_100.0, duration=0.0
        )
        items = [started if i.id == 2 else i for i in items]
        table.update_items(items)
        await pilot.pause()
        assert row_ids(table) == [2, 7, 3, 4, 8, 5, 6, 1]  # running, by first date
        assert table.selected_item_id() == 2 and table.cursor_row == 0
        assert {column for row, column in counting.calls} == {
            "state",
            "attempt",
            "started",
            "duration",
        }
        assert {row for row, column in counting.calls} == {"2"}
        assert cell(table, 2, "state") == "running"
        assert app.highlighted[-1] == 2 and app.highlighted.count(2) == 1  # not news again

        # removed items disappear; the cursor's item stays under the cursor
        items = [i for i in items if i.id not in (7, 1)]
        table.update_items(items)
        await pilot.pause()
        assert row_ids(table) == [2, 3, 4, 8, 5, 6]
        assert table.selected_item_id() == 2

        # the cursor's own item removed: the cursor lands on a neighbour, which is news
        items = [i for i in items if i.id != 2]
        table.update_items(items)
        await pilot.pause()
        assert row_ids(table) == [3, 4, 8, 5, 6]
        assert table.selected_item_id() == app.highlighted[-1] == 3


@pytest.mark.asyncio
async def test_filter_hides_and_restores_rows():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        await pilot.press("down")  # item 3
        table.set_filter("RUNNING")
        await pilot.pause()
        assert row_ids(table) == [7, 3]
        assert table.selected_item_id() == 3
        table.set_filter("player_")
        assert row_ids(table) == [7]
        table.set_filter("2024-01-06")  # inside item 8's range
        assert row_ids(table) == [8]
        table.set_filter("operator")  # reason
        assert row_ids(table) == [6]
        table.set_filter("analytics")  # phase
        assert row_ids(table) == [8]
        table.set_filter("")
        await pilot.pause()
        assert row_ids(table) == [7, 3, 4, 2, 8, 5, 6, 1]

        # an item arriving while filtered out shows up once the filter clears
        table.set_filter("exit 1")
        table.update_items([*mixed(), view(9, ItemState.PENDING, day=date(2023, 12, 31))])
        assert row_ids(table) == [4]
        table.set_filter("")
        assert row_ids(table) == [7, 3, 4, 9, 2, 8, 5, 6, 1]


@pytest.mark.asyncio
async def test_enter_chooses_the_item_under_the_cursor():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: app.chosen == [4])
        assert app.highlighted[-1] == 4


@pytest.mark.asyncio
async def test_reasons_are_text_not_markup():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items([view(1, ItemState.FAILED, reason="[Errno 2] [/bold] no such file")])
        await pilot.pause()
        assert cell(table, 1, "reason") == "[Errno 2] [/bold] no such file"


@pytest.mark.asyncio
async def test_3000_items_with_20_changes_update_only_those_cells_quickly(monkeypatch):
    states = [ItemState.DONE, ItemState.PENDING, ItemState.RUNNING, ItemState.FAILED]
    items = [
        view(i, states[i % 4], day=DAY + timedelta(days=i % 365), processor=f"p{i % 15}")
        for i in range(3000)
    ]
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        started = time.perf_counter()
        table.update_items(items)
        first = time.perf_counter() - started
        await pilot.pause()
        keys_before = row_ids(table)
        assert len(keys_before) == 3000
        counting = CountingUpdates(table, monkeypatch)

        running = [i for i in items if i.state is ItemState.RUNNING][:20]
        ticked = {i.id: dataclasses.replace(i, duration=99.0) for i in running}
        items = [ticked.get(i.id, i) for i in items]
        timings = []
        for _ in range(3):
            counting.calls.clear()
            started = time.perf_counter()
            table.update_items(items)
            timings.append(time.perf_counter() - started)
            items = [dataclasses.replace(i) for i in items]  # fresh views, equal values
        await pilot.pause()

        assert sorted(counting.calls) == []  # the last two updates changed nothing
        assert row_ids(table) == keys_before
        assert all(cell(table, i, "duration") == "1m39s" for i in ticked)
        # generous bounds for slow CI machines; typically ~5 ms and ~150 ms
        assert min(timings) < 0.1, timings
        assert first < 2.0, first

        counting.calls.clear()
        more = {i.id: dataclasses.replace(i, duration=100.0) for i in running}
        table.update_items([more.get(i.id, i) for i in items])
        assert len(counting.calls) == 20
        assert {column for _, column in counting.calls} == {"duration"}
        assert row_ids(table) == keys_before


@pytest.mark.asyncio
async def test_state_cells_take_their_colours_from_the_theme():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        app.theme = "nord"
        await pilot.pause()
        failed = table.get_cell("4", "state").style
        running = table.get_cell("3", "state").style
        assert failed.color.triplet.hex.lower() == app.theme_variables["error"].lower()
        assert running.color.triplet.hex.lower() == app.theme_variables["accent"].lower()
