"""LogTail follows real files on disk: tail from the end, follow/pause, truncation, floods."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual import events
from textual.app import App, ComposeResult

from tui.widgets import log_tail as log_tail_module
from tui.widgets.log_tail import MAX_LINE_CHARS, FileTailer, LogTail

SIZE = (120, 30)


class TailApp(App[None]):
    """Just a LogTail, focused, as the dashboard's log pane would be."""

    def __init__(self, max_lines: int = 2000) -> None:
        super().__init__()
        self.max_lines = max_lines

    def compose(self) -> ComposeResult:
        yield LogTail(max_lines=self.max_lines)

    def on_mount(self) -> None:
        self.query_one(LogTail).log_widget.focus()


async def until(pilot, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.02)


def lines_of(tail: LogTail) -> list[str]:
    return list(tail.log_widget.lines)


def visible_top(tail: LogTail) -> str:
    log = tail.log_widget
    return log.lines[log.scroll_offset.y]


def write(path: Path, lines: list[str], mode: str = "a") -> None:
    with path.open(mode) as handle:
        handle.write("".join(f"{line}\n" for line in lines))


# -- the widget -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_shows_the_last_lines_of_an_existing_file_then_appended_ones(tmp_path: Path):
    path = tmp_path / "attempt.log"
    write(path, [f"line {i}" for i in range(100)])
    app = TailApp()
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(path, title="box 2024-01-20 attempt 1")
        await until(pilot, lambda: lines_of(tail)[-1:] == ["line 99"])
        assert lines_of(tail) == [f"line {i}" for i in range(100)]
        assert "box 2024-01-20 attempt 1 · following" in tail.header_text
        assert tail.log_widget.is_vertical_scroll_end

        write(path, ["appended 1", "", "appended 2"])
        await until(pilot, lambda: lines_of(tail)[-1:] == ["appended 2"])
        assert lines_of(tail)[-3:] == ["appended 1", "", "appended 2"]
        assert tail.log_widget.is_vertical_scroll_end


@pytest.mark.asyncio
async def test_a_50_mb_file_is_tailed_from_its_end_without_reading_it(tmp_path, monkeypatch):
    path = tmp_path / "huge.log"
    block = "".join(f"{i:08d} some ordinary log output of a long job\n" for i in range(20_000))
    with path.open("w") as handle:
        while handle.tell() < 50 * 1024 * 1024:
            handle.write(block)
        handle.write("THE TRUE LAST LINE\n")
    size = path.stat().st_size

    read_sizes: list[int] = []
    real_open = open

    def spying_open(*args, **kwargs):
        handle = real_open(*args, **kwargs)
        real_read = handle.read

        def read(n=-1):
            data = real_read(n)
            read_sizes.append(len(data))
            return data

        handle.read = read
        return handle

    monkeypatch.setattr(log_tail_module, "open", spying_open, raising=False)
    app = TailApp()
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        started = time.monotonic()
        tail.follow(path)
        await until(pilot, lambda: lines_of(tail)[-1:] == ["THE TRUE LAST LINE"], timeout=5)
        assert time.monotonic() - started < 2.0
        assert 0 < tail.log_widget.line_count <= 2000
        assert sum(read_sizes) <= 64 * 1024
        # the first kept line is whole: the cut-off line at the 64 KiB mark is dropped
        assert lines_of(tail)[0].endswith("some ordinary log output of a long job")
        assert "50.0 MB" in tail.header_text or f"{size / 1024 / 1024:.1f} MB" in tail.header_text


