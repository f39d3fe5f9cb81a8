"""Parsers for the scalar forms backfill.yaml and the command line share: dates and durations."""

from __future__ import annotations

import re
from datetime import date

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_date(value: object) -> date:
    """A date, or ISO text ``YYYY-MM-DD`` (YAML already turns unquoted dates into dates)."""
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")


def parse_duration(value: object) -> float:
    """Seconds from ``90s``, ``10m``, ``6h``, ``1d`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 10m or 6h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"expected a duration like 90s, 10m or 6h, got {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds
