"""QueueTable draws only the rows on screen from a sorted model: order, a cursor kept by item, the
filter, literal text, and deltas that repaint only what they changed."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from core.engine.api import ItemState, ItemView
from tui.widgets.queue_table import (
    COLUMN_KEYS,
    COLUMNS,
    STATE_WORDS,
    QueueModel,
    QueueTable,
    _narrows,
    filter_text,
    format_dates,
    format_reason,
    item_order,
    render_cells,
)

SIZE = (160, 30)
DAY = date(2024, 1, 20)
NOW = 1_700_000_000.0
LABELS = [label for label, _, _ in COLUMNS]


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
    pending, running = state is ItemState.PENDING, state is ItemState.RUNNING
    view = ItemView(
        id=item_id,
        processor=processor,
        phase=phase,
        dates=tuple(day + timedelta(days=i) for i in range(days)),
        state=state,
        attempt=0 if pending else 1,
        started_at=None if pending else NOW,
        # the engine's contract: the duration of an ended attempt, None while one runs
        duration=None if pending or running else 12.0,
        exit_code=None if running or pending else 0,
        reason=None,
        log_path=Path(f"/logs/{item_id}.log"),
    )
    return dataclasses.replace(view, **changes)


class QueueApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.chosen: list[int] = []
        self.highlighted: list[int] = []

    def compose(self) -> ComposeResult:
        yield QueueTable()

    def on_mount(self) -> None:
        table = self.query_one(QueueTable)
        table.clock = lambda: NOW + 75  # every running item has run for 1m15s
        table.focus()

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
    return [table.item_id_at(row) for row in range(table.row_count)]


def screen(table: QueueTable) -> list[str]:
    """The widget's lines as the terminal would get them (header first)."""
    return [table.render_line(y).text for y in range(table.size.height)]


def split(table: QueueTable, line: str) -> dict[str, str]:
    """A drawn line cut into columns where the header puts their labels."""
    header = table.render_line(0).text
    starts, position = [], 0
    for label in LABELS:
        position = header.index(label, position)
        starts.append(position - 1)  # one cell of padding before each value
    bounds = [*starts[1:], len(line)]
    return {
        label: line[start:end].strip()
        for label, start, end in zip(LABELS, starts, bounds, strict=True)
    }


def cells(table: QueueTable, item_id: int) -> dict[str, str]:
    row = table.row_of(item_id)
    assert row is not None, f"item {item_id} not shown"
    y = row - table.scroll_offset.y + 1
    assert 1 <= y < table.size.height, f"item {item_id} not on screen"
    return split(table, table.render_line(y).text)


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


ORDER = [3, 7, 4, 2, 8, 5, 6, 1]


def cells_of(item, now: float = NOW + 75) -> dict[str, str]:
    return dict(zip(COLUMN_KEYS, render_cells(item, now), strict=True))


class CountingBuilds:
    """Records which items get their row drawn from scratch (not served from the strip cache)
    and which lines Textual asks for."""

    def __init__(self, table: QueueTable, monkeypatch) -> None:
        self.built: list[int] = []
        self.lines: list[int] = []
        build, render_line = table._row_strip, table.render_line

        def row_strip(item, *args):
            self.built.append(item.id)
            return build(item, *args)

        def line(y):
            self.lines.append(y)
            return render_line(y)

        monkeypatch.setattr(table, "_row_strip", row_strip)
        monkeypatch.setattr(table, "render_line", line)

    def clear(self) -> None:
        self.built.clear()
        self.lines.clear()


def test_cells_say_what_the_operator_needs():
    item = view(9, ItemState.FAILED, days=11, reason="incomplete on 2024-01-25", exit_code=0)
    keys = ("state", "phase", "processor", "dates", "attempt", "started", "duration", "reason")
    state, phase, processor, dates, attempt, started, duration, reason = (
        cells_of(item)[k] for k in keys
    )
    assert (state, phase, processor, attempt, duration) == ("failed", "raw", "box", "1", "12s")
    assert dates == "2024-01-20..01-30 (11)"
    assert format_dates((date(2023, 12, 30), date(2024, 1, 2))) == "2023-12-30..2024-01-02 (2)"
    assert format_dates((DAY,)) == "2024-01-20"
    assert started == time.strftime("%H:%M:%S", time.localtime(NOW))
    assert reason == "incomplete on 2024-01-25"
    assert cells_of(view(9, ItemState.FAILED, exit_code=2))["reason"] == "exit 2"
    pending = cells_of(view(9, ItemState.PENDING))
    assert [pending[k] for k in ("attempt", "started", "duration", "reason")] == ["", "", "", ""]
    # a running attempt has no duration yet: it counts from its start
    assert cells_of(view(9, ItemState.RUNNING), now=NOW + 3700)["duration"] == "1h01m"
    assert format_reason(view(9, reason="\x1b[31mboom\x1b[0m\x07 at\tnoon\nsecond line")) == (
        "[31mboom[0m atnoon"
    )


def matches(text: str, item: ItemView) -> bool:
    """The filter's rule, the slow way: every word a state word of the item's state, or part
    of its filter_text."""
    words = text.split()
    return all(
        item.state is STATE_WORDS[w] if w in STATE_WORDS else w in filter_text(item) for w in words
    )


def test_the_model_stays_sorted_through_random_deltas_and_filters():
    rng = random.Random(7)
    states = list(ItemState)
    model = QueueModel()
    truth: dict[int, ItemView] = {}

    def random_item(item_id: int) -> ItemView:
        return view(
            item_id,
            rng.choice(states),
            day=DAY + timedelta(days=rng.randrange(30)),
            days=rng.choice([1, 1, 3]),
            processor=rng.choice(["alpha", "beta", "gamma"]),
            reason=rng.choice([None, None, "exit 1; retry in 30s", "upstream failed"]),
        )

    for step in range(1200):
        roll = rng.random()
        if roll < 0.1:
            # words typed on ("a" then "al" ...) refilter only what is shown: same result
            model.set_filter(
                rng.choice(
                    [
                        "",
                        "",
                        "a",
                        "al",
                        "alpha",
                        "RUNNING",
                        "2",
                        "2024-01",
                        "2024-01-2",
                        "retry",
                        "retry 2024-01-1",
                        "(3)",
                        "failed up",
                        "..01",
                    ]
                )
            )
        elif roll < 0.15 and truth:
            gone = rng.sample(sorted(truth), min(3, len(truth)))
            for item_id in gone:
                del truth[item_id]
            model.replace(truth.values())
        else:
            changed = [random_item(rng.randrange(60)) for _ in range(rng.randrange(1, 9))]
            model.apply(changed)
            truth.update((item.id, item) for item in changed)
        expected = sorted((i for i in truth.values() if matches(model.filter, i)), key=item_order)
        assert [model.id_at(r) for r in range(len(model))] == [i.id for i in expected], step
        for row, item in enumerate(expected):
            assert model.row_of(item.id) == row


def test_a_delta_holding_most_of_the_queue_is_sorted_in_one_go():
    # A run's first snapshot carries every item: one sort, not an insert per item.
    items = [view(i, list(ItemState)[i % 6], day=DAY + timedelta(days=i % 50)) for i in range(500)]
    model = QueueModel()
    model.set_filter("pend")
    delta = model.apply(items)
    assert delta.rebuilt and len(delta.changed) == 500
    pending = sorted((i for i in items if i.state is ItemState.PENDING), key=item_order)
    assert [model.id_at(r) for r in range(len(model))] == [i.id for i in pending]
    model.set_filter("")
    assert [model.id_at(r) for r in range(len(model))] == [
        i.id for i in sorted(items, key=item_order)
    ]
    assert not model.apply([dataclasses.replace(i) for i in items])  # equal views: no change
    # a small delta: moved in place, to the top (running, and the lowest id of the running)
    moved = dataclasses.replace(items[0], state=ItemState.RUNNING, started_at=NOW)
    delta = model.apply([moved])
    assert not delta.rebuilt and model.row_of(0) == 0 and delta.moved_from == 0
    # its dates shrink (some were completed meanwhile), its state stays: it keeps its row
    shrunk = dataclasses.replace(moved, dates=(DAY + timedelta(days=40),))
    delta = model.apply([shrunk])
    assert delta.moved_from is None and delta.updated == [0] and model.row_of(0) == 0


