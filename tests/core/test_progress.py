from __future__ import annotations

import pytest

from core.progress import Remaining, eta_seconds, format_duration, seconds_per_date


def test_per_date_rate_is_a_median_so_one_outlier_does_not_move_it():
    samples = [(10.0, 1), (12.0, 1), (11.0, 1), (3600.0, 1), (22.0, 2)]
    assert seconds_per_date(samples) == 11.0
    assert seconds_per_date([]) is None


def test_eta_divides_each_phase_by_its_concurrency_and_adds_phases():
    remaining = [Remaining("a", "p3", 10), Remaining("b", "p3", 10), Remaining("c", "p4", 4)]
    eta = eta_seconds(remaining, {"a": 6.0, "b": 3.0, "c": 30.0}, {"p3": 5, "p4": 1})
    assert eta == pytest.approx((60 + 30) / 5 + 120)


def test_eta_uses_known_rates_for_unmeasured_processors_and_none_without_any():
    remaining = [Remaining("a", "p", 2), Remaining("new", "p", 2)]
    assert eta_seconds(remaining, {"a": 5.0, "new": None}, {"p": 1}) == 20.0
    assert eta_seconds(remaining, {"a": None}, {"p": 1}) is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "--"), (42, "42s"), (125, "2m05s"), (7260, "2h01m")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
