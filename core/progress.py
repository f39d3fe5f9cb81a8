"""How far a run is and when it will end, as honestly as the evidence allows.

The model: each processor's seconds per date, from its latest successful attempts (the median for
the estimate, the 20th and 80th percentiles for the range; a median is robust to the odd
hour-long outlier): this run's own once there are a few, before that earlier runs' too, scaled by
how this run compares with them (`rates_for`). A phase's remaining time is its open work spread
over its concurrency, but never less than its longest open item. Phases run largely one after
another (gates, dependencies) where a gate holds the next phase back: across a gate their times
add up. Without a gate a later phase follows its upstream date by date, so phases overlap: such
a run of phases takes as long as its longest, plus one item of each phase that follows.

The rate counts only this engine's finishes in the last WINDOW, never items done before a
resume. (Calibrating the model by its own past estimates was tried, benchmarks/eta_accuracy.py:
its estimate moves as samples arrive, and the calibration then made it worse, not better.)

The forecast says what is true when no number is: "measuring" before any duration is known,
"paused" while paused, "stalled" while attempts run and nothing has finished for much longer
than they usually take.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: the sliding window of the rate and of the calibration
WINDOW = 15 * 60.0
#: nothing finished for this many times the usual attempt (and at least STALL_FLOOR seconds)
STALL_FACTOR = 3.0
#: (a demo's 1 s attempts stuck for 20 s read "ETA 3s" under a 60 s floor)
STALL_FLOOR = 15.0
#: a processor's own successful attempts in this run from which its history no longer counts
OWN_ENOUGH = 3


@dataclass(frozen=True)
class Finish:
    """An attempt that ended complete, for the rate and the calibration."""

    at: float  # time.monotonic()
    phase: str
    duration: float


@dataclass(frozen=True)
class Open:
    """A processor's open work: its pending and running items."""

    processor: str
    phase: str
    #: dates of its items not yet started
    pending_dates: int
    #: dates of its largest item (a pending item is not shared by slots: a phase lasts at least
    #: as long as it)
    largest_item: int
    #: (dates, seconds running) of each running item
    running: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class PerDate:
    """Seconds per date of a processor: the estimate and its range."""

    mid: float
    low: float
    high: float


@dataclass(frozen=True)
class PhaseEnd:
    """When a phase with open work will be done, in seconds from now: estimate and range."""

    phase: str
    mid: float
    low: float
    high: float


@dataclass(frozen=True)
class Forecast:
    #: measuring | running | paused | stalled | overdue | done
    status: str
    #: items finished per hour by this engine over the last WINDOW; None before the first
    rate_per_hour: float | None = None
    #: seconds to the end: the estimate and its range; None when no number is honest
    eta_seconds: float | None = None
    eta_low: float | None = None
    eta_high: float | None = None
    #: seconds since the last attempt finished, when stalled
    stalled_for: float | None = None
    #: each phase with open work, in run order, when status is "running"
    phases: tuple[PhaseEnd, ...] = ()


def per_date(samples: Iterable[tuple[float, int]]) -> PerDate | None:
    """From (duration, dates) of successful attempts; None without any."""
    values = sorted(duration / max(1, dates) for duration, dates in samples)
    if not values:
        return None
    mid = statistics.median(values)
    low, high = _quantile(values, 0.2), _quantile(values, 0.8)
    # Few samples say little about the spread: never claim better than +-10 %.
    return PerDate(mid, min(low, mid * 0.9), max(high, mid * 1.1))


def rates_for(
    history: Mapping[str, Sequence[tuple[float, int]]],
    own: Mapping[str, Sequence[tuple[float, int]]],
) -> dict[str, PerDate | None]:
    """Seconds per date per processor from (duration, dates) samples: those of earlier runs
    (`history`, from the journal) and this engine's own. A processor with OWN_ENOUGH samples of
    its own is judged by them alone: today's warehouse, not last week's. Until then its history
    counts too, scaled by how this run compares with history where both are known (a busier
    warehouse or a slower job slows every processor, not only those measured already)."""
    ratios = [
        mine.mid / past.mid
        for name, rows in own.items()
        if (mine := per_date(rows)) is not None
        and (past := per_date(history.get(name, ()))) is not None
        and past.mid > 0
    ]
    scale = statistics.median(ratios) if ratios else 1.0
    rates: dict[str, PerDate | None] = {}
    for name in dict.fromkeys([*history, *own]):
        mine_rows = list(own.get(name, ()))
        if len(mine_rows) >= OWN_ENOUGH:
            rates[name] = per_date(mine_rows)
        else:
            past_rows = [(duration * scale, dates) for duration, dates in history.get(name, ())]
            rates[name] = per_date(mine_rows + past_rows)
    return rates


def _quantile(values: Sequence[float], q: float) -> float:
    position = q * (len(values) - 1)
    below = int(position)
    above = min(below + 1, len(values) - 1)
    return values[below] + (values[above] - values[below]) * (position - below)


