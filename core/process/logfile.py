"""The attempt's log file: reading its tail cheaply, and the `[backfill] ...` notes we add to it.

The log is the one record of an attempt that survives an engine crash, and it can be gigabytes,
so everything here reads from its end and never holds more than a bounded window in memory.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from core.printable import printable

TAIL_LINES = 20
TAIL_WINDOW = 64 * 1024  # a tail never reads more than this from the end of the log
TAIL_LINE_MAX = 1000  # chars kept of one line, so a runaway line cannot bloat the journal

_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")  # \r too: progress bars redraw a line with it


def read_tail(path: Path, lines: int = TAIL_LINES) -> tuple[str, ...]:
    """The last `lines` non-empty lines of a file, read from its end (at most TAIL_WINDOW bytes),
    so a multi-gigabyte log costs the same as a small one."""
    # Plain os calls: once per attempt, most often on an empty log, where a buffered file
    # object cost more than the reading.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ()
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        pos, data, found = end, b"", []
        while pos > 0 and end - pos < TAIL_WINDOW:
            step = min(8192, pos, TAIL_WINDOW - (end - pos))
            pos -= step
            data = os.pread(fd, step, pos) + data
            found = split_lines(data, partial_head=pos > 0)
            if len(found) >= lines:
                break
    except OSError:
        return ()
    finally:
        os.close(fd)
    return tuple(found[-lines:])


def read_recent(path: Path, window: int = TAIL_WINDOW) -> tuple[str, ...]:
    """Every non-empty line of the last `window` bytes of a file (blocking: run it in a worker
    thread). What a job's error looks like is searched here: an error printed early and followed
    by a traceback or a summary is still in it."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            start = max(0, end - window)
            f.seek(start)
            data = f.read(end - start)
    except OSError:
        return ()
    return tuple(split_lines(data, partial_head=start > 0))


def note(log_path: Path, text: str) -> None:
    """One line in the job's log, so an operator reading it sees why it stopped. Best effort:
    a full disk must not turn a kill into a crash of the engine."""
    with contextlib.suppress(OSError), open(log_path, "ab+") as log:
        size = log.seek(0, os.SEEK_END)
        lead = b""
        if size:
            log.seek(size - 1)
            lead = b"" if log.read(1) == b"\n" else b"\n"
        log.write(lead + f"[backfill] {text}\n".encode())


def split_lines(data: bytes, *, partial_head: bool) -> list[str]:
    parts = _LINE_BREAKS.split(data)
    if partial_head and len(parts) > 1:
        parts = parts[1:]  # starts mid-line (maybe mid-character): not a line of its own
    lines = []
    for part in parts:
        # Tails are quoted in reasons, journaled and printed: never a terminal escape.
        line = printable(part.decode("utf-8", errors="replace")).rstrip()
        if line:
            lines.append(line if len(line) <= TAIL_LINE_MAX else line[:TAIL_LINE_MAX] + "…")
    return lines


def human(seconds: float | None) -> str:
    """A duration as an operator writes it in the config (90 -> "90s", 120 -> "2m")."""
    if seconds is None:
        return "never"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