@pytest.mark.asyncio
async def test_rows_are_sorted_running_first_done_last():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        # running, failed, pending, blocked, cancelled, done; then id (the plan's order)
        assert row_ids(table) == ORDER
        assert table.row_count == 8
        lines = screen(table)
        assert all(label in lines[0] for label in LABELS)
        assert [split(table, line)["State"] for line in lines[1:9]] == [
            "running",
            "running",
            "failed",
            "pending",
            "pending",
            "blocked",
            "cancelled",
            "done",
        ]
        assert lines[9].strip() == ""
        assert cells(table, 4)["Exit/reason"] == "exit 1"
        assert cells(table, 8)["Dates"] == "2024-01-03..01-07 (5)"
        assert cells(table, 7)["Processor"] == "player_stats"
        assert cells(table, 8)["Phase"] == "analytics"
        assert cells(table, 3)["Duration"] == "1m15s"
        assert table.selected_item_id() == 3 and table.cursor_row == 0
        assert app.highlighted == [3]


@pytest.mark.asyncio
async def test_the_cursor_follows_its_item_through_updates():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        items = mixed()
        table.update_items(items)
        await pilot.pause()
        await pilot.press("down", "down", "down")  # onto item 2 (pending)
        assert table.selected_item_id() == 2
        await until(pilot, lambda: app.highlighted[-1:] == [2])

        # item 2 starts running: it moves to the top and the cursor goes with it
        started = dataclasses.replace(
            items[1], state=ItemState.RUNNING, attempt=1, started_at=NOW + 10
        )
        items = [started if i.id == 2 else i for i in items]
        table.update_items(items)
        await pilot.pause()
        assert row_ids(table) == [2, 3, 7, 4, 8, 5, 6, 1]  # running, by id
        assert table.selected_item_id() == 2 and table.cursor_row == 0
        assert cells(table, 2)["State"] == "running"
        assert cells(table, 2)["Duration"] == "1m05s"
        assert app.highlighted[-1] == 2 and app.highlighted.count(2) == 1  # not news again

        # removed items disappear; the cursor's item stays under the cursor
        items = [i for i in items if i.id not in (7, 1)]
        table.update_items(items)
        await pilot.pause()
        assert row_ids(table) == [2, 3, 4, 8, 5, 6]
        assert table.selected_item_id() == 2
        assert len(screen(table)[7].strip()) == 0  # the old last line is blank again

        # the cursor's own item removed: the cursor lands on the one taking its place, news
        items = [i for i in items if i.id != 2]
        table.update_items(items)
        await pilot.pause()
        assert row_ids(table) == [3, 4, 8, 5, 6]
        assert table.selected_item_id() == app.highlighted[-1] == 3

        # everything gone, then back: the cursor starts at the top again
        table.update_items([])
        await pilot.pause()
        assert table.row_count == 0 and table.selected_item_id() is None
        assert table.cursor_row is None
        table.update_items(mixed())
        await pilot.pause()
        assert table.selected_item_id() == 3


@pytest.mark.asyncio
async def test_apply_repaints_only_the_changed_rows(monkeypatch):
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        items = {i.id: i for i in mixed()}
        table.update_items(items.values())
        await pilot.pause()
        counting = CountingBuilds(table, monkeypatch)

        # a failed item's reason changes: its row alone is drawn again
        table.apply([dataclasses.replace(items[4], reason="exit 1; retry in 30s")])
        await pilot.pause()
        assert counting.built == [4]
        assert counting.lines == [1 + ORDER.index(4)]
        assert cells(table, 4)["Exit/reason"] == "exit 1; retry in 30s"

        # the same view again: nothing at all
        counting.clear()
        table.apply([dataclasses.replace(items[4], reason="exit 1; retry in 30s")])
        await pilot.pause()
        assert counting.built == [] and counting.lines == []

        # a change that moves its row: only that item is drawn again; the rows it passed are
        # repainted from their cached strips
        counting.clear()
        done = dataclasses.replace(items[7], state=ItemState.DONE, duration=80.0, exit_code=0)
        table.apply([done])
        await pilot.pause()
        assert counting.built == [7]
        assert row_ids(table) == [3, 4, 2, 8, 5, 6, 1, 7]
        assert set(counting.lines) == set(range(2, SIZE[1]))  # from item 7's old row down
        assert cells(table, 7)["Duration"] == "1m20s"

        # a new item: a new row count repaints the widget (its scroll range changed), but only
        # the new row is drawn from scratch
        counting.clear()
        table.apply([view(99, ItemState.DONE, day=date(2030, 1, 1))])
        await pilot.pause()
        assert counting.built == [99]
        assert table.row_count == 9
        assert app.highlighted == [3]


