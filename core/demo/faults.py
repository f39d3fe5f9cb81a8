"""Deterministic injected faults of the demo job program: the seed system's failure modes.

Each fault fires on the first attempt at its (processor, date) only, so a supervisor's retry
succeeds. "Already fired" is a marker file under `<warehouse>/.demo-faults/`, created with
O_EXCL so two concurrent attempts cannot both fire it. Re-seeding the warehouse removes the
markers. Set BACKFILL_DEMO_FAULTS=0 to switch every fault off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

QUOTA = "quota"  # exit 1 before writing: the BigQuery partition-modification quota
PARTIAL = "partial"  # write 2 team rows of 2 x games and report success
HANG = "hang"  # print a line, then no output until killed


@dataclass(frozen=True)
class Fault:
    processor: str
    date: str
    kind: str


FAULTS: tuple[Fault, ...] = (
    Fault("upcoming_player_game_context", "2024-01-16", QUOTA),
    Fault("team_offense_game_summary", "2024-01-20", PARTIAL),
    Fault("player_daily_cache", "2024-01-24", HANG),
)

QUOTA_MESSAGE = (
    "google.api_core.exceptions.Forbidden: 403 Quota exceeded: Your table exceeded quota for "
    "Number of partition modifications"
)
MARKER_DIR = ".demo-faults"
ENABLE_VARIABLE = "BACKFILL_DEMO_FAULTS"


def enabled() -> bool:
    return os.environ.get(ENABLE_VARIABLE, "1").strip() != "0"


def fault_for(processor: str, day: str) -> Fault | None:
    return next((f for f in FAULTS if f.processor == processor and f.date == day), None)


def marker_path(warehouse: Path, fault: Fault) -> Path:
    return warehouse / MARKER_DIR / f"{fault.processor}@{fault.date}"


def claim(warehouse: Path, processor: str, day: str) -> Fault | None:
    """The fault to inject now, or None; claiming it records that it has fired."""
    fault = fault_for(processor, day)
    if fault is None or not enabled():
        return None
    marker = marker_path(warehouse, fault)
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    os.close(fd)
    return fault