@pytest.mark.asyncio
async def test_scrolling_up_pauses_following_and_g_resumes(tmp_path: Path):
    path = tmp_path / "attempt.log"
    write(path, [f"line {i}" for i in range(300)])
    app = TailApp(max_lines=400)
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(path)
        await until(pilot, lambda: lines_of(tail)[-1:] == ["line 299"])

        await pilot.press("pageup", "k")
        await until(pilot, lambda: not tail.following)
        assert "paused — G to follow" in tail.header_text
        scroll_y, top = tail.log_widget.scroll_y, visible_top(tail)

        # more than the Log has room for: the view must not move, nothing it shows may vanish
        write(path, [f"new {i}" for i in range(350)])
        await until(pilot, lambda: "350 new lines" in tail.header_text)
        assert not tail.following
        assert tail.log_widget.scroll_y == scroll_y and visible_top(tail) == top
        assert tail.log_widget.line_count <= 400

        await pilot.press("G")
        await until(pilot, lambda: tail.following)
        assert lines_of(tail)[-1] == "new 349"
        assert tail.log_widget.is_vertical_scroll_end
        assert tail.log_widget.line_count <= 400
        assert "following" in tail.header_text

        # Home pauses too, End resumes
        await pilot.press("home")
        await until(pilot, lambda: not tail.following)
        write(path, ["after home"])
        await until(pilot, lambda: "1 new lines" in tail.header_text)
        await pilot.press("end")
        await until(pilot, lambda: tail.following and lines_of(tail)[-1] == "after home")
        assert tail.log_widget.is_vertical_scroll_end

        # g goes to the top (and so pauses), G back to the end, as in every other pane
        await pilot.press("g")
        await until(pilot, lambda: not tail.following)
        assert tail.log_widget.scroll_y == 0
        await pilot.press("G")
        await until(pilot, lambda: tail.following and tail.log_widget.is_vertical_scroll_end)


@pytest.mark.asyncio
async def test_the_mouse_wheel_pauses_and_scrolling_back_to_the_bottom_resumes(tmp_path: Path):
    path = tmp_path / "attempt.log"
    write(path, [f"line {i}" for i in range(300)])
    app = TailApp()
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(path)
        await until(pilot, lambda: lines_of(tail)[-1:] == ["line 299"])
        log = tail.log_widget
        log.post_message(events.MouseScrollUp(log, 5, 5, 0, -1, 0, False, False, False))
        await until(pilot, lambda: not tail.following)
        log.post_message(events.MouseScrollDown(log, 5, 5, 0, 1, 0, False, False, False))
        await until(pilot, lambda: tail.following)
        assert log.is_vertical_scroll_end


@pytest.mark.asyncio
async def test_a_missing_file_is_waited_for_and_picked_up_when_created(tmp_path: Path):
    path = tmp_path / "not-yet.log"
    app = TailApp()
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(path)
        await until(pilot, lambda: "waiting for output…" in tail.header_text)
        await pilot.pause(0.3)  # at least one more poll of a missing file
        write(path, ["hello", "world"])
        await until(pilot, lambda: lines_of(tail) == ["hello", "world"])
        assert "following" in tail.header_text


@pytest.mark.asyncio
async def test_switching_files_resets_the_view(tmp_path: Path):
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    write(first, [f"a {i}" for i in range(50)])
    write(second, [f"b {i}" for i in range(5)])
    app = TailApp()
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(first, title="attempt 1")
        await until(pilot, lambda: lines_of(tail)[-1:] == ["a 49"])
        await pilot.press("pageup")
        await until(pilot, lambda: not tail.following)

        tail.follow(second, title="attempt 2")
        await until(pilot, lambda: lines_of(tail) == [f"b {i}" for i in range(5)])
        assert tail.following and tail.header_text.startswith("attempt 2 · following")

        # the same file again keeps the view (the app re-sends it on every highlight)
        tail.follow(second, title="attempt 2 (again)")
        await pilot.pause()
        assert lines_of(tail) == [f"b {i}" for i in range(5)]
        assert tail.header_text.startswith("attempt 2 (again)")

        tail.follow(None)
        await pilot.pause()
        assert tail.log_widget.line_count == 0
        assert tail.header_text == "no attempt selected"


@pytest.mark.asyncio
async def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path):
    path = tmp_path / "attempt.log"
    write(path, [f"old {i}" for i in range(20)])
    app = TailApp()
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(path)
        await until(pilot, lambda: lines_of(tail)[-1:] == ["old 19"])
        write(path, ["fresh 0", "fresh 1"], mode="w")
        await until(pilot, lambda: lines_of(tail)[-1:] == ["fresh 1"])
        assert lines_of(tail)[-3:][0].startswith("── the file was truncated or replaced")


@pytest.mark.asyncio
async def test_keeps_up_with_a_real_process_printing_20000_lines_a_second(tmp_path: Path):
    path = tmp_path / "flood.log"
    job = (
        "import sys, time\n"
        "out = open(sys.argv[1], 'w', buffering=1 << 16)\n"
        "start = time.monotonic(); n = 0\n"
        "while n < 40000:\n"
        "    target = min(40000, int((time.monotonic() - start) * 20000) + 200)\n"
        "    while n < target:\n"
        "        out.write(f'flood line {n} ' + 'x' * 40 + '\\n'); n += 1\n"
        "    out.flush(); time.sleep(0.005)\n"
        "out.write('DONE\\n'); out.close()\n"
    )
    app = TailApp()
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(path)
        process = subprocess.Popen([sys.executable, "-c", job, str(path)])
        try:
            counts = []
            while process.poll() is None:
                counts.append(tail.log_widget.line_count)
                await pilot.pause(0.05)
            assert process.returncode == 0
            await until(pilot, lambda: lines_of(tail)[-1:] == ["DONE"], timeout=5)
        finally:
            if process.poll() is None:
                process.kill()
        assert max(counts) <= 2000
        assert counts[-1] > 0  # lines were shown while the job ran, not only at the end
        assert tail.log_widget.line_count <= 2000
        assert tail.following and tail.log_widget.is_vertical_scroll_end
        assert lines_of(tail)[-2].startswith("flood line 39999 ")


# -- the reader -------------------------------------------------------------------------------


def test_reader_keeps_a_partial_line_and_treats_carriage_returns_as_line_ends(tmp_path: Path):
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo\r\nprogress 10%\rprogress 20%\rthr")
    tailer = FileTailer(path)
    assert tailer.read().lines == ["one", "two", "progress 10%", "progress 20%"]
    with path.open("ab") as handle:
        handle.write(b"ee\r")
    assert tailer.read().lines == ["three"]
    with path.open("ab") as handle:
        handle.write(b"\nfour\n")  # the \n pairs with the \r of the previous read
    assert tailer.read().lines == ["four"]


def test_reader_decodes_characters_split_across_reads_and_replaces_bad_bytes(tmp_path: Path):
    path = tmp_path / "a.log"
    data = "été ✓\n".encode()
    path.write_bytes(data[:2])  # half of "é"
    tailer = FileTailer(path)
    assert tailer.read().lines == []
    with path.open("ab") as handle:
        handle.write(data[2:] + b"bad \xff byte\n")
    assert tailer.read().lines == ["été ✓", "bad \ufffd byte"]


def test_reader_bounds_lines_and_skips_ahead_when_a_file_grows_too_fast(tmp_path: Path):
    path = tmp_path / "a.log"
    path.write_text("start\n")
    tailer = FileTailer(path, max_lines=10, max_read=4096)
    assert tailer.read().lines == ["start"]

    write(path, [f"l{i}" for i in range(100)])
    read = tailer.read()
    assert read.lines == [f"l{i}" for i in range(90, 100)] and read.dropped == 90

    write(path, [f"big {i:06d}" for i in range(10_000)])  # ~110 KB > max_read
    read = tailer.read()
    assert read.skipped > 0
    assert read.lines[-1] == "big 009999" and len(read.lines) == 10


def test_reader_cuts_endless_lines(tmp_path: Path):
    path = tmp_path / "a.log"
    path.write_text("")
    tailer = FileTailer(path)
    assert tailer.read().lines == []
    for _ in range(3):  # one line, arriving over several reads, never ending
        with path.open("a") as handle:
            handle.write("x" * MAX_LINE_CHARS)
        assert tailer.read().lines == []
    with path.open("a") as handle:
        handle.write("\nshort\n")
    line, short = tailer.read().lines
    assert short == "short"
    assert line.startswith("x" * MAX_LINE_CHARS) and line.endswith(
        f"[{MAX_LINE_CHARS * 2:,} more characters]"
    )


def test_reader_restarts_when_the_file_is_replaced(tmp_path: Path):
    path = tmp_path / "a.log"
    path.write_text("first file, a long line\n")
    tailer = FileTailer(path)
    assert tailer.read().lines == ["first file, a long line"]
    replacement = tmp_path / "b.log"
    replacement.write_text("second file, also a long line\n")
    replacement.replace(path)
    read = tailer.read()
    assert read.restarted and read.lines == ["second file, also a long line"]
    path.unlink()
    assert tailer.read().size is None