@pytest.mark.asyncio
async def test_filter_hides_and_restores_rows():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        await pilot.press("down")  # item 7
        table.set_filter("RUNNING")
        await pilot.pause()
        assert row_ids(table) == [3, 7]
        assert table.row_count == 2
        assert table.selected_item_id() == 7
        assert screen(table)[3].strip() == ""
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
        assert row_ids(table) == ORDER

        # an item arriving while filtered out shows up once the filter clears
        table.set_filter("exit 1")
        table.update_items([*mixed(), view(9, ItemState.PENDING, day=date(2023, 12, 31))])
        assert row_ids(table) == [4]
        table.set_filter("")
        assert row_ids(table) == [3, 7, 4, 2, 8, 9, 5, 6, 1]

        # deltas go through the filter too: in when they start to match, out when they stop
        table.set_filter("running")
        items = {i.id: i for i in mixed()}
        table.apply([dataclasses.replace(items[2], state=ItemState.RUNNING, started_at=NOW)])
        assert row_ids(table) == [2, 3, 7]
        table.apply([dataclasses.replace(items[7], state=ItemState.DONE, duration=3.0)])
        await pilot.pause()
        assert row_ids(table) == [2, 3]
        assert [split(table, line)["State"] for line in screen(table)[1:3]] == ["running"] * 2
        assert screen(table)[3].strip() == ""


@pytest.mark.asyncio
async def test_the_reason_gets_the_width_the_other_columns_leave():
    # "... incomplete on 2024-01-24 (2 of 18 rows)" says by how much only at its end.
    reason = "exit 0 but incomplete on 2024-01-20 (2 of 18 rows)"
    short = view(9, ItemState.FAILED, reason=reason)
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items([short])
        await pilot.pause()
        assert cells(table, 9)["Exit/reason"] == reason
        assert table.virtual_size.width == table.scrollable_content_region.width  # no more
        await pilot.resize_terminal(80, 30)
        await pilot.pause()
        # Too narrow to spare anything: the reason keeps its own width (the pane scrolls).
        line = table.render_line(1).text
        assert "exit 0 but incomplete on" in line and "18 rows" not in line
        assert table.virtual_size.width > table.size.width
        await pilot.resize_terminal(*SIZE)
        await pilot.pause()
        assert cells(table, 9)["Exit/reason"] == reason


@pytest.mark.asyncio
async def test_a_filter_follows_an_items_changed_state_and_reason():
    # What the filter reads of an item is kept between keystrokes: it must follow the item.
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        items = {i.id: i for i in mixed()}
        table.update_items(items.values())
        table.set_filter("failed")
        await pilot.pause()
        assert row_ids(table) == [4]
        failed = dataclasses.replace(items[2], state=ItemState.FAILED, reason="exit 3")
        table.apply([failed])
        await pilot.pause()
        assert row_ids(table) == [2, 4]
        assert [split(table, line)["Exit/reason"] for line in screen(table)[1:3]] == [
            "exit 3",
            format_reason(items[4]),
        ]
        table.apply([dataclasses.replace(failed, state=ItemState.RUNNING, reason=None)])
        await pilot.pause()
        assert row_ids(table) == [4]
        assert screen(table)[2].strip() == ""
        # a text word: the reason changes under a filter typed on ("ex" -> "exit 3")
        table.set_filter("ex")
        table.set_filter("exit")
        assert row_ids(table) == [4]
        table.apply([dataclasses.replace(items[8], reason="exit 3; retry in 30s")])
        table.set_filter("exit 3")
        await pilot.pause()
        assert row_ids(table) == [8]
        assert split(table, screen(table)[1])["Exit/reason"].startswith("exit 3")
        table.apply([dataclasses.replace(items[8], reason=None)])
        await pilot.pause()
        assert row_ids(table) == []


