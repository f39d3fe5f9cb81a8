"""Plain-text reports for the headless CLI: compact, fixed width (at most 100 columns)."""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Sequence
from datetime import date

from core.dateranges import describe
from core.planner import Plan, ProcessorPlan, Step
from core.preflight import CheckResult, exit_code
from core.status import Counts, StatusReport, season_counts

NAME_WIDTH = 34


def _pct(value: float | None) -> str:
    return "     -" if value is None else f"{value * 100:5.1f}%"


def _row(name: str, cells: Sequence[str], width: int = 7) -> str:
    return f"{name[:NAME_WIDTH]:<{NAME_WIDTH}}" + "".join(f"{c:>{width}}" for c in cells)


def render_status(report: StatusReport) -> str:
    cov = report.coverage
    config = cov.config
    days = len(cov.calendar.days)
    kind = "game days" if config.calendar.expected_dates else "every day"
    lines = [
        f"{config.name} · {config.warehouse.label}",
        f"{report.start} → {report.end} · {report.expected_dates} expected dates of {days} "
        f"({kind}) · measured {cov.measured_at:%H:%M:%S}",
        "",
        _row("", ["COVER", "DONE", "PART", "MISS", "FAIL", "SKIP", "BLOCK"]),
    ]
    absent = []
    for phase in report.phases:
        lines.append(_row(phase.title, _count_cells(phase.counts, blocked=False)))
        for p in phase.processors:
            mark = "" if p.table_exists else " *"
            if not p.table_exists:
                absent.append(p.processor.table)
            label = f"  {p.processor.name}{mark}"
            lines.append(_row(label, _count_cells(p.counts, blocked=True)))
    lines.append("")
    lines.append(
        "COVER = complete share of expected dates not skipped; a phase counts a date complete "
        "only\nwhen all its processors are. BLOCK = missing or partial with an upstream gap."
    )
    empty = [
        f"{p.processor.name} {p.counts.known_empty}"
        for phase in report.phases
        for p in phase.processors
        if p.counts.known_empty
    ]
    if empty:
        lines.append(f"Known empty (counted complete): {', '.join(empty)}")
    if absent:
        lines.append(f"* table does not exist yet: {', '.join(absent)}")
    if report.season_names:
        lines += ["", _row("BY SEASON", report.season_names, width=9)]
        for name, counts in season_counts(report):
            lines.append(_row(name, [_pct(c.coverage) for c in counts], width=9))
    return "\n".join(lines)


def _count_cells(counts: Counts, *, blocked: bool) -> list[str]:
    cells = [
        _pct(counts.coverage),
        str(counts.complete),
        str(counts.partial),
        str(counts.missing),
        str(counts.failed),
        str(counts.skipped),
    ]
    return [*cells, str(counts.blocked) if blocked else ""]


def shell_line(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """The command as an operator would paste it into a shell: every word quoted, so a name or a
    value such as `A;touch X` or `$(rm -rf ~)` is passed as text and runs nothing."""
    prefix = [f"{shlex.quote(k)}={shlex.quote(v)}" for k, v in (env or {}).items()]
    return " ".join([*prefix, *(shlex.quote(a) for a in argv)])


def render_plan(plan: Plan) -> str:
    config = plan.config
    expected = plan.expected_dates
    lines = [
        f"{config.name} · plan for {plan.start} → {plan.end}",
        f"{len(expected)} expected dates · reprocess {plan.reprocess} · runs nothing",
        "",
        _row("", ["DONE", "PART", "MISS", "SKIP", "RUN", "BLOCK"]),
    ]
    for phase in config.phases:
        plans = [p for p in plan.processors if p.phase is phase]
        if not plans:
            continue
        caps = sorted({c for p in plans if (c := config.max_writers(p.processor)) is not None})
        # a cap below max_parallel is why fewer dates of a processor run at once than expected
        writers = f" · at most {'/'.join(map(str, caps))} writing a table at once" if caps else ""
        lines.append(phase.label + writers)
        for p in plans:
            lines.append(
                _row(
                    f"  {p.processor.name}",
                    [str(len(x)) for x in (p.complete, p.partial, p.missing, p.skipped)]
                    + [str(len(p.targets)), str(len(p.blocked))],
                )
            )
            lines += _gaps(p, expected)
    for gate in plan.gates:
        state = "holds" if gate.holds_now else "will be met" if gate.reachable else "CANNOT be met"
        lines.append(
            f"Gate {gate.phase.label}: needs {gate.min_coverage:.0%}, now {_pct(gate.now).strip()}"
            f", after this plan {_pct(gate.after).strip()} — {state}"
        )
    if plan.steps:
        lines += ["", f"Commands, run from {config.root}:"]
        for step in plan.steps:
            lines += _step(plan, step)
    lines += ["", plan.next_action()]
    return "\n".join(lines)


def _wrapped(label: str, names: Sequence[str]) -> list[str]:
    if not names:
        return []
    text = textwrap.fill(
        ", ".join(names),
        width=98,
        initial_indent=f"  {label}",
        subsequent_indent=" " * (2 + len(label)),
    )
    return text.splitlines()


def _gaps(p: ProcessorPlan, expected: list[date]) -> list[str]:
    out = []
    if p.partial:
        out.append(f"      partial: {describe(p.partial, expected)}")
    if p.missing:
        out.append(f"      missing: {describe(p.missing, expected)}")
    reasons: dict[str, list[date]] = {}
    for day, why in p.blocked.items():
        reasons.setdefault(why, []).append(day)
    for why, days in reasons.items():
        out.append(f"      blocked by {why}: {describe(days, expected)}")
    return out


def _step(plan: Plan, step: Step) -> list[str]:
    limit = step.phase.max_parallel
    how = "one command at a time" if limit == 1 else f"up to {limit} commands at once"
    lines = ["", f"Step {step.number} · {step.phase.label} · {how}"]
    lines += _wrapped("runs: ", step.processors)
    if step.upstream:
        lines += _wrapped("after: ", [*step.upstream[:-1], f"{step.upstream[-1]} (same dates)"])
    lines += _wrapped("after: ", step.gates)
    for item in plan.items:
        if item.step == step.number:
            lines.append(f"  {shell_line(item.argv, dict(item.env))}")
    return lines


def render_preflight(results: Sequence[CheckResult]) -> str:
    width = max((len(r.name) for r in results), default=10)
    lines = [
        f"{r.status.upper():<7} {r.duration_s:6.2f}s  {r.name:<{width}}  {r.detail}"
        for r in results
    ]
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "fail", "info")}
    skipped = sum(r.status == "skipped" for r in results)
    verdict = {0: "ready", 1: "DO NOT PROCEED", 2: "proceed with caution"}[exit_code(list(results))]
    lines.append(
        f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed, "
        f"{counts['info']} info, {skipped} skipped: {verdict}"
    )
    return "\n".join(lines)


def preflight_json(results: Sequence[CheckResult]) -> dict[str, object]:
    return {
        "checks": [
            {
                "name": r.name,
                "status": r.status,
                "duration_s": round(r.duration_s, 3),
                "detail": r.detail,
            }
            for r in results
        ],
        "exit_code": exit_code(list(results)),
    }
