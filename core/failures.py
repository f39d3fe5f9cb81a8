"""Failed cells grouped by what went wrong: an error signature is the last error line of an
attempt with what varies from one date to the next (dates, times, numbers, ids, quoted names)
taken out, so 300 dates that failed the same way are one group, not 300."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from core.printable import strip_controls

#: (pattern, replacement), applied in order
_TIMESTAMP = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
_UUID = r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
_VARYING = [
    (re.compile(_TIMESTAMP), "<date>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(\.\d+)?\b"), "<time>"),
    (re.compile(_UUID, re.I), "<id>"),
    (re.compile(r"\b(0x)?[0-9a-f]{12,}\b", re.I), "<id>"),
    (re.compile(r"(['\"`]).*?\1"), r"\1…\1"),
    (re.compile(r"\d+(\.\d+)?"), "N"),
]
#: words that mark a line as an error, when a tail has several lines
_ERRORISH = re.compile(
    r"error|exception|fail|denied|refused|exceeded|timeout|killed|not found", re.IGNORECASE
)
MAX_SIGNATURE = 160


def error_line(tail: Sequence[str], reason: str | None) -> str:
    """The line that says what went wrong: the last error-looking line of the tail, else its
    last line, else the engine's reason."""
    lines = [strip_controls(line).strip() for line in tail if line.strip()]
    for line in reversed(lines):
        if _ERRORISH.search(line):
            return line
    return lines[-1] if lines else (reason or "no output")


def signature(tail: Sequence[str], reason: str | None) -> str:
    text = error_line(tail, reason)
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())[:MAX_SIGNATURE]


@dataclass
class FailureGroup:
    signature: str
    #: (processor, date) of every failed cell with this signature
    cells: list[tuple[str, date]] = field(default_factory=list)
    first_seen: float | None = None
    last_seen: float | None = None
    #: one attempt's own words and log, to look at
    sample_line: str = ""
    sample_log: str | None = None

    @property
    def count(self) -> int:
        return len(self.cells)


@dataclass(frozen=True)
class Failure:
    processor: str
    dates: tuple[date, ...]
    tail: tuple[str, ...]
    reason: str | None
    at: float | None
    log_path: str | None


def group(failures: Iterable[Failure]) -> list[FailureGroup]:
    """Groups by signature, the largest first."""
    groups: dict[str, FailureGroup] = {}
    for f in failures:
        key = signature(f.tail, f.reason)
        g = groups.get(key)
        if g is None:
            g = groups[key] = FailureGroup(key, sample_line=error_line(f.tail, f.reason))
            g.sample_log = f.log_path
        g.cells.extend((f.processor, d) for d in f.dates)
        if f.at is not None:
            g.first_seen = f.at if g.first_seen is None else min(g.first_seen, f.at)
            g.last_seen = f.at if g.last_seen is None else max(g.last_seen, f.at)
    return sorted(groups.values(), key=lambda g: (-g.count, g.signature))
