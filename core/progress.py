"""Throughput and ETA from observed attempt durations.

A per-date median per processor is robust to the odd hour-long outlier (a hung attempt that was
killed is not a success and never enters the sample). Phases run largely one after another (gates,
dependencies), so the ETA adds up each phase's remaining work divided by its concurrency.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Remaining:
    processor: str
    phase: str
    dates: int


def seconds_per_date(samples: Iterable[tuple[float, int]]) -> float | None:
    """Median seconds per date over (duration, dates) samples of successful attempts."""
    per_date = [duration / max(1, dates) for duration, dates in samples if duration is not None]
    return statistics.median(per_date) if per_date else None


def eta_seconds(
    remaining: Iterable[Remaining],
    per_date: Mapping[str, float | None],
    concurrency: Mapping[str, int],
) -> float | None:
    """None until at least one processor has a measured duration."""
    known = [v for v in per_date.values() if v is not None]
    if not known:
        return None
    fallback = statistics.median(known)
    work: dict[str, float] = {}
    for item in remaining:
        rate = per_date.get(item.processor) or fallback
        work[item.phase] = work.get(item.phase, 0.0) + rate * item.dates
    return sum(seconds / max(1, concurrency.get(phase, 1)) for phase, seconds in work.items())


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