def test_a_state_word_filters_to_that_state_and_words_all_match():
    model = QueueModel()
    model.replace(mixed())

    def shown(text: str) -> list[int]:
        model.set_filter(text)
        return [model.id_at(r) for r in range(len(model))]

    # item 5 is blocked because "upstream failed": "failed" means the state, not the word
    assert shown("failed") == [4]
    assert shown("FAILED ") == [4]
    assert shown("fail") == [4, 5]  # a part of a word is text
    assert shown("queued") == shown("pending") == [2, 8]  # the heatmap's word for pending
    assert shown("pending analytics") == [8]  # every word must match
    assert shown("running 2024-01-04") == [7]
    assert shown("done  box") == [1]
    assert shown("cancelled failed") == []


@pytest.mark.asyncio
async def test_enter_chooses_the_item_under_the_cursor():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: app.chosen == [4])
        assert app.highlighted == [3, 7, 4]


@pytest.mark.asyncio
async def test_a_click_moves_the_cursor_and_a_click_on_the_cursor_row_chooses():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        await pilot.click(QueueTable, offset=(20, 0))  # the header: nothing
        await pilot.click(QueueTable, offset=(20, 1 + ORDER.index(8)))
        await until(pilot, lambda: app.highlighted[-1:] == [8])
        assert table.selected_item_id() == 8 and app.chosen == []
        await pilot.click(QueueTable, offset=(20, 1 + ORDER.index(8)))
        await until(pilot, lambda: app.chosen == [8])
        await pilot.click(QueueTable, offset=(20, 20))  # below the last row: nothing
        await pilot.pause()
        assert table.selected_item_id() == 8 and app.chosen == [8]


@pytest.mark.asyncio
async def test_keys_move_the_cursor_and_scroll_it_into_view():
    items = [view(i, day=DAY + timedelta(days=i)) for i in range(100)]
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(items)
        await pilot.pause()
        body = table.size.height - 1
        await pilot.press("j", "j", "down")
        assert table.cursor_row == 3
        await pilot.press("k", "up")
        assert table.cursor_row == 1
        await pilot.press("end")
        assert table.selected_item_id() == 99
        await pilot.pause()
        assert table.scroll_offset.y == 100 - body
        assert split(table, screen(table)[-1])["Dates"] == (DAY + timedelta(days=99)).isoformat()
        await pilot.press("home")
        assert table.selected_item_id() == 0 and table.scroll_offset.y == 0
        await pilot.press("G")
        assert table.selected_item_id() == 99
        await pilot.press("g")
        assert table.selected_item_id() == 0
        await pilot.press("pagedown")
        assert table.cursor_row == body
        await pilot.press("pagedown", "pageup")
        assert table.cursor_row == body
        await pilot.press("up")  # not off screen
        assert table.cursor_row == body - 1
        await until(pilot, lambda: app.highlighted[-1:] == [body - 1])


@pytest.mark.asyncio
async def test_a_chosen_item_keeps_its_line_on_screen_while_rows_move():
    items = {i: view(i, day=DAY + timedelta(days=i)) for i in range(100)}
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(items.values())
        await pilot.pause()
        table.move_cursor(row=60)
        await pilot.pause()
        top = table.scroll_offset.y
        line = 60 - top
        assert top > 0 and table.selected_item_id() == 60

        def on_its_line() -> bool:
            return (
                table.cursor_row is not None
                and table.cursor_row - table.scroll_offset.y == line
                and split(table, screen(table)[1 + line])["Dates"]
                == (DAY + timedelta(days=60)).isoformat()
            )

        # rows above it finish (they sink to the bottom) or start (they rise to the top): the
        # view scrolls with the cursor's item, which stays under the operator's eyes
        for i, state in [(10, ItemState.DONE), (70, ItemState.RUNNING), (11, ItemState.DONE)]:
            changed = dataclasses.replace(items[i], state=state, started_at=NOW, duration=3.0)
            table.apply([changed])
            await pilot.pause()
            assert table.selected_item_id() == 60 and on_its_line(), i
        assert table.cursor_row == 59  # one row up, as is the view: 70 above it, 10 and 11 below
        # the cursor's own item starts: it goes to the top, and the view goes with it
        table.apply([dataclasses.replace(items[60], state=ItemState.RUNNING, started_at=NOW)])
        await pilot.pause()
        assert table.selected_item_id() == 60 and table.cursor_row == 0  # running: 60, 70
        assert table.scroll_offset.y == 0
        await pilot.press("down")  # the operator's own move goes on from where the item is
        assert table.selected_item_id() == 70


