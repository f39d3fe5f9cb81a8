"""The forecast: a range from observed durations, calibrated by what the run achieved, and the
truth in words where no number is honest."""

from __future__ import annotations

import json
from datetime import date

import pytest

from core.engine.api import EngineSnapshot, RunRequest
from core.progress import (
    STALL_FLOOR,
    WINDOW,
    Finish,
    Forecast,
    Open,
    PerDate,
    describe,
    describe_phase,
    forecast,
    format_duration,
    per_date,
    rates_for,
)
from core.service.protocol import snapshot_from_json, snapshot_to_json

T0 = 1000.0


def test_per_date_is_a_median_so_one_outlier_does_not_move_it_and_the_range_holds_it():
    rate = per_date([(10.0, 1), (12.0, 1), (11.0, 1), (3600.0, 1), (22.0, 2)])
    assert rate is not None and rate.mid == 11.0
    assert rate.low <= 10.5 and rate.high > 12.0
    assert per_date([]) is None


def test_one_sample_still_gives_a_range():
    rate = per_date([(10.0, 1)])
    assert rate == PerDate(10.0, 9.0, 11.0)


def _run(
    open_work, rates, limits, finishes=(), *, now=T0 + 100, paused=False, gated=frozenset()
) -> Forecast:
    return forecast(
        paused=paused,
        open_work=open_work,
        rates=rates,
        limits=limits,
        finishes=list(finishes),
        started=T0,
        gated=gated,
        now=now,
    )


def test_each_phase_is_spread_over_its_concurrency_and_phases_add_up_across_a_gate():
    work = [Open("a", "p3", 10, 1), Open("b", "p3", 10, 1), Open("c", "p4", 4, 1)]
    rates = {"a": PerDate(6, 5, 7), "b": PerDate(3, 2, 4), "c": PerDate(30, 20, 40)}
    f = _run(work, rates, {"p3": 5, "p4": 1}, gated=frozenset({"p3"}))
    assert f.status == "running"
    assert f.eta_seconds == pytest.approx((60 + 30) / 5 + 120)
    assert f.eta_low == pytest.approx((50 + 20) / 5 + 80)
    assert f.eta_high == pytest.approx((70 + 40) / 5 + 160)
    # Each phase's own end: p3 when its work is done, p4 (the run's last) with the run.
    p3, p4 = f.phases
    assert (p3.phase, p3.mid, p3.low, p3.high) == ("p3", 90 / 5, 70 / 5, 110 / 5)
    assert (p4.phase, p4.mid) == ("p4", f.eta_seconds)
    assert describe_phase(f, "p3", wall_now=0.0).startswith("ends in 14s-22s, ~")
    assert describe_phase(f, "p5") is None  # no open work there


def test_a_phase_lasts_at_least_its_longest_item_and_running_ones_count_what_is_left():
    work = [Open("a", "p", 0, 7, running=((7, 20.0),))]  # 7 dates at 10 s, running for 20 s
    f = _run(work, {"a": PerDate(10, 10, 10)}, {"p": 8})
    assert f.eta_seconds == pytest.approx(50.0)  # not 50/8: one item cannot be shared


def test_phases_without_a_gate_overlap_and_the_later_ends_one_item_after_the_longest():
    work = [Open("a", "load", 40, 1), Open("m", "model", 40, 1)]
    rates = {"a": PerDate(1, 1, 1), "m": PerDate(2, 2, 2)}
    f = _run(work, rates, {"load": 4, "model": 2})
    assert f.eta_seconds == pytest.approx(max(40 * 1 / 4, 40 * 2 / 2))  # model is the longest
    g = _run([Open("a", "load", 40, 1), Open("m", "model", 4, 1)], rates, {"load": 4, "model": 2})
    assert g.eta_seconds == pytest.approx(40 / 4 + 2)  # load is: model follows its last date
    assert [(p.phase, p.mid) for p in g.phases] == [("load", 10.0), ("model", 12.0)]


def test_the_rate_counts_this_window_only():
    old = [Finish(T0 - 50, "p", 1.0)] * 100  # before this engine started (a resume)
    recent = [Finish(T0 + 50 + i, "p", 1.0) for i in range(10)]
    f = _run([Open("a", "p", 5, 1)], {"a": PerDate(1, 1, 1)}, {"p": 1}, old + recent)
    assert f.rate_per_hour == pytest.approx(10 * 3600 / 100)
    later = T0 + WINDOW + 55  # the window has left the first five behind
    late = _run([Open("a", "p", 5, 1)], {"a": PerDate(1, 1, 1)}, {"p": 1}, recent, now=later)
    assert late.rate_per_hour == pytest.approx(5 * 3600 / WINDOW)