def forecast(
    *,
    paused: bool,
    open_work: Sequence[Open],
    rates: Mapping[str, PerDate | None],
    limits: Mapping[str, int],
    finishes: Sequence[Finish],
    started: float,
    gated: frozenset[str] = frozenset(),
    now: float | None = None,
) -> Forecast:
    """The forecast of a run from its open work and what it achieved since `started` (both
    monotonic, as `now`). `open_work` comes in phase order; `gated` names the phases whose gate
    holds the phases after them back."""
    now = time.monotonic() if now is None else now
    recent = [f for f in finishes if f.at >= now - WINDOW and f.at >= started]
    span = max(1.0, min(WINDOW, now - started))
    rate = len(recent) * 3600 / span if recent else None
    if not open_work:
        return Forecast("done", rate, 0.0, 0.0, 0.0)
    if paused:
        return Forecast("paused", rate)
    known = [r for r in rates.values() if r is not None]
    if not known:
        return Forecast("measuring", rate)
    # A processor not measured yet is assumed typical of those that are.
    fallback = PerDate(
        statistics.median(r.mid for r in known),
        statistics.median(r.low for r in known),
        statistics.median(r.high for r in known),
    )
    stalled = _stalled_for(open_work, rates, fallback, finishes, started, now)
    if stalled is not None:
        return Forecast("stalled", rate, stalled_for=stalled)
    low, mid, high = (
        _phase_ends(open_work, rates, fallback, limits, gated, pick)
        for pick in ("low", "mid", "high")
    )
    phases = tuple(PhaseEnd(phase, mid[phase], low[phase], high[phase]) for phase in mid)
    end = phases[-1]  # the run ends with its last phase: phases never end before earlier ones
    if end.mid <= 0:
        # Only running attempts are left and they already took longer than usual: "0s" would
        # be a promise nothing backs.
        return Forecast("overdue", rate)
    return Forecast("running", rate, end.mid, end.low, end.high, phases=phases)


def _phase_ends(
    open_work: Sequence[Open],
    rates: Mapping[str, PerDate | None],
    fallback: PerDate,
    limits: Mapping[str, int],
    gated: frozenset[str],
    pick: str,
) -> dict[str, float]:
    """Seconds from now until each phase with open work ends, in run order."""
    ends: dict[str, float] = {}
    total = segment = 0.0
    for phase in dict.fromkeys(o.phase for o in open_work):
        seconds, one_item = _phase_seconds(open_work, rates, fallback, limits, phase, pick)
        # overlapping the phases before it, it ends one of its items after the longest of them
        segment = max(segment + one_item, seconds) if segment else seconds
        ends[phase] = total + segment
        if phase in gated:
            total, segment = total + segment, 0.0
    return ends


def _phase_seconds(
    open_work: Iterable[Open],
    rates: Mapping[str, PerDate | None],
    fallback: PerDate,
    limits: Mapping[str, int],
    phase: str,
    pick: str,
) -> tuple[float, float]:
    """The phase's remaining seconds, and those of one of its items."""
    work = longest = one_item = 0.0
    for o in open_work:
        if o.phase != phase:
            continue
        seconds = getattr(rates.get(o.processor) or fallback, pick)
        work += o.pending_dates * seconds
        longest = max(longest, min(o.largest_item, o.pending_dates) * seconds)
        one_item = max(one_item, o.largest_item * seconds)
        for dates, running in o.running:
            left = max(0.0, dates * seconds - running)
            work += left
            longest = max(longest, left)
    return max(work / max(1, limits.get(phase, 1)), longest), one_item


def _stalled_for(
    open_work: Sequence[Open],
    rates: Mapping[str, PerDate | None],
    fallback: PerDate,
    finishes: Sequence[Finish],
    started: float,
    now: float,
) -> float | None:
    """Seconds since anything finished, when attempts run and that is far beyond their usual
    time; None otherwise."""
    usual = [
        dates * (rates.get(o.processor) or fallback).high
        for o in open_work
        for dates, _ in o.running
    ]
    if not usual:
        return None
    last = max(started, finishes[-1].at) if finishes else started
    quiet = now - last
    return quiet if quiet > max(STALL_FLOOR, STALL_FACTOR * max(usual)) else None


def describe(f: Forecast, *, wall_now: float | None = None) -> str:
    """The forecast in a few words: "ETA 3h10m-3h40m, ~04:10", "ETA paused", ..."""
    if f.status == "paused":
        return "paused: no ETA"
    if f.status == "measuring":
        return "ETA measuring"
    if f.status == "stalled":
        return f"stalled: nothing finished for {format_duration(f.stalled_for)}"
    if f.status == "overdue":
        return "ETA overdue: the last attempts run longer than usual"
    if f.status == "done":
        return "nothing left to run"  # "ETA 0s" read as if something were still to come
    if f.eta_seconds is None:
        return "ETA --"
    return f"ETA {_span(f.eta_seconds, f.eta_low, f.eta_high, wall_now)}"


def describe_phase(f: Forecast, phase: str, *, wall_now: float | None = None) -> str | None:
    """When `phase` will be done ("ends in 1h10m-1h30m, ~14:20"); None when the forecast has no
    number for it (no open work, or no honest number for the run)."""
    end = next((p for p in f.phases if p.phase == phase), None)
    if end is None or end.mid <= 0:  # only attempts past their usual time left: no promise
        return None
    return f"ends in {_span(end.mid, end.low, end.high, wall_now)}"


def _span(mid: float, low: float | None, high: float | None, wall_now: float | None) -> str:
    """ "3h10m-3h40m, ~04:10": the range and the clock time of the estimate."""
    low_text, high_text = format_duration(low), format_duration(high)
    when = time.localtime((time.time() if wall_now is None else wall_now) + mid)
    span = low_text if low_text == high_text else f"{low_text}-{high_text}"
    return f"{span}, ~{time.strftime('%H:%M', when)}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