@pytest.mark.asyncio
async def test_a_cursor_not_moved_yet_rides_the_top_row():
    items = {i: view(i, day=DAY + timedelta(days=i)) for i in range(20)}
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(items.values())
        await pilot.pause()
        assert table.selected_item_id() == 0
        # the top item starts, then ends: the cursor stays on the top row, whatever is there
        table.apply([dataclasses.replace(items[5], state=ItemState.RUNNING, started_at=NOW)])
        await pilot.pause()
        assert table.selected_item_id() == 5 and table.cursor_row == 0
        table.apply([dataclasses.replace(items[5], state=ItemState.DONE, duration=2.0)])
        await pilot.pause()
        assert table.selected_item_id() == 0 and table.cursor_row == 0
        assert app.highlighted == [0, 5, 0]  # the log pane follows the highlighted row
        await pilot.press("j")  # chosen now: it stays on item 1 from here on
        table.apply([dataclasses.replace(items[9], state=ItemState.RUNNING, started_at=NOW)])
        await pilot.pause()
        assert table.selected_item_id() == 1 and table.cursor_row == 2
        # a new queue (a new run): nothing of it chosen yet
        table.update_items([])
        table.update_items(items.values())
        await pilot.pause()
        table.apply([dataclasses.replace(items[3], state=ItemState.RUNNING, started_at=NOW)])
        await pilot.pause()
        assert table.selected_item_id() == 3


@pytest.mark.asyncio
async def test_text_is_drawn_literally_and_control_characters_never_reach_the_terminal():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(
            [
                view(1, ItemState.FAILED, reason="[Errno 2] [/bold] no such file"),
                view(2, ItemState.FAILED, processor="[red]fail[/red]", day=DAY + timedelta(1)),
                view(
                    3,
                    ItemState.FAILED,
                    reason="\x1b[2J\x1b]0;pwned\x07done\x7f\x9b6n",
                    day=date(2025, 1, 1),
                ),
                view(4, ItemState.FAILED, phase="ra\x1bw", day=date(2026, 1, 1)),
            ]
        )
        await pilot.pause()
        assert cells(table, 1)["Exit/reason"] == "[Errno 2] [/bold] no such file"
        assert cells(table, 2)["Processor"] == "[red]fail[/red]"
        assert cells(table, 3)["Exit/reason"] == "[2J]0;pwneddone6n"
        assert cells(table, 4)["Phase"] == "raw"
        drawn = "".join(
            segment.text for y in range(table.size.height) for segment in table.render_line(y)
        )
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in drawn)


@pytest.mark.asyncio
async def test_a_running_duration_counts_up_without_new_views():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        assert cells(table, 3)["Duration"] == "1m15s"
        assert cells(table, 4)["Duration"] == "12s"  # ended: its own duration
        table.clock = lambda: NOW + 130
        # the widget's once-a-second repaint of running rows; read what reached the screen
        await until(pilot, lambda: "2m10s" in app.export_screenshot())
        assert cells(table, 3)["Duration"] == cells(table, 7)["Duration"] == "2m10s"


@pytest.mark.asyncio
async def test_30000_items_then_100_deltas_of_8_show_the_right_rows(monkeypatch):
    rng = random.Random(30)
    states = list(ItemState)

    def make(item_id: int, state: ItemState) -> ItemView:
        return view(
            item_id,
            state,
            day=DAY + timedelta(days=item_id % 700),
            processor=f"job{item_id:05d}",
            phase=f"phase{item_id % 4}",
        )

    truth = {i: make(i, rng.choice(states)) for i in range(30_000)}
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(truth.values())
        await pilot.pause()
        assert table.row_count == 30_000
        await pilot.press("pagedown", "down")  # the operator is on some item
        watched = table.selected_item_id()
        assert watched is not None
        counting = CountingBuilds(table, monkeypatch)

        for _ in range(100):
            changed = [make(i, rng.choice(states)) for i in rng.sample(range(30_000), 8)]
            if rng.random() < 0.3:  # now and then a brand-new item
                changed[0] = make(30_000 + len(truth), ItemState.RUNNING)
            truth.update((item.id, item) for item in changed)
            table.apply(changed)
            await pilot.pause()

        expected = sorted(truth.values(), key=item_order)
        assert table.row_count == len(truth)
        assert row_ids(table) == [item.id for item in expected]
        assert table.selected_item_id() == watched  # the cursor kept its item
        table.move_cursor(row=0)
        table.scroll_home(animate=False)
        await pilot.pause()
        lines = screen(table)[1:]
        for item, line in zip(expected, lines, strict=False):
            shown = split(table, line)
            assert (shown["Processor"], shown["State"]) == (item.processor, item.state.value)
        # never more rows drawn from scratch than the deltas changed: the rest come from cache
        assert len(counting.built) <= 100 * 8 + 2 * len(lines)


