"""Which dates are expected (game days from the schedule, or every day), seasons, bootstrap skips.

The seed's tools counted calendar days, so off-days kept every range below 100%; here a date is
expected only if the calendar query has rows for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from core.config import Config, Phase
from core.errors import UserError
from core.warehouse import Scan, ScanResult, Warehouse


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def expected_scan(config: Config) -> Scan | None:
    spec = config.calendar.expected_dates
    return Scan(spec.table, spec.date_column, spec.where, exact=True) if spec else None


@dataclass(frozen=True)
class ExpectedCalendar:
    start: date
    end: date
    #: expected date -> rows the calendar query found that day (games); 1 when every day counts.
    expected: dict[date, int]

    @property
    def days(self) -> list[date]:
        return days_between(self.start, self.end)

    @property
    def expected_dates(self) -> list[date]:
        return sorted(self.expected)

    def is_expected(self, day: date) -> bool:
        return day in self.expected


def build_calendar(
    config: Config, start: date, end: date, scanned: ScanResult | None
) -> ExpectedCalendar:
    """`scanned` is the result of `expected_scan(config)`, taken in the same refresh as coverage."""
    if scanned is None:
        return ExpectedCalendar(start, end, dict.fromkeys(days_between(start, end), 1))
    if not scanned.table_exists:
        table = config.calendar.expected_dates.table if config.calendar.expected_dates else "?"
        raise UserError(
            f"{config.path}: calendar.expected_dates.table: {table} does not exist in the "
            "warehouse, so no date can be expected"
        )
    counts = {d: n for d, n in scanned.counts.items() if start <= d <= end and n > 0}
    return ExpectedCalendar(start, end, counts)


def read_calendar(config: Config, warehouse: Warehouse, start: date, end: date) -> ExpectedCalendar:
    """The calendar alone (without the processors' tables): one read, none without a scan."""
    scan = expected_scan(config)
    scanned = warehouse.rows_per_date([scan], start, end)[scan] if scan else None
    return build_calendar(config, start, end, scanned)


def bootstrap_dates(config: Config, phase: Phase, dates: list[date]) -> set[date]:
    """Dates in the first `bootstrap_days` calendar days of their season (the seed's rule:
    0 <= (date - season start).days < N). Without seasons, the calendar start opens the only one."""
    if phase.bootstrap_days == 0:
        return set()
    starts = [s.start for s in config.calendar.seasons] or [config.calendar.start]
    skipped = set()
    for day in dates:
        opened = [s for s in starts if s <= day]
        if opened and (day - max(opened)).days < phase.bootstrap_days:
            skipped.add(day)
    return skipped
