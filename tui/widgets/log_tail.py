"""Follow one attempt's log file, like `tail -F`, without letting the job's output hurt the UI.

Attempt logs can reach gigabytes and jobs can print tens of thousands of lines a second, so:
- only the last `initial_bytes` of a file are read when it is first shown, then only new bytes;
- every read happens in a thread worker (a slow or network disk never stalls the event loop), at
  most one at a time per file, started by a 0.25 s timer: the Log gets at most ~4 writes a second
  whatever the job's rate, and a poll that brings more than `max_lines` keeps only the last ones;
- a poll reads at most `max_read` bytes; a file that grew more than that since the last poll is
  skipped ahead (and says so), so one poll's memory and time stay bounded;
- the Log is a ring buffer of `max_lines` lines of at most `MAX_LINE_CHARS` characters each;
- a job's terminal control sequences never reach the terminal: Textual's Log only replaces
  U+0000-U+0014 (ESC and the C1 controls pass), so every line is cleaned first
  (`core.printable.printable`: colour codes dropped, other escapes and controls marked).

Follow mode is on by default. Scrolling up (wheel, k/up, PageUp, Home, the scrollbar) pauses it.
While paused nothing the operator reads moves or disappears: new lines fill the Log's free room,
then wait in a buffer bounded like the Log (the header counts them). G or End (or scrolling back
down to the bottom) resumes following: the waiting lines are written and the view jumps to the end.
"""

from __future__ import annotations

import codecs
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Log, Static
from textual.worker import Worker, WorkerState

from core.printable import printable, strip_controls

MAX_LINES = 2000
POLL_SECONDS = 0.25
INITIAL_BYTES = 64 * 1024
MAX_READ_BYTES = 2 * 1024 * 1024
#: Longer lines are cut (with a note of how much): a job printing one endless line must not
#: grow the partial-line buffer, or a Log line, without bound.
MAX_LINE_CHARS = 4096

#: What `str.splitlines` treats as line ends; the Log splits on the same set, so a line we hand
#: it never becomes two.
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover (the loop always returns)


def _clip(line: str, extra: int = 0) -> str:
    """Cut a line to MAX_LINE_CHARS; `extra` counts characters already dropped from it."""
    if len(line) <= MAX_LINE_CHARS and not extra:
        return line
    extra += max(0, len(line) - MAX_LINE_CHARS)
    return f"{line[:MAX_LINE_CHARS]} … [{extra:,} more characters]"


@dataclass
class TailRead:
    """One poll's worth of a file, ready for the UI thread."""

    #: complete new lines (the last `max_lines` of them), without their line ends
    lines: list[str] = field(default_factory=list)
    #: the file's size, or None when it does not exist (yet)
    size: int | None = None
    #: complete lines read but not kept because one poll brought more than `max_lines`
    dropped: int = 0
    #: bytes jumped over because the file grew faster than one poll may read
    skipped: int = 0
    #: the file shrank or was replaced: reading restarted from its start
    restarted: bool = False
    #: an OS error other than "not found" (permissions, ...), shown in the header
    error: str | None = None
    #: the first read of this file (from its last `initial_bytes`): nothing was skipped that
    #: the operator had been shown
    initial: bool = False


