"""Date lists compressed into ranges, the way an operator reads and types them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date


def runs(dates: Iterable[date], sequence: Sequence[date]) -> list[list[date]]:
    """Group `dates` into runs that are consecutive in `sequence` (e.g. the expected game days,
    so an off-day between two missing dates does not split them)."""
    position = {d: i for i, d in enumerate(sequence)}
    out: list[list[date]] = []
    for day in sorted(dates):
        if out and position.get(day, -2) == position.get(out[-1][-1], -9) + 1:
            out[-1].append(day)
        else:
            out.append([day])
    return out


def describe(dates: Iterable[date], sequence: Sequence[date], *, limit: int = 4) -> str:
    """'2024-01-15..2024-01-21 (6), 2024-01-24' with at most `limit` runs, then '+N more'."""
    parts = []
    groups = runs(dates, sequence)
    for run in groups[:limit]:
        if len(run) == 1:
            parts.append(run[0].isoformat())
        else:
            parts.append(f"{run[0]}..{run[-1]} ({len(run)})")
    rest = sum(len(run) for run in groups[limit:])
    if rest:
        parts.append(f"+{rest} more")
    return ", ".join(parts)
