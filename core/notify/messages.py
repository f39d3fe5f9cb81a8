"""What a message says: engine events become notices (event names and severities of DESIGN.md),
and a notice becomes the webhook's JSON body."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from core.config.model import Severity
from core.engine.api import EngineEvent
from core.failures import signature

SEVERITY_RANK: dict[Severity, int] = {"info": 0, "warn": 1, "critical": 2}
#: how many of the cells left a run_finished message names (the body carries the count)
CELLS_SHOWN = 20


@dataclass(frozen=True)
class Notice:
    event: str
    message: str
    run_id: int | None
    severity: Severity = "info"
    #: with `event`, what makes two notices the same (merged within a channel's window)
    signature: str = ""
    #: more fields of the body (run_finished: complete, cells_left, ...)
    extra: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    #: identical notices this one stands for
    count: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return self.event, self.signature

    def merged(self, more: int) -> Notice:
        return replace(self, count=self.count + more)

    def body(self, dropped: int = 0) -> dict[str, Any]:
        message = self.message
        if self.count > 1:
            message += f" ({self.count} identical events merged)"
        body: dict[str, Any] = {
            "event": self.event,
            "run_id": self.run_id,
            "message": message,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds"),
            "severity": self.severity,
            "count": self.count,
            **self.extra,
        }
        if dropped:
            body["dropped"] = dropped  # messages lost to a full queue before this one
        return body


def from_engine(event: EngineEvent, run_id: int | None) -> list[Notice]:
    """The notices an engine event makes (none for most: item_done is not news)."""
    item = event.item
    kind, text = event.kind, event.message
    where: dict[str, Any] = {}
    if item is not None:
        where = {
            "processor": item.processor,
            "phase": item.phase,
            "dates": [d.isoformat() for d in item.dates],
            "item_id": item.id,
        }
    notices: list[Notice] = []
    if kind == "run_started":
        notices.append(Notice("run_started", text, run_id))
    elif kind == "run_resumed":
        notices.append(Notice("engine_resumed", text, run_id, "warn"))
    elif kind in ("quota_paused", "quota_resumed"):
        severity: Severity = "warn" if kind == "quota_paused" else "info"
        phase = item.phase if item else ""
        notices.append(Notice(kind, text, run_id, severity, phase, where))
    if kind in ("item_retry", "item_failed") and item is not None:
        # An attempt that hung or ran too long is news even when a retry follows.
        # The engine's words for them (core/engine/retry.py: `killed: stall`, `killed: timeout`).
        for marker, name in (("killed: stall", "stalled"), ("killed: timeout", "timed_out")):
            if marker in text:
                notices.append(Notice(name, text, run_id, "warn", item.processor, where))
    if kind == "item_failed" and item is not None:
        # The signature leaves the dates and numbers out: 50 dates failing the same way merge.
        sig = f"{item.processor}: {signature((), item.reason or text)}"
        notices.append(Notice("cell_failed", text, run_id, "warn", sig, where))
    return notices


class FailureAlarm:
    """More than `failures` failed attempts within `window` seconds raises one alarm; it clears
    (one recovery message) once the window holds half as many or fewer. The halfway mark keeps
    a rate hovering at the threshold from flapping between the two."""

    def __init__(self, failures: int = 10, window: float = 600.0) -> None:
        self.failures = failures
        self.window = window
        self._times: deque[float] = deque()
        self.on = False

    def _count(self, now: float) -> int:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times)

    def failed(self, run_id: int | None, now: float | None = None) -> Notice | None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        count = self._count(now)
        if self.on or count <= self.failures:
            return None
        self.on = True
        return Notice(
            "failure_alarm",
            f"Run #{run_id}: {count} attempts failed in the last {self.window / 60:g} min",
            run_id,
            "critical",
            extra={"failures": count, "window_s": self.window},
        )

    def tick(self, run_id: int | None, now: float | None = None) -> Notice | None:
        now = time.monotonic() if now is None else now
        count = self._count(now)
        if not self.on or count > self.failures // 2:
            return None
        self.on = False
        return Notice(
            "failure_recovered",
            f"Run #{run_id}: failures back down to {count} in the last {self.window / 60:g} min",
            run_id,
            "info",
            extra={"failures": count, "window_s": self.window},
        )


class Milestones:
    """25, 50 and 75 % of the run's items done, each told once; a resumed run past some of them
    tells only the highest it has passed."""

    MARKS = (25, 50, 75)

    def __init__(self) -> None:
        self._told = 0

    def __call__(self, run_id: int | None, done: int, total: int) -> Notice | None:
        if not total:
            return None
        passed = [m for m in self.MARKS if done * 100 >= m * total and m > self._told]
        if not passed:
            return None
        self._told = mark = passed[-1]
        return Notice(
            "milestone",
            f"Run #{run_id}: {mark}% of its items done ({done}/{total})",
            run_id,
            signature=str(mark),
            extra={"percent": mark, "done": done, "total": total},
        )


def digest(
    run_id: int | None, done: int, total: int, rate: float | None, eta: float | None
) -> Notice:
    pace = f"{rate:.0f} items/h" if rate else "no rate yet"
    left = f"ETA {eta / 3600:.1f} h" if eta is not None else "no ETA yet"
    return Notice(
        "digest",
        f"Run #{run_id}: {done}/{total} items done, {pace}, {left}",
        run_id,
        extra={"done": done, "total": total, "rate_per_hour": rate, "eta_seconds": eta},
    )


def run_finished(
    run_id: int | None, complete: bool, cells_left: list[tuple[str, date]], why: str = ""
) -> Notice:
    if complete:
        text = f"Run #{run_id} complete: every targeted cell is complete or skipped."
    else:
        shown = ", ".join(f"{name} {day}" for name, day in cells_left[:CELLS_SHOWN])
        more = f" (+{len(cells_left) - CELLS_SHOWN} more)" if len(cells_left) > CELLS_SHOWN else ""
        text = f"Run #{run_id} ended with {len(cells_left)} cells not complete"
        text += f": {why}" if why else ""
        text += f": {shown}{more}" if shown else ""
    return Notice(
        "run_finished",
        text,
        run_id,
        "info" if complete else "critical",
        extra={
            "complete": complete,
            "cells_left": len(cells_left),
            "cells": [[name, day.isoformat()] for name, day in cells_left[:CELLS_SHOWN]],
        },
    )


def test_notice(channel: str) -> Notice:
    return Notice(
        "test",
        f"backfill test message to channel {channel}: if you read this, it works.",
        None,
        "critical",  # whatever a channel's min_severity, a test asked for is sent
    )