class FileTailer:
    """Incremental reader of one file from its end (Textual-free; one thread at a time).

    Keeps the byte offset read so far, the file's identity (a new inode means the file was
    replaced), an incremental UTF-8 decoder (a character split across two reads decodes once) and
    the last line until its line end arrives. `\\r`, `\\r\\n` and `\\n` all end a line.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_lines: int = MAX_LINES,
        initial_bytes: int = INITIAL_BYTES,
        max_read: int = MAX_READ_BYTES,
    ) -> None:
        self.path = path
        self.max_lines = max_lines
        self.initial_bytes = initial_bytes
        self.max_read = max_read
        self.offset: int | None = None  # None until the file has been seen
        self._identity: tuple[int, int] | None = None
        self._reset_text()

    def _reset_text(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._overflow = 0  # characters cut from the partial line
        self._after_cr = False  # the last chunk ended with \r: a leading \n is its pair
        self._resync = False  # reading started mid-line: drop up to the first line end

    def read(self) -> TailRead:
        """Read what was appended since the last call (blocking: call it from a thread)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return TailRead(size=None)
        except OSError as error:
            return TailRead(error=error.strerror or str(error))
        identity = (stat.st_dev, stat.st_ino)
        size = stat.st_size
        restarted = False
        offset = self.offset
        initial = offset is None
        if offset is None:
            start = max(0, size - self.initial_bytes)
            self._resync = start > 0
        elif identity != self._identity or size < offset:
            start, restarted = 0, True
            self._reset_text()
        else:
            start = offset
        self._identity = identity
        if size == start:
            self.offset = start
            return TailRead(size=size, restarted=restarted, initial=initial)
        skipped = 0
        if size - start > self.max_read:
            skipped = size - start - self.max_read
            start += skipped
            self._reset_text()
            self._resync = True
        try:
            with open(self.path, "rb") as handle:
                handle.seek(start)
                data = handle.read(self.max_read)
        except FileNotFoundError:
            return TailRead(size=None)
        except OSError as error:
            return TailRead(error=error.strerror or str(error))
        self.offset = start + len(data)
        lines = self._split(self._decoder.decode(data))
        dropped = max(0, len(lines) - self.max_lines)
        if dropped:
            lines = lines[dropped:]
        return TailRead(
            lines=lines,
            size=max(size, self.offset),
            dropped=dropped,
            skipped=skipped,
            restarted=restarted,
            initial=initial,
        )

    def _split(self, text: str) -> list[str]:
        """Complete lines from the partial line plus `text`; keeps the new partial line."""
        if not text:
            return []
        if self._after_cr and text[0] == "\n":
            text = text[1:]
        self._after_cr = text.endswith("\r")
        pieces = (self._partial + text).splitlines(keepends=True)
        tail = ""
        if pieces and pieces[-1][-1] not in _BREAKS:
            tail = pieces.pop()
        lines = [p[:-2] if p.endswith("\r\n") else p[:-1] for p in pieces]
        if lines and self._resync:
            # The first "line" is the end of one whose start we never read.
            lines.pop(0)
            self._resync = False
            self._overflow = 0
        if lines:
            lines[0] = _clip(lines[0], self._overflow)
            self._overflow = 0
            lines[1:] = [_clip(line) for line in lines[1:]]
            lines = [printable(line) for line in lines]
        if len(tail) > MAX_LINE_CHARS:
            self._overflow += len(tail) - MAX_LINE_CHARS
            tail = tail[:MAX_LINE_CHARS]
        self._partial = tail
        return lines


class _TailLog(Log):
    """The Log inside a LogTail: vi keys, and End asks to follow instead of a one-off scroll."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("end", "follow", "Follow", show=False),
        # g/G top/bottom, as everywhere else: the top pauses following, as Home does
        Binding("g", "scroll_home", "Top", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("j", "scroll_down", "Down", show=False),
    ]

    class FollowRequested(Message):
        """End was pressed: the LogTail turns following on (and jumps to the bottom)."""

    def action_follow(self) -> None:
        self.post_message(self.FollowRequested())


class LogTail(Widget):
    """A one-line header (what, following/paused, size) over a bounded Log tailing one file."""

    DEFAULT_CSS = """
    LogTail { height: 1fr; layout: vertical; }
    LogTail > .log-tail--header {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $foreground;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    LogTail.-paused > .log-tail--header { background: $warning 30%; }
    LogTail.-waiting > .log-tail--header { color: $text-muted; }
    LogTail.-error > .log-tail--header { background: $error 30%; }
    LogTail > Log { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("G", "follow", "Follow", id="log_tail.follow", tooltip="Follow the end of the log"),
    ]

    following: reactive[bool] = reactive(True, init=False)
    """Keep the newest line in view. Off while the operator reads further up."""

    def __init__(
        self,
        *,
        max_lines: int = MAX_LINES,
        poll_seconds: float = POLL_SECONDS,
        initial_bytes: int = INITIAL_BYTES,
        max_read: int = MAX_READ_BYTES,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.max_lines = max_lines
        self.poll_seconds = poll_seconds
        self.initial_bytes = initial_bytes
        self.max_read = max_read
        self.path: Path | None = None
        self.title = ""
        self._tailer: FileTailer | None = None
        self._reading: dict[Worker[TailRead], FileTailer] = {}
        self._file_size: int | None = None
        self._state = "none"  # none | waiting | open | error
        self._error = ""
        self._unseen = 0  # lines that arrived while paused
        #: lines that arrived while paused and did not fit in the Log (bounded like it)
        self._pending: deque[str] = deque(maxlen=max_lines)
        self._pending_dropped = 0
        self._programmatic_scroll = False
        self._timer: Timer | None = None
        self._header_text = ""
        self._header = Static("", classes="log-tail--header", markup=False)
        self._log = _TailLog(max_lines=max_lines, auto_scroll=False)

    def compose(self) -> ComposeResult:
        yield self._header
        yield self._log

    def on_mount(self) -> None:
        self.watch(self._log, "scroll_y", self._log_scrolled, init=False)
        self._timer = self.set_interval(self.poll_seconds, self._poll, name="log-tail poll")
        self._render_header()

    # -- public API -------------------------------------------------------------------------

    @property
    def log_widget(self) -> Log:
        """The Log showing the lines (for tests and for focus)."""
        return self._log

    def follow(self, path: Path | None, title: str = "") -> None:
        """Tail `path` (None: nothing selected). Another file resets the view and turns following
        back on; the same file again only updates the title."""
        if path is not None and path == self.path and self._tailer is not None:
            if title != self.title:
                self.title = title
                self._render_header()
            return
        self.path, self.title = path, title
        self._tailer = (
            FileTailer(
                path,
                max_lines=self.max_lines,
                initial_bytes=self.initial_bytes,
                max_read=self.max_read,
            )
            if path is not None
            else None
        )
        self._file_size = None
        self._state = "none" if path is None else "waiting"
        self._unseen = 0
        self._pending.clear()
        self._pending_dropped = 0
        with self._scrolling():
            self._log.clear()
            self._log.scroll_home(animate=False, immediate=True)
        self.following = True
        self._render_header()
        self._poll()

    def action_follow(self) -> None:
        """Turn following on and jump to the newest line."""
        self.following = True
        self._scroll_to_end()

    # -- polling ----------------------------------------------------------------------------

    def _poll(self) -> None:
        """Start a read of the current file unless one is already under way."""
        tailer = self._tailer
        if tailer is None or tailer in self._reading.values():
            return
        worker = self.run_worker(
            tailer.read,
            name="log-tail read",
            group="log-tail",
            description=f"tail {tailer.path}",
            thread=True,
            exit_on_error=False,
        )
        self._reading[worker] = tailer

    @on(Worker.StateChanged)
    def _read_finished(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker not in self._reading or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        event.stop()
        tailer = self._reading.pop(worker)
        if tailer is not self._tailer:
            return  # a read of a file we no longer show
        if event.state is WorkerState.SUCCESS and worker.result is not None:
            self._show(worker.result)
        elif event.state is WorkerState.ERROR:
            self._state, self._error = "error", str(worker.error)
            self._render_header()

    def _show(self, read: TailRead) -> None:
        """Apply one poll's read: at most one Log write per poll."""
        if read.error is not None:
            self._state, self._error = "error", read.error
        elif read.size is None:
            self._state = "waiting"
        else:
            self._state = "open"
        self._file_size = read.size
        lines = read.lines
        notes = []
        if read.restarted:
            notes.append("── the file was truncated or replaced: reading it from its start ──")
        if read.skipped and not read.initial:
            notes.append(
                f"── skipped {human_size(read.skipped)}: the file grew faster than it is shown ──"
            )
        elif read.dropped and not read.initial:
            notes.append(f"── {read.dropped:,} lines not shown: too many arrived at once ──")
        if notes:
            # Trim so the notes survive the ring buffer, on top of the lines they explain.
            lines = notes + lines[max(0, len(lines) + len(notes) - self.max_lines) :]
        if lines:
            self._write(lines)
        self._render_header()

    def _write(self, lines: list[str]) -> None:
        log = self._log
        # `Log.write_lines` splits with `str.splitlines`, which turns "" into no line at all;
        # "\n" is exactly one empty line.
        lines = [line or "\n" for line in lines]
        if self.following:
            log.write_lines(lines, scroll_end=False)
            self._scroll_to_end()
            return
        # Paused: what the operator reads must not move or vanish, so the Log never prunes now.
        # It takes new lines while it has room; the rest wait (bounded) until following resumes.
        self._unseen += len(lines)
        room = 0 if self._pending else max(0, self.max_lines - len(log.lines))
        if room:
            log.write_lines(lines[:room], scroll_end=False)
            lines = lines[room:]
        overflow = len(self._pending) + len(lines) - self.max_lines
        self._pending_dropped += max(0, overflow)
        self._pending.extend(lines)

    def _flush_pending(self) -> None:
        """On resume: the lines held back while paused, then the view jumps to the end."""
        if not self._pending:
            return
        lines = list(self._pending)
        if self._pending_dropped:
            lines = [
                f"── {self._pending_dropped:,} lines not shown: they arrived while paused ──",
                *lines[1:],
            ]
        self._pending.clear()
        self._pending_dropped = 0
        self._log.write_lines([line or "\n" for line in lines], scroll_end=False)

    # -- follow / pause ---------------------------------------------------------------------

    @contextmanager
    def _scrolling(self) -> Iterator[None]:
        """Scrolls made inside are ours, not the operator's: they never pause following."""
        self._programmatic_scroll = True
        try:
            yield
        finally:
            self._programmatic_scroll = False

    def _scroll_to_end(self) -> None:
        with self._scrolling():
            self._log.scroll_end(animate=False, immediate=True, x_axis=False)

    def _log_scrolled(self, old: float, new: float) -> None:
        """Scrolling up pauses following; coming back down to the bottom resumes it."""
        if self._programmatic_scroll:
            return
        at_end = self._log.is_vertical_scroll_end
        if self.following and new < old and not at_end:
            self.following = False
        elif not self.following and new > old and at_end:
            self.following = True

    def watch_following(self, following: bool) -> None:
        if following:
            self._unseen = 0
            self._flush_pending()
            self._scroll_to_end()
        self._render_header()

    @on(_TailLog.FollowRequested)
    def _follow_requested(self, event: _TailLog.FollowRequested) -> None:
        event.stop()
        self.action_follow()

    def on_resize(self) -> None:
        # A shorter pane moves the bottom line out of view; following keeps it in.
        if self.following:
            self.call_after_refresh(self._scroll_to_end)

    # -- header -----------------------------------------------------------------------------

    def _render_header(self) -> None:
        if self.path is None:
            text = "no attempt selected"
        else:
            parts = [self.title or str(self.path)]
            if self._state == "error":
                parts.append(f"error: {self._error}")
            elif self._state == "waiting":
                parts.append("waiting for output…")
            elif self.following:
                parts.append("following")
            else:
                unseen = f" · {self._unseen:,} new lines" if self._unseen else ""
                parts.append(f"paused — G to follow{unseen}")
            if self._file_size is not None:
                parts.append(human_size(self._file_size))
            # The title names a processor, the error comes from the OS: one line, no controls.
            text = strip_controls(" · ".join(parts))
        self.set_class(self.path is not None and not self.following, "-paused")
        self.set_class(self._state == "waiting", "-waiting")
        self.set_class(self._state == "error", "-error")
        if text != self._header_text:  # polls of an idle file repaint nothing
            self._header_text = text
            # One fixed line (height: 1): a new size must repaint it, not lay out the screen
            # (four full relayouts a second while a job floods its log).
            self._header.update(Content(text), layout=False)

    @property
    def header_text(self) -> str:
        """The header as plain text (what the operator reads above the log)."""
        return self._header_text