def test_measuring_paused_stalled_and_done_are_said_not_guessed():
    work = [Open("a", "p", 5, 1, running=((1, 5.0),))]
    assert _run(work, {"a": None}, {"p": 1}).status == "measuring"
    assert _run(work, {"a": PerDate(1, 1, 1)}, {"p": 1}, paused=True).status == "paused"
    assert _run([], {"a": PerDate(1, 1, 1)}, {"p": 1}).status == "done"
    # 1 s attempts, but nothing has finished for longer than the stall floor
    stalled = _run(work, {"a": PerDate(1, 1, 1)}, {"p": 1}, now=T0 + STALL_FLOOR + 5)
    assert stalled.status == "stalled" and stalled.eta_seconds is None and not stalled.phases
    assert stalled.stalled_for == pytest.approx(STALL_FLOOR + 5)
    assert describe(stalled) == f"stalled: nothing finished for {STALL_FLOOR + 5:.0f}s"
    assert describe(Forecast("measuring")) == "ETA measuring"
    assert describe(Forecast("paused")) == "paused: no ETA"
    assert describe(Forecast("done", 4141.0, 0.0, 0.0, 0.0)) == "nothing left to run"


def test_describe_gives_the_range_and_the_clock_time():
    f = Forecast("running", 10.0, 3 * 3600 + 20 * 60, 3 * 3600 + 10 * 60, 3 * 3600 + 40 * 60)
    text = describe(f, wall_now=0.0)
    assert text.startswith("ETA 3h10m-3h40m, ~")


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "--"), (42, "42s"), (125, "2m05s"), (7260, "2h01m")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_this_runs_own_durations_outweigh_earlier_runs_and_rescale_the_unmeasured():
    # Earlier runs: 0.2 s per date for both processors. This run is 15x slower (a busier
    # warehouse): the first 3 s/date attempts must move the ETA, not wait for 50 new samples.
    history = {"a": [(1.4, 7)] * 50, "b": [(1.4, 7)] * 50}
    one = rates_for(history, {"a": [(21.0, 7)]})
    a, b = one["a"], one["b"]
    assert a is not None and b is not None
    # One sample of its own: a's history still counts, scaled by this run's 15x.
    assert a.mid == pytest.approx(3.0)
    # b has not run yet: its history, scaled the same way.
    assert b.mid == pytest.approx(3.0)
    # Enough of its own: a is judged by them alone, whatever its history says.
    many = rates_for(history, {"a": [(21.0, 7), (28.0, 7), (35.0, 7)]})
    assert many["a"] == per_date([(21.0, 7), (28.0, 7), (35.0, 7)])
    # No history at all: own samples only; nothing at all: not measured.
    assert rates_for({}, {"c": [(10.0, 2)]})["c"] == per_date([(10.0, 2)])
    assert rates_for({"d": []}, {})["d"] is None


def test_running_attempts_past_their_estimate_are_overdue_never_eta_0s():
    # One 1 s/date attempt of a date, running for 10 s, nothing pending: no number is honest.
    work = [Open("a", "p", 0, 1, running=((1, 10.0),))]
    rates, finishes = {"a": PerDate(1, 0.9, 1.1)}, [Finish(T0 + 90, "p", 1.0)]
    late = _run(work, rates, {"p": 1}, finishes, now=T0 + 100)
    assert late.status == "overdue" and late.eta_seconds is None
    assert describe(late) == "ETA overdue: the last attempts run longer than usual"
    assert "0s" not in describe(late)
    # A 1 s attempt stuck for 20 s is a stall (it was "ETA 3s" under a 60 s floor).
    assert _run(work, rates, {"p": 1}, finishes, now=T0 + 110).status == "stalled"
    # An earlier phase with only such an attempt left, a later one still to run: the run has an
    # ETA, that phase's end none ("ends in 0s" would promise what nothing backs).
    both = _run(
        [*work, Open("b", "q", 5, 1)],
        {**rates, "b": rates["a"]},
        {"p": 1, "q": 1},
        finishes,
        now=T0 + 100,
    )
    assert both.status == "running" and describe_phase(both, "p") is None
    assert describe_phase(both, "q", wall_now=0.0).startswith("ends in ")


def test_each_phases_end_travels_the_protocol_to_attached_clients():
    work = [Open("a", "p3", 10, 1), Open("c", "p4", 4, 1)]
    f = _run(work, {"a": PerDate(6, 5, 7), "c": PerDate(30, 20, 40)}, {"p3": 5, "p4": 1})
    snap = EngineSnapshot(
        1, "running", 1, RunRequest(date(2024, 1, 1), date(2024, 1, 4)), {}, {}, f
    )
    back = snapshot_from_json(json.loads(json.dumps(snapshot_to_json(snap))))
    assert back.forecast == f and [p.phase for p in back.forecast.phases] == ["p3", "p4"]
    # An older engine sends no phases, a newer one fields this client does not know.
    data = snapshot_to_json(snap)
    del data["forecast"]["phases"]
    data["forecast"]["confidence"] = 0.9
    older = snapshot_from_json(data).forecast
    assert older.phases == () and older.eta_seconds == f.eta_seconds
