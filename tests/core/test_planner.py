from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core.config import Config
from core.coverage import measure
from core.planner import Plan, make_plan, render_argv
from core.warehouse import open_warehouse
from tests.helpers import day


def plan_of(config: Config, **kwargs) -> Plan:
    coverage = measure(config, open_warehouse(config), day("2024-01-01"), day("2024-01-10"))
    return make_plan(coverage, python="/py", **kwargs)


def iso(dates) -> list[str]:
    return [d.isoformat() for d in dates]


def test_targets_are_missing_and_partial_dates_never_complete_or_skipped_ones(tiny: Config):
    plans = {p.processor.name: p for p in plan_of(tiny).processors}
    assert iso(plans["player"].targets) == [
        "2024-01-02",
        "2024-01-03",
        "2024-01-05",
        "2024-01-06",
        "2024-01-08",
        "2024-01-09",
    ]  # 01-08 is partial; 01-01 complete; 01-10 blocked
    assert iso(plans["zone"].skipped) == ["2024-01-01", "2024-01-02", "2024-01-06"]
    assert "2024-01-08" not in iso(plans["zone"].targets)  # complete


def test_sources_are_never_run(tiny: Config):
    assert {p.processor.name for p in plan_of(tiny).processors} == {"team", "player", "zone"}


def test_a_source_gap_blocks_the_date_and_everything_downstream_of_it(tiny: Config):
    plans = {p.processor.name: p for p in plan_of(tiny).processors}
    ten = day("2024-01-10")
    assert plans["team"].blocked[ten] == "source box"
    assert plans["player"].blocked[ten] == "team (blocked)"
    assert plans["zone"].blocked[ten] == "player (blocked)"


def test_an_upstream_outside_the_selection_blocks_instead_of_being_assumed(tiny: Config):
    plans = {p.processor.name: p for p in plan_of(tiny, processors=["player"]).processors}
    assert set(plans) == {"player"}
    assert plans["player"].blocked[day("2024-01-03")] == "team (not selected)"
    assert day("2024-01-02") in plans["player"].targets  # team is complete that day


def test_chunks_follow_runs_of_expected_dates_and_never_span_a_date_not_to_run(tiny: Config):
    team = [i for i in plan_of(tiny).items if i.processor == "team"]
    # targets 01-03, 01-05, 01-06 are consecutive game days (01-04 is an off-day); chunk_days 2
    assert [iso(i.dates) for i in team] == [["2024-01-03", "2024-01-05"], ["2024-01-06"]]
    assert team[0].argv == (
        "python3",
        "job.py",
        "team",
        "--start",
        "2024-01-03",
        "--end",
        "2024-01-05",
    )
    player = [i for i in plan_of(tiny).items if i.processor == "player"]
    assert all(len(i.dates) == 1 for i in player)  # chunk_days 1


def test_dates_placeholder_chunks_any_targets_together(tiny: Config):
    zone = [i for i in plan_of(tiny).items if i.processor == "zone"]
    assert [i.argv for i in zone] == [
        ("/py", "job.py", "zone", "--dates", "2024-01-03,2024-01-05,2024-01-09")
    ]


def test_item_order_never_runs_a_date_before_its_upstream(tiny: Config):
    plan = plan_of(tiny)
    done: set[tuple[str, date]] = set()
    for item in plan.items:
        proc = tiny.processor(item.processor)
        for d in item.dates:
            for dep in proc.depends_on:
                if not tiny.processor(dep).is_source and any(
                    dep == p.processor.name and d in p.targets for p in plan.processors
                ):
                    assert (dep, d) in done, f"{item.processor} {d} before {dep}"
        done |= {(item.processor, d) for d in item.dates}
    assert [s.processors for s in plan.steps] == [("team",), ("player",), ("zone",)]
    assert plan.steps[2].gates and plan.steps[1].upstream == ("team",)


def test_an_unreachable_gate_blocks_every_later_phase(tiny: Config):
    gated = tiny.model_copy(deep=True)
    object.__setattr__(gated.phases[1].gate, "min_coverage", 0.95)
    gated._path = tiny.path
    plan = plan_of(gated)
    zone = next(p for p in plan.processors if p.processor.name == "zone")
    assert not zone.targets
    assert all("gate" in why for why in zone.blocked.values())
    assert plan.gates[0].after == pytest.approx(7 / 8) and not plan.gates[0].reachable


def test_reprocess_all_targets_complete_dates_too(tiny: Config):
    plans = {p.processor.name: p for p in plan_of(tiny, reprocess="all").processors}
    assert day("2024-01-01") in plans["player"].targets


def test_phase_filter_keeps_earlier_gates_in_force(tiny: Config):
    plan = plan_of(tiny, phases=["pre"])
    assert {p.processor.name for p in plan.processors} == {"zone"}
    # analytics is not selected, so its gate (50%) stays at 12.5%: nothing in pre may run
    assert not plan.items
    assert all("Analytics gate" in why for why in plan.processors[0].blocked.values())
    assert plan.next_action().startswith("Nothing can run: 4 cells are blocked")


def test_render_argv_fills_every_placeholder():
    argv = render_argv(
        ["{python}", "-x", "--from={start}", "{end}", "{dates}", "--config", "{config}"],
        [date(2024, 1, 2), date(2024, 1, 3)],
        "/usr/bin/python3",
        Path("/srv/pipeline/backfill.yaml"),
    )
    assert argv == (
        "/usr/bin/python3",
        "-x",
        "--from=2024-01-02",
        "2024-01-03",
        "2024-01-02,2024-01-03",
        "--config",
        "/srv/pipeline/backfill.yaml",
    )


def test_next_action_repeats_the_selection(tiny: Config):
    plan = plan_of(tiny, processors=["team"], reprocess="all")
    assert plan.next_action().startswith(
        "Next: backfill run 2024-01-01 2024-01-10 --processor team --reprocess all --headless"
    )


def test_reprocess_failed_targets_only_the_journals_failed_cells_still_not_complete(tiny: Config):
    failed = {
        ("player", day("2024-01-02")),
        ("player", day("2024-01-01")),
        ("zone", day("2024-01-09")),
    }
    plans = {
        p.processor.name: p
        for p in plan_of(tiny, reprocess="failed", failed=frozenset(failed)).processors
    }
    # 01-01 failed once but is complete now; the other missing dates were never tried
    assert iso(plans["player"].targets) == ["2024-01-02"]
    assert plans["team"].targets == []
    # zone's failed date still waits on what is not on the list (player's date, the gate)
    assert plans["zone"].targets == [] and day("2024-01-09") in plans["zone"].blocked
    # "missing" ignores the list: every date not complete
    missing = {p.processor.name: p for p in plan_of(tiny, failed=frozenset(failed)).processors}
    assert len(missing["player"].targets) == 6