@pytest.mark.asyncio
async def test_state_cells_take_their_colours_from_the_theme():
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(mixed())
        await pilot.pause()
        app.theme = "nord"
        await pilot.pause()

        def state_style(item_id: int):
            strip = table.render_line(1 + table.row_of(item_id))
            return next(s.style for s in strip if s.text.strip() == cells(table, item_id)["State"])

        failed, running = state_style(4), state_style(7)  # not 3: under the cursor
        assert failed.color.triplet.hex.lower() == app.theme_variables["error"].lower()
        assert running.color.triplet.hex.lower() == app.theme_variables["accent"].lower()


def test_typing_on_narrows_and_anything_else_filters_from_the_whole_queue():
    assert _narrows(("p0",), ("p03",)) and _narrows(("p0",), ("p03", "failed"))
    assert _narrows(("failed", "box"), ("box", "failed"))
    assert not _narrows(("p03",), ("p0",))  # backspace: wider again
    assert not _narrows(("failed",), ("fail",))  # a state word is not a substring match
    assert not _narrows(("box", "raw"), ("box",))


@pytest.mark.asyncio
async def test_the_scrollbar_and_the_scroll_follow_the_row_count():
    # A new row count updates the scrollbar in place (no screen layout): it must still come,
    # go, size its thumb and keep the scroll within the rows.
    items = [view(i, day=DAY + timedelta(days=i)) for i in range(100)]
    app = QueueApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(items[:3])
        await pilot.pause()
        assert not table.show_vertical_scrollbar
        table.update_items(items)
        await pilot.pause()
        assert table.show_vertical_scrollbar
        assert table.vertical_scrollbar.window_virtual_size == 101
        # The reason gives the scrollbar its cells: no horizontal scrollbar over the last row.
        assert not table.show_horizontal_scrollbar
        assert table.virtual_size.width == table.scrollable_content_region.width
        most = table.max_scroll_y
        assert most > 0
        await pilot.press("end")
        await pilot.pause()
        body = table.size.height - 1
        assert table.scroll_offset.y == 100 - body
        table.set_filter("2024-01-2")  # ten days of January: the view must come back up
        await pilot.pause()
        assert table.row_count == 10 and table.scroll_offset.y == 0
        assert not table.show_vertical_scrollbar
        assert [split(table, line)["Dates"] for line in screen(table)[1:3]] == [
            "2024-01-20",
            "2024-01-21",
        ]
        table.set_filter("")
        await pilot.pause()
        assert table.show_vertical_scrollbar and table.max_scroll_y == most
        assert table.vertical_scrollbar.window_virtual_size == 101


@pytest.mark.asyncio
async def test_the_last_row_is_not_hidden_under_the_horizontal_scrollbar():
    # At 80 columns the row is wider than the pane: a horizontal scrollbar takes its last line.
    items = [view(i, day=DAY + timedelta(days=i)) for i in range(100)]
    app = QueueApp()
    async with app.run_test(size=(80, 30)) as pilot:
        table = app.query_one(QueueTable)
        table.update_items(items)
        await pilot.pause()
        assert table.show_horizontal_scrollbar
        await pilot.press("end")
        await pilot.pause()
        shown = table.scrollable_content_region.height  # the lines above the scrollbar
        row = table.cursor_row
        assert row is not None and row - table.scroll_offset.y + 1 < shown
        assert (DAY + timedelta(days=99)).isoformat() in table.render_line(shown - 1).text
