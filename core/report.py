"""What happened in a run, from the journal alone: the hand-off an operator leaves for the next
one (range, timeline, done and failed per phase, failures grouped by what went wrong, retries,
cooldowns, operator actions, cost). `backfill report` prints it as Markdown or JSON.

Cost is what the journal knows: the time the run's attempts ran, per phase (a retried or
cancelled attempt cost its minutes too). What a job billed in the warehouse is the job's own
and is not measured here."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.calendar import days_between
from core.dateranges import describe
from core.errors import UserError
from core.failures import Failure, FailureGroup, group
from core.progress import format_duration
from core.state import statedir
from core.state.journal import Journal, KnownEmptyRow, RunRow

#: where reports are written, under state_dir
REPORTS = "reports"

#: item states whose cells are counted
COUNTED = ("done", "failed", "cancelled", "blocked", "pending", "running")
#: events that make the timeline (item state changes are summarised, not listed)
TIMELINE = {
    "run_started": "run started",
    "run_resumed": "run resumed by a new engine",
    "attempt_adopted": "attempt adopted after an engine crash",
    "journal_full": "disk full: dispatch held",
    "journal_writable": "disk writable again: dispatch resumed",
}


@dataclass
class PhaseSummary:
    name: str
    #: cells (processor-dates) per item state
    cells: Counter[str] = field(default_factory=Counter)
    items: int = 0
    attempts: int = 0
    #: seconds the phase's attempts ran (a running one: until the report)
    attempt_seconds: float = 0.0


@dataclass
class RunReport:
    run: RunRow
    phases: list[PhaseSummary]
    failures: list[FailureGroup]
    attempts: int
    #: attempts beyond the first of their item
    retries: int
    #: (at, phase, seconds)
    cooldowns: list[tuple[float, str, float]]
    #: (at, who, action)
    actions: list[tuple[float, str, str]]
    #: (at, what)
    timeline: list[tuple[float, str]]
    #: cells of the run's range marked known empty (as the journal holds them now): counted
    #: complete, so a reader of the report should see that they are and why
    known_empty: list[KnownEmptyRow] = field(default_factory=list)


def build_report(journal: Journal, run_id: int | None = None) -> RunReport:
    run = _run(journal, run_id)
    items = journal.items(run.id)
    last = journal.last_attempts(run.id)
    phases: dict[str, PhaseSummary] = {}
    failures = []
    attempts = retries = 0
    for item in items:
        summary = phases.setdefault(item.phase, PhaseSummary(item.phase))
        summary.items += 1
        summary.cells[item.state] += len(item.dates)
        a = last.get(item.id)
        attempts += a.number if a else 0
        retries += max(0, a.number - 1) if a else 0
        if item.state == "failed":
            failures.append(
                Failure(
                    processor=item.processor,
                    dates=item.dates,
                    tail=a.tail if a else (),
                    reason=item.reason or (a.reason if a else None),
                    at=a.ended_at if a else None,
                    log_path=str(a.log_path) if a else None,
                )
            )
    for phase, (count, seconds) in journal.attempt_time(run.id, time.time()).items():
        summary = phases.setdefault(phase, PhaseSummary(phase))
        summary.attempts, summary.attempt_seconds = count, seconds
    cooldowns, actions, timeline = [], [], []
    for at, _item, kind, detail in journal.events(run.id):
        if kind == "cooldown":
            seconds = float(detail.get("until", at)) - at
            cooldowns.append((at, str(detail.get("phase", "?")), seconds))
            timeline.append((at, f"cooldown of {detail.get('phase')} for {seconds:.0f}s"))
        elif kind in ("quota_paused", "quota_resumed"):
            writers = ", ".join(map(str, detail.get("processors", ())))
            if kind == "quota_paused":
                seconds = float(detail.get("until", at)) - at
                text = f"daily quota: {writers} paused for {seconds:.0f}s ({detail.get('reason')})"
            else:
                text = f"daily-quota pause over: {writers}"
            timeline.append((at, text))
        elif kind.startswith("operator_"):
            action = _action(kind, detail)
            actions.append((at, str(detail.get("who", "unknown")), action))
            timeline.append((at, f"operator: {action}"))
        elif kind in TIMELINE:
            timeline.append((at, TIMELINE[kind]))
    if run.ended_at is not None:
        timeline.append((run.ended_at, f"run ended: {run.status}"))
    return RunReport(
        run,
        list(phases.values()),
        group(failures),
        attempts,
        retries,
        cooldowns,
        actions,
        timeline,
        journal.known_empty(run.start, run.end),
    )


def _run(journal: Journal, run_id: int | None) -> RunRow:
    runs = journal.runs(limit=1_000_000)
    if not runs:
        raise UserError(f"{journal.path}: no run yet (start one with `backfill run` or `s`)")
    if run_id is None:
        return runs[0]
    for run in runs:
        if run.id == run_id:
            return run
    known = ", ".join(f"#{r.id}" for r in runs[:10])
    raise UserError(f"no run #{run_id} in {journal.path} (the latest: {known})")


def _action(kind: str, detail: dict[str, Any]) -> str:
    name = kind.removeprefix("operator_").replace("setconcurrency", "parallel")
    shown = " ".join(
        f"{k}={v}"
        for k, v in detail.items()
        if k not in ("who", "ok") and v not in (None, [], "", False)
    )
    refused = "" if detail.get("ok", True) else " (refused)"
    return f"{name} {shown}".strip() + refused


# -- output ---------------------------------------------------------------------------------


def _iso(at: float | None) -> str | None:
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))


def to_json(report: RunReport) -> dict[str, Any]:
    run = report.run
    return {
        "run": {
            "id": run.id,
            "status": run.status,
            "start": run.start.isoformat(),
            "end": run.end.isoformat(),
            "started_at": _iso(run.created_at),
            "ended_at": _iso(run.ended_at),
            "request": run.request,
        },
        "phases": [
            {
                "name": p.name,
                "items": p.items,
                **{state: p.cells[state] for state in COUNTED},
                "attempts": p.attempts,
                "attempt_seconds": round(p.attempt_seconds, 1),
            }
            for p in report.phases
        ],
        "failures": [
            {
                "signature": g.signature,
                "count": g.count,
                "cells": [[processor, day.isoformat()] for processor, day in g.cells],
                "first_seen": _iso(g.first_seen),
                "last_seen": _iso(g.last_seen),
                "sample": g.sample_line,
                "sample_log": g.sample_log,
            }
            for g in report.failures
        ],
        "attempts": report.attempts,
        "retries": report.retries,
        "cooldowns": [
            {"at": _iso(at), "phase": phase, "seconds": round(seconds, 1)}
            for at, phase, seconds in report.cooldowns
        ],
        "actions": [{"at": _iso(at), "who": who, "action": a} for at, who, a in report.actions],
        "timeline": [{"at": _iso(at), "what": what} for at, what in report.timeline],
        "known_empty": {
            "count": len(report.known_empty),
            "cells": [
                {
                    "processor": row.processor,
                    "date": row.day.isoformat(),
                    "reason": row.reason,
                    "who": row.who,
                    "at": _iso(row.at),
                }
                for row in report.known_empty
            ],
        },
    }


def to_markdown(report: RunReport) -> str:
    run = report.run
    took = (run.ended_at or time.time()) - run.created_at
    lines = [
        f"# Run #{run.id}: {run.start} → {run.end}, {run.status}",
        "",
        f"Started {_clock(run.created_at)}, "
        + (f"ended {_clock(run.ended_at)}" if run.ended_at else "not ended")
        + f" ({format_duration(took)}). {report.attempts} attempts, {report.retries} retries, "
        f"{len(report.cooldowns)} cooldowns.",
        "",
        "## Phases",
        "",
        "| phase | items | done | failed | cancelled | blocked | pending |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in report.phases:
        c = p.cells
        lines.append(
            f"| {p.name} | {p.items} | {c['done']} | {c['failed']} | {c['cancelled']} | "
            f"{c['blocked']} | {c['pending'] + c['running']} |"
        )
    lines += ["", "Counts are cells (processor-dates).", "", "## Cost", ""]
    total = sum(p.attempt_seconds for p in report.phases)
    lines += [
        f"- {p.name}: {p.attempts} attempts ran {format_duration(p.attempt_seconds)}"
        for p in report.phases
        if p.attempts
    ] or ["No attempt ran."]
    lines += [
        "",
        f"{format_duration(total)} of attempt time in all (jobs side by side count each). "
        "What the jobs billed in the warehouse is not measured by backfill.",
        "",
        "## Failures",
        "",
    ]
    if not report.failures:
        lines.append("None.")
    for g in report.failures:
        cells = ", ".join(f"{p} {d}" for p, d in g.cells[:6])
        more = f" (+{g.count - 6} more)" if g.count > 6 else ""
        lines += [
            f"- **{g.count} cells**: `{_code(g.signature)}`",
            f"  - {cells}{more}",
            f"  - first {_clock(g.first_seen)}, last {_clock(g.last_seen)}; sample log "
            f"`{_code(g.sample_log or '-')}`",
        ]
    lines += ["", "## Known empty", ""]
    if not report.known_empty:
        lines.append("None.")
    else:
        lines.append(f"{len(report.known_empty)} cells, counted complete:")
    by_reason: dict[tuple[str, str], list[KnownEmptyRow]] = {}
    for row in report.known_empty:
        by_reason.setdefault((row.processor, row.reason), []).append(row)
    for (processor, reason), rows in by_reason.items():
        days = [row.day for row in rows]
        lines.append(
            f"- {processor} {describe(days, days_between(days[0], days[-1]))}: {_code(reason)} "
            f"— {rows[-1].who}, {_clock(rows[-1].at)}"
        )
    lines += ["", "## Operator actions", ""]
    lines += [f"- {_clock(at)} {who}: {_code(a)}" for at, who, a in report.actions] or ["None."]
    lines += ["", "## Timeline", ""]
    lines += [f"- {_clock(at)} {what}" for at, what in report.timeline]
    return "\n".join(lines) + "\n"


def _clock(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _code(text: str) -> str:
    """Inside Markdown backticks: a job's words cannot close the span or start a line."""
    return text.replace("`", "'").replace("\n", " ")


def save_report(
    journal: Journal, state_dir: Path, run_id: int | None = None, *, picture: str | None = None
) -> tuple[Path, Path]:
    """Writes the run's report as `reports/run-N.md` and `run-N.json` under `state_dir` (files
    of the state dir's mode: a report quotes jobs' errors); `picture`: the name of a heatmap
    screenshot beside them, linked from the Markdown. Returns (markdown, json)."""
    return write_report(build_report(journal, run_id), state_dir, picture=picture)


def write_report(
    report: RunReport, state_dir: Path, *, picture: str | None = None
) -> tuple[Path, Path]:
    """`save_report` of a report already built."""
    folder = state_dir / REPORTS
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise statedir.cannot(folder, "write", exc) from None
    markdown = to_markdown(report)
    if picture is not None:
        markdown += f"\n## Coverage when the report was written\n\n![heatmap]({picture})\n"
    paths = folder / f"run-{report.run.id}.md", folder / f"run-{report.run.id}.json"
    for path, text in zip(paths, (markdown, json.dumps(to_json(report), indent=2)), strict=True):
        statedir.create_file(path)
        try:
            path.write_text(text)
        except OSError as exc:
            raise statedir.cannot(path, "write", exc) from None
    return paths
