"""From coverage to work: which cells to fill, which cannot be, and the exact commands in a safe
order. Planning runs nothing.

Order: phases in file order; inside a phase, processors by dependency level (a processor comes
after the same-phase processors it depends on); dates oldest first. Following the items in that
order never runs a date before its upstream for that date.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from core.config import Config, Phase, Processor
from core.config.model import PLACEHOLDER
from core.coverage import CellState, Coverage, counts_complete
from core.dateranges import runs

#: what a plan targets: "missing" every cell not complete (missing, partial, failed); "failed"
#: only cells whose latest attempt failed (the journal's record), still not complete; "all"
#: every expected cell, complete ones too
Reprocess = Literal["missing", "failed", "all"]
REPROCESS_CHOICES: tuple[Reprocess, ...] = ("missing", "failed", "all")
#: known empty counts as done: never planned as missing, never blocks a downstream cell
DONE = (CellState.COMPLETE, CellState.SKIPPED, CellState.KNOWN_EMPTY)


def fill(command: Sequence[str], values: Mapping[str, str]) -> tuple[str, ...]:
    """The argv with its `{placeholder}`s replaced (the config checks allow only known ones)."""
    return tuple(
        PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) if "{" in arg else arg for arg in command
    )


def render_argv(
    command: Sequence[str], dates: Sequence[date], python: str, config: Path
) -> tuple[str, ...]:
    """`{python}`: the interpreter running backfill; `{config}`: this backfill.yaml, so a job can
    read the same warehouse settings."""
    return fill(
        command,
        {
            "start": dates[0].isoformat(),
            "end": dates[-1].isoformat(),
            "dates": ",".join(d.isoformat() for d in dates),
            "python": python,
            "config": str(config.absolute()),  # no filesystem calls: this runs per attempt
        },
    )


@dataclass(frozen=True)
class WorkItem:
    processor: str
    phase: str
    step: int
    dates: tuple[date, ...]
    argv: tuple[str, ...]
    env: Mapping[str, str]


@dataclass
class ProcessorPlan:
    processor: Processor
    phase: Phase
    complete: list[date] = field(default_factory=list)
    partial: list[date] = field(default_factory=list)
    missing: list[date] = field(default_factory=list)
    skipped: list[date] = field(default_factory=list)
    #: dates that will run
    targets: list[date] = field(default_factory=list)
    #: the same, for membership tests (planning a decade must not scan lists per date)
    target_set: set[date] = field(default_factory=set)
    #: dates that should run but cannot: date -> why (upstream names or a gate)
    blocked: dict[date, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    number: int
    phase: Phase
    processors: tuple[str, ...]
    #: processors of earlier steps that must be complete for a date before it runs here
    upstream: tuple[str, ...]
    #: gates of earlier phases that must hold first
    gates: tuple[str, ...]

    @property
    def parallel(self) -> bool:
        return len(self.processors) > 1 and self.phase.max_parallel > 1


@dataclass(frozen=True)
class GateOutlook:
    phase: Phase
    min_coverage: float
    now: float | None
    #: coverage once every runnable cell of the plan is filled
    after: float | None

    @property
    def holds_now(self) -> bool:
        return self.now is None or self.now >= self.min_coverage

    @property
    def reachable(self) -> bool:
        return self.after is None or self.after >= self.min_coverage


@dataclass
class Plan:
    config: Config
    start: date
    end: date
    reprocess: Reprocess
    processors: list[ProcessorPlan]
    items: list[WorkItem]
    steps: list[Step]
    gates: list[GateOutlook]
    expected_dates: list[date]
    phase_filter: tuple[str, ...] = ()
    processor_filter: tuple[str, ...] = ()

    @property
    def blocked_cells(self) -> int:
        return sum(len(p.blocked) for p in self.processors)

    @property
    def target_cells(self) -> int:
        return sum(len(p.targets) for p in self.processors)

    def next_action(self) -> str:
        if self.items:
            flags = "".join(f" --phase {n}" for n in self.phase_filter)
            flags += "".join(f" --processor {n}" for n in self.processor_filter)
            flags += "" if self.reprocess == "missing" else f" --reprocess {self.reprocess}"
            blocked = f"; {self.blocked_cells} cells stay blocked" if self.blocked_cells else ""
            return (
                f"Next: backfill run {self.start} {self.end}{flags} --headless "
                f"({len(self.items)} commands fill {self.target_cells} processor-dates{blocked})"
            )
        if self.blocked_cells:
            return (
                f"Nothing can run: {self.blocked_cells} cells are blocked (see 'blocked by'); "
                "fill those gaps first."
            )
        return "Nothing to do: every targeted cell is complete or skipped."

    def to_json(self) -> dict[str, Any]:
        def days(values: Sequence[date]) -> list[str]:
            return [d.isoformat() for d in values]

        return {
            "name": self.config.name,
            "range": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "reprocess": self.reprocess,
            "expected_dates": len(self.expected_dates),
            "cwd": str(self.config.root),
            "processors": [
                {
                    "name": p.processor.name,
                    "phase": p.phase.name,
                    "complete": days(p.complete),
                    "partial": days(p.partial),
                    "missing": days(p.missing),
                    "skipped": days(p.skipped),
                    "to_run": days(p.targets),
                    "blocked": [{"date": d.isoformat(), "by": why} for d, why in p.blocked.items()],
                }
                for p in self.processors
            ],
            "gates": [
                {
                    "phase": g.phase.name,
                    "min_coverage": g.min_coverage,
                    "now": g.now,
                    "after": g.after,
                    "holds_now": g.holds_now,
                    "reachable": g.reachable,
                }
                for g in self.gates
            ],
            "steps": [
                {
                    "step": s.number,
                    "phase": s.phase.name,
                    "processors": list(s.processors),
                    "parallel": s.parallel,
                    "max_parallel": s.phase.max_parallel,
                    "after": list(s.upstream),
                    "after_gates": list(s.gates),
                }
                for s in self.steps
            ],
            "items": [
                {
                    "processor": i.processor,
                    "phase": i.phase,
                    "step": i.step,
                    "dates": days(i.dates),
                    "argv": list(i.argv),
                    "env": dict(i.env),
                }
                for i in self.items
            ],
            "next_action": self.next_action(),
        }


def select_processors(
    config: Config, phases: Sequence[str] = (), processors: Sequence[str] = ()
) -> list[Processor]:
    """Runnable processors chosen by --phase / --processor (names already validated)."""
    chosen = [
        p
        for p in config.processors
        if not p.is_source
        and (not phases or config.phase_of(p.name).name in phases)
        and (not processors or p.name in processors)
    ]
    return chosen


def make_plan(
    coverage: Coverage,
    *,
    phases: Sequence[str] = (),
    processors: Sequence[str] = (),
    reprocess: Reprocess = "missing",
    failed: Collection[tuple[str, date]] = frozenset(),
    python: str = sys.executable,
) -> Plan:
    """`failed`: cells whose latest attempt failed (`Journal.failed_cells`), which "failed"
    targets."""
    config = coverage.config
    expected = coverage.calendar.expected_dates
    selected = {p.name for p in select_processors(config, phases, processors)}
    plans: dict[str, ProcessorPlan] = {}
    # Config order is already dependency-safe across phases; within a phase resolve levels.
    levels = _levels(config)
    ordered = sorted(
        (p for p in config.processors if p.name in selected),
        key=lambda p: (_phase_index(config, p.name), levels[p.name]),
    )
    gates: list[GateOutlook] = []
    gate_block: str | None = None
    for phase in config.phases:
        for proc in [p for p in ordered if config.phase_of(p.name) is phase]:
            plan = ProcessorPlan(proc, phase)
            for day in expected:
                state = coverage.cell(proc, day).state
                _bucket(plan, day, state)
                wanted = state is not CellState.SKIPPED and (
                    reprocess == "all"
                    or (
                        not counts_complete(state)
                        and (reprocess == "missing" or (proc.name, day) in failed)
                    )
                )
                if not wanted:
                    continue
                why = gate_block or _upstream_gap(coverage, plans, proc, day)
                if why:
                    plan.blocked[day] = why
                else:
                    plan.targets.append(day)
                    plan.target_set.add(day)
            plans[proc.name] = plan
        if phase.gate:
            outlook = _gate_outlook(coverage, plans, phase, expected)
            gates.append(outlook)
            if not outlook.reachable and gate_block is None:
                gate_block = (
                    f"{phase.label} gate: needs {phase.gate.min_coverage:.0%} complete, "
                    f"this plan can reach {outlook.after:.1%}"
                )
    steps, step_of = _steps(config, plans, levels, gates)
    items = [
        WorkItem(
            processor=plan.processor.name,
            phase=plan.phase.name,
            step=step_of[plan.processor.name],
            dates=tuple(chunk),
            argv=render_argv(plan.processor.command or (), chunk, python, config.path),
            env=plan.processor.env,
        )
        for plan in sorted(plans.values(), key=lambda p: step_of.get(p.processor.name, 0))
        for chunk in chunk_dates(plan.processor, plan.phase, coverage, plan.targets)
    ]
    return Plan(
        config,
        coverage.calendar.start,
        coverage.calendar.end,
        reprocess,
        list(plans.values()),
        items,
        steps,
        gates,
        expected,
        tuple(phases),
        tuple(processors),
    )


def _bucket(plan: ProcessorPlan, day: date, state: CellState) -> None:
    {
        CellState.COMPLETE: plan.complete,
        CellState.KNOWN_EMPTY: plan.complete,
        CellState.PARTIAL: plan.partial,
        CellState.SKIPPED: plan.skipped,
    }.get(state, plan.missing).append(day)


def unmet_upstreams(coverage: Coverage, proc: Processor, day: date) -> Iterator[Processor]:
    """The upstreams of `proc` not complete (or skipped) on `day`: the one readiness rule the
    planner (will the plan fill them?) and the engine (is work on them still open?) share."""
    config = coverage.config
    for dep in proc.depends_on:
        upstream = config.processor(dep)
        if coverage.cell(upstream, day).state not in DONE:
            yield upstream


def _upstream_gap(
    coverage: Coverage, plans: Mapping[str, ProcessorPlan], proc: Processor, day: date
) -> str | None:
    """Upstreams that are not complete that date and that this plan will not fill."""
    gaps = []
    for upstream in unmet_upstreams(coverage, proc, day):
        plan = plans.get(upstream.name)
        if plan is not None and day in plan.target_set:
            continue
        if upstream.is_source:
            gaps.append(f"source {upstream.name}")
        elif plan is None:
            gaps.append(f"{upstream.name} (not selected)")
        else:
            gaps.append(f"{upstream.name} (blocked)")
    return ", ".join(gaps) if gaps else None


def _gate_outlook(
    coverage: Coverage, plans: Mapping[str, ProcessorPlan], phase: Phase, expected: list[date]
) -> GateOutlook:
    assert phase.gate is not None
    skipped = coverage.skipped[phase.name]
    due = [d for d in expected if d not in skipped]
    complete_now = complete_after = 0
    for day in due:
        done = [counts_complete(coverage.cell(p, day).state) for p in phase.processors]
        fillable = [
            ok or (p.name in plans and day in plans[p.name].target_set)
            for p, ok in zip(phase.processors, done, strict=True)
        ]
        complete_now += all(done)
        complete_after += all(fillable)
    return GateOutlook(
        phase,
        phase.gate.min_coverage,
        complete_now / len(due) if due else None,
        complete_after / len(due) if due else None,
    )


def _phase_index(config: Config, name: str) -> int:
    return config.phases.index(config.phase_of(name))


def _levels(config: Config) -> dict[str, int]:
    """0 for a processor with no same-phase dependency, else 1 + the deepest one."""
    levels: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in levels:
            phase = config.phase_of(name)
            same = [d for d in config.processor(name).depends_on if config.phase_of(d) is phase]
            levels[name] = 1 + max(map(level, same)) if same else 0
        return levels[name]

    for proc in config.processors:
        level(proc.name)
    return levels


def _steps(
    config: Config,
    plans: Mapping[str, ProcessorPlan],
    levels: Mapping[str, int],
    gates: list[GateOutlook],
) -> tuple[list[Step], dict[str, int]]:
    with_work = [p for p in plans.values() if p.targets]
    keys = sorted(
        {(_phase_index(config, p.processor.name), levels[p.processor.name]) for p in with_work}
    )
    number = {key: i + 1 for i, key in enumerate(keys)}
    step_of = {
        p.processor.name: number[(_phase_index(config, p.processor.name), levels[p.processor.name])]
        for p in with_work
    }
    gated_phases_with_work = {
        g.phase.name: g
        for g in gates
        if not g.holds_now and any(config.phase_of(p.processor.name) is g.phase for p in with_work)
    }
    steps = []
    for key in keys:
        phase = config.phases[key[0]]
        names = tuple(n for n in step_of if step_of[n] == number[key])
        deps = {d for n in names for d in config.processor(n).depends_on if d in step_of}
        gate_names = [
            f"{g.phase.label} gate ({g.min_coverage:.0%} of the range complete)"
            for ph in config.phases[: key[0]]
            if (g := gated_phases_with_work.get(ph.name))
        ]
        upstream = tuple(d for d in plans if d in deps)
        steps.append(Step(number[key], phase, names, upstream, tuple(gate_names)))
    return steps, step_of


def chunk_dates(
    processor: Processor, phase: Phase, coverage: Coverage, dates: Sequence[date]
) -> list[list[date]]:
    """Commands of up to `chunk_days` of these dates. With {start}/{end} a chunk must not span a
    date that should not run, so chunks follow runs of consecutive expected dates; with {dates}
    any dates may share one."""
    size = processor.chunk_days
    if any("{dates}" in arg for arg in processor.command or ()):
        groups = [list(dates)]
    else:
        skipped = coverage.skipped[phase.name]
        sequence = [d for d in coverage.calendar.expected_dates if d not in skipped]
        groups = runs(dates, sequence)
    return [group[i : i + size] for group in groups for i in range(0, len(group), size)]
