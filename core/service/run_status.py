"""The live or unfinished run of a state_dir, for `backfill status`: from its engine when one
answers, else from the journal (then with no pid: nothing is dispatching it)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.engine.api import HEADER_ONLY, EngineSnapshot, ItemState, PauseView, Who
from core.progress import describe
from core.service.client import NoEngine, RemoteEngine
from core.state import Journal

#: the engine's states in the words of `status --json` (DESIGN.md)
RUN_STATE = {
    "measuring": "running",
    "running": "running",
    "paused": "paused",
    "stopping": "stopping",
    "finished": "finished",
    "failed": "stopped",
    "idle": "running",
}


@dataclass(frozen=True)
class RunStatus:
    id: int
    state: str
    pid: int | None
    host: str | None
    since: float | None
    viewers: int
    items: dict[str, int]
    rate_per_hour: float | None
    eta_seconds: float | None
    #: the forecast in words ("ETA 3h10m-3h40m, ~04:10", "paused: no ETA", ...)
    eta: str
    last_event: str | None
    #: what holds the live engine's dispatch up (a full disk), or None
    problem: str | None = None
    #: throttling in force in the live engine: cooldowns and daily-quota pauses
    pauses: tuple[PauseView, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "pid": self.pid,
            "host": self.host,
            "items": self.items,
            "rate_per_hour": self.rate_per_hour,
            "eta_seconds": self.eta_seconds,
            "eta": self.eta,
            "last_event": self.last_event,
            "problem": self.problem,
            "pauses": [
                {
                    "state": p.label,
                    "phase": p.phase,
                    "processors": list(p.processors),
                    "tier": p.tier,
                    "until": p.until,
                    "reason": p.reason,
                }
                for p in self.pauses
            ],
        }

    def render(self) -> str:
        if self.pid is None:
            owner = "no engine (it died or was stopped): `backfill run START END --detach` resumes"
        else:
            since = time.strftime("%H:%M", time.localtime(self.since)) if self.since else "?"
            watchers = f", {self.viewers} dashboards attached" if self.viewers else ""
            owner = f"engine pid {self.pid} on {self.host} since {since}{watchers}"
        n = self.items
        rate = f"{self.rate_per_hour:.0f}/h" if self.rate_per_hour else "--/h"
        lines = [
            f"Run #{self.id} · {self.state} · {owner}",
            f"  {n['done']}/{n['total']} done · {n['running']} running · {n['pending']} queued · "
            f"{n['failed']} failed · {n['blocked']} blocked · {rate} · {self.eta}",
        ]
        if self.last_event:
            lines.append(f"  last: {self.last_event}")
        if self.problem:
            lines.append(f"  held up: {self.problem}")
        for pause in self.pauses:
            until = time.strftime("%H:%M:%S", time.localtime(pause.until))
            lines.append(
                f"  {pause.label}: {pause.phase} ({', '.join(pause.processors)}) until {until}"
                f" · {pause.reason}"
            )
        return "\n".join(lines)


def _items(counts: Counter[ItemState] | dict[ItemState, int]) -> dict[str, int]:
    return {
        "total": sum(counts.values()),
        "done": counts.get(ItemState.DONE, 0),
        "running": counts.get(ItemState.RUNNING, 0),
        "pending": counts.get(ItemState.PENDING, 0),
        "failed": counts.get(ItemState.FAILED, 0),
        "blocked": counts.get(ItemState.BLOCKED, 0),
    }


async def run_status(state_dir: Path) -> RunStatus | None:
    """The live run, or the latest unfinished one, or None."""
    journal = Journal.open_if_exists(state_dir)
    try:
        try:
            engine = await RemoteEngine.connect(state_dir, Who.me("cli"))
        except NoEngine:
            return _from_journal(journal) if journal else None
        try:
            snap: EngineSnapshot = await engine.snapshot(HEADER_ONLY)
        finally:
            await engine.aclose()
        if snap.run_id is None:
            return None
        info = engine.info
        return RunStatus(
            id=snap.run_id,
            state=RUN_STATE[snap.state],
            pid=info.pid,
            host=info.host,
            since=info.since,
            viewers=info.viewers,
            items=_items(dict(snap.counts)),
            rate_per_hour=snap.forecast.rate_per_hour,
            eta_seconds=snap.forecast.eta_seconds,
            eta=describe(snap.forecast),
            last_event=_last_event(journal, snap.run_id) if journal else None,
            problem=snap.error if snap.state != "failed" else None,
            pauses=snap.pauses,
        )
    finally:
        if journal is not None:
            journal.close()


def _from_journal(journal: Journal) -> RunStatus | None:
    run = journal.unfinished_run()
    if run is None:
        return None
    counts = Counter(ItemState(row.state) for row in journal.items(run.id))
    return RunStatus(
        id=run.id,
        state="stopped",
        pid=None,
        host=None,
        since=None,
        viewers=0,
        items=_items(counts),
        rate_per_hour=None,
        eta_seconds=None,
        eta="no engine: no ETA",
        last_event=_last_event(journal, run.id),
    )


def _last_event(journal: Journal, run_id: int) -> str | None:
    event = journal.latest_event(run_id)
    if event is None:
        return None
    at, kind, detail = event
    shown = ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, ""))
    return f"{time.strftime('%H:%M:%S', time.localtime(at))} {kind}" + (
        f" ({shown})" if shown else ""
    )
