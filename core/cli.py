"""The headless command line (`python -m core ...`): every `backfill` command but the dashboard,
which `tui.cli` adds on top. Results go to stdout, diagnostics to stderr.

Bad input of any kind exits 2 with one line naming what and where; nothing prints a traceback.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from core.calendar import days_between, read_calendar
from core.config import Config, load_config
from core.config.values import parse_date
from core.coverage import Coverage, measure, refresh_cost
from core.engine.api import (
    CancelAll,
    CancelItem,
    Command,
    KnownEmpty,
    Pause,
    Reply,
    Resume,
    Retry,
    RunRequest,
    SetConcurrency,
    Stop,
)
from core.errors import UserError
from core.planner import REPROCESS_CHOICES, make_plan
from core.printable import printable
from core.report_text import render_plan, render_status
from core.status import status_report, to_json
from core.warehouse import describe_scan_cost, open_warehouse

if TYPE_CHECKING:
    from core.notify import ChannelHealth  # imported when used: `backfill status` stays quick

EXIT_BAD_INPUT = 2


class DateType(click.ParamType[date]):
    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        try:
            return parse_date(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DATE = DateType()

config_option = click.option(
    "--config",
    "config_path",
    # Not checked here: click would answer a directory or an unreadable file with a usage
    # screen; the loader says what is wrong with any path in one line (core/config/source.py).
    type=click.Path(path_type=Path, readable=False),
    default=Path("backfill.yaml"),
    show_default=True,
    help="The pipeline to supervise.",
)


def load_for_command(config_path: Path) -> Config:
    """The config a command works on; the bundled demo seeds its warehouse on first use."""
    config = load_config(config_path)
    _ensure_demo_warehouse(config)
    return config


def _ensure_demo_warehouse(config: Config) -> None:
    """The bundled demo seeds itself on first use so a new user sees data at once."""
    if config.warehouse.kind != "sqlite" or not config.warehouse.demo:
        return
    if config.warehouse_path.exists():
        return
    from core.demo.seed import seed_demo_warehouse

    click.echo(f"Seeding the demo warehouse at {config.warehouse_path} (first run):", err=True)
    began = time.monotonic()

    def progress(step: int, steps: int, what: str) -> None:
        click.echo(f"  {step}/{steps} {what} ({time.monotonic() - began:.0f}s)", err=True)

    summary = seed_demo_warehouse(config.warehouse_path, progress=progress)
    click.echo(f"  done: {summary.game_dates} game dates in {summary.seconds:.0f}s", err=True)


def _range(config: Config, start: date | None, end: date | None) -> tuple[date, date]:
    start = start or config.calendar.start
    end = end or config.calendar.end_date(date.today())
    if start > end:
        raise click.BadParameter(f"the range ends ({end}) before it starts ({start})")
    return start, end


def _coverage(
    config: Config, start: date, end: date, *, cost: bool = False
) -> tuple[Coverage, int | None]:
    """The coverage of the range and, if asked, the bytes a refresh of it scans (a dry run)."""
    warehouse = open_warehouse(config)
    try:
        coverage = measure(config, warehouse, start, end).with_known_empty(
            _known_empty_cells(config, start, end)
        )
        return coverage, refresh_cost(config, warehouse, start, end) if cost else None
    finally:
        warehouse.close()


def _check_names(config: Config, phases: Sequence[str], processors: Sequence[str]) -> None:
    known_phases = [ph.name for ph in config.phases]
    for name in phases:
        if name not in known_phases:
            raise click.BadParameter(
                f"unknown phase {name!r} (phases: {', '.join(known_phases)})", param_hint="--phase"
            )
    for name in processors:
        if not config.has_processor(name):
            raise click.BadParameter(
                f"unknown processor {name!r} (see `backfill status` for the names)",
                param_hint="--processor",
            )
        if config.processor(name).is_source:
            raise click.BadParameter(
                f"{name!r} is a source (it has no command), it is never run",
                param_hint="--processor",
            )


def _emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2))


# -- commands -------------------------------------------------------------------------------


@click.group()
@click.version_option(package_name="backfill")
def cli() -> None:
    """Supervise long, multi-phase, date-partitioned data backfills (headless commands)."""


@cli.command()
@config_option
@click.option("--start", type=DATE, help="First date (default: calendar.start).")
@click.option("--end", type=DATE, help="Last date (default: calendar.end).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--verbose", is_flag=True, help="Also what a refresh scans (BigQuery bytes).")
@click.option("--watch", is_flag=True, help="Refresh in place every few seconds (Ctrl-C ends).")
@click.option(
    "--interval", type=click.FloatRange(min=0.5), default=5.0, show_default=True, hidden=True
)
def status(
    config_path: Path,
    start: date | None,
    end: date | None,
    as_json: bool,
    verbose: bool,
    watch: bool,
    interval: float,
) -> None:
    """The live or unfinished run, then coverage per phase, processor and season."""

    config = load_for_command(config_path)
    start, end = _range(config, start, end)
    if watch and as_json:
        raise click.UsageError("--watch redraws a screen: use it without --json")
    while True:
        text = _status_once(config, start, end, as_json=as_json, verbose=verbose)
        if not watch:
            click.echo(text)
            return
        # Home, clear: the report redrawn in place, as `watch` does.
        click.echo(f"\x1b[H\x1b[2J{time.strftime('%H:%M:%S')} · every {interval:g}s\n{text}")
        time.sleep(interval)


def _known_empty_cells(config: Config, start: date, end: date) -> frozenset[tuple[str, date]]:
    """Cells an operator journaled as known empty (none before the first journal)."""
    from core.state import Journal

    journal = Journal.open_if_exists(config.state_path)
    if journal is None:
        return frozenset()
    try:
        return journal.known_empty_cells(start, end)
    finally:
        journal.close()


def _failed_cells(config: Config, start: date, end: date) -> frozenset[tuple[str, date]]:
    """Cells whose latest attempt failed, as the journal (if there is one yet) records them."""
    from core.state import Journal

    journal = Journal.open_if_exists(config.state_path)
    if journal is None:
        return frozenset()
    try:
        return frozenset(journal.failed_cells(start, end))
    finally:
        journal.close()


def _channel_health(config: Config, run_id: int | None) -> list[ChannelHealth]:
    """The notify channels' health in `run_id` (default: the latest run), from the journal."""
    from core.notify.health import journaled_health
    from core.state import Journal

    journal = Journal.open_if_exists(config.state_path)
    if journal is None:
        return []
    try:
        if run_id is None:
            latest = journal.runs(limit=1)
            if not latest:
                return []
            run_id = latest[0].id
        return journaled_health(journal, run_id)
    finally:
        journal.close()


def _status_once(config: Config, start: date, end: date, *, as_json: bool, verbose: bool) -> str:
    import anyio

    from core.notify.health import describe as describe_health
    from core.service.run_status import run_status

    run = anyio.run(run_status, config.state_path)
    failed = _failed_cells(config, start, end)
    coverage, scan_bytes = _coverage(config, start, end, cost=verbose)
    report = status_report(coverage, failed)
    channels = _channel_health(config, run.id if run is not None else None) if config.notify else []
    if as_json:
        data = {"run": run.to_json() if run else None} | to_json(report)
        data["notify"] = [asdict(h) for h in channels]
        return json.dumps(data | ({"refresh_bytes": scan_bytes} if verbose else {}), indent=2)
    text = render_status(report)
    # Only a failing channel is news here; `--json` lists every one.
    sick = [f"notify {describe_health(h)}" for h in channels if not h.healthy]
    header = ([run.render()] if run is not None else []) + sick
    if header:
        text = "\n".join(header) + f"\n\n{text}"
    if verbose:
        text += f"\n\n{config.warehouse.label}: {describe_scan_cost(scan_bytes)}"
    return text


@cli.command()
@click.argument("start", type=DATE)
@click.argument("end", type=DATE, required=False)
@config_option
@click.option("--phase", "phases", multiple=True, help="Only this phase (repeatable).")
@click.option("--processor", "processors", multiple=True, help="Only this processor (repeatable).")
@click.option(
    "--reprocess",
    type=click.Choice(REPROCESS_CHOICES),
    default="missing",
    show_default=True,
    help="missing: every date not complete; failed: only dates whose last attempt failed "
    "(the journal's retry list); all: every date, complete ones too.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan(
    start: date,
    end: date | None,
    config_path: Path,
    phases: tuple[str, ...],
    processors: tuple[str, ...],
    reprocess: str,
    as_json: bool,
) -> None:
    """What exists, what is missing, and the exact commands in a safe order. Runs nothing."""
    config = load_for_command(config_path)
    start, end = _range(config, start, end or start)
    _check_names(config, phases, processors)
    coverage, scan_bytes = _coverage(config, start, end, cost=True)
    the_plan = make_plan(
        coverage,
        phases=phases,
        processors=processors,
        reprocess=reprocess,  # type: ignore[arg-type]  # click.Choice guarantees the literal
        failed=_failed_cells(config, start, end) if reprocess == "failed" else frozenset(),
    )
    if as_json:
        _emit_json(the_plan.to_json() | {"refresh_bytes": scan_bytes})
    else:
        click.echo(render_plan(the_plan))
        if scan_bytes is not None:  # free on SQLite: nothing worth a line
            click.echo(
                f"Cost: {describe_scan_cost(scan_bytes)}; a run re-reads only each "
                "attempt's dates after it ends."
            )


@cli.command()
@click.argument("start", type=DATE)
@click.argument("end", type=DATE, required=False)
@config_option
@click.option("--headless", is_flag=True, help="Run in the foreground, printing progress.")
@click.option(
    "--detach",
    is_flag=True,
    help="Run in the background (own session, no terminal); returns once the run is on.",
)
@click.option("--phase", "phases", multiple=True, help="Only this phase (repeatable).")
@click.option("--processor", "processors", multiple=True, help="Only this processor (repeatable).")
@click.option(
    "--reprocess",
    type=click.Choice(REPROCESS_CHOICES),
    default="missing",
    show_default=True,
    help="missing: every date not complete; failed: only dates whose last attempt failed "
    "(the journal's retry list); all: every date, complete ones too.",
)
@click.option(
    "--max-parallel", type=click.IntRange(min=1), help="Cap on attempts running at once overall."
)
@click.option(
    "--ignore-preflight",
    is_flag=True,
    help="Start even if a preflight check fails (the override is journaled).",
)
# The engine process that --detach (or the dashboard) starts: never typed by an operator.
@click.option("--detached-child", is_flag=True, hidden=True)
@click.option("--preflight-record", hidden=True)
def run(
    start: date,
    end: date | None,
    config_path: Path,
    headless: bool,
    detach: bool,
    phases: tuple[str, ...],
    processors: tuple[str, ...],
    reprocess: str,
    max_parallel: int | None,
    ignore_preflight: bool,
    detached_child: bool,
    preflight_record: str | None,
) -> None:
    """Run the plan to the end. Exit 0 only if every targeted cell ends complete or skipped."""
    import anyio

    if headless == detach:
        raise click.UsageError(
            "add --headless to run in the foreground, or --detach to run in the background; "
            "`backfill` opens the dashboard, where s starts a run"
        )
    config = load_for_command(config_path)
    start, end = _range(config, start, end or start)
    _check_names(config, phases, processors)
    request = RunRequest(
        start,
        end,
        phases,
        processors,
        reprocess,  # type: ignore[arg-type]  # click.Choice guarantees the literal
        max_parallel,
    )
    if detach:
        _detach(config, request, ignore_preflight)
        return
    from core.headless import run_headless

    if detached_child:
        # No terminal to hang up on us; a stray SIGHUP (a parent's session ending) changes
        # nothing either.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    record = json.loads(preflight_record) if preflight_record else None
    code = anyio.run(run_headless, config, request, click.echo, ignore_preflight, record)
    raise click.exceptions.Exit(code)


def _detach(config: Config, request: RunRequest, ignore_preflight: bool) -> None:
    import anyio

    from core.service.detach import DetachFailed, run_args, start_detached

    args = run_args(request, ignore_preflight=ignore_preflight)
    try:
        started = anyio.run(start_detached, config.state_path, config.path.absolute(), args)
    except DetachFailed as exc:
        click.echo(f"backfill: {exc}", err=True)
        raise click.exceptions.Exit(exc.code) from None
    flag = f" --config {config.path}" if config.path.name != "backfill.yaml" else ""
    click.echo(
        f"Run #{started.run_id} is running in the background: engine pid {started.pid} on "
        f"{started.host}, log {started.log}.\n"
        f"  watch:  backfill status --watch{flag}   ·   dashboard: backfill tui{flag}\n"
        f"  pause:  backfill pause{flag}   ·   stop: backfill stop{flag}"
    )


# -- controlling a live run ------------------------------------------------------------------

EXIT_NO_ENGINE = 3

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _control(config_path: Path, command: Command, as_json: bool) -> None:
    """Send one command to the live engine of the config's state_dir and say what happened."""
    import anyio

    from core.engine.api import Who
    from core.service.client import NoEngine, RemoteEngine

    config = load_config(config_path)

    async def send() -> tuple[Reply, int]:
        engine = await RemoteEngine.connect(config.state_path, Who.me("cli"))
        try:
            return await engine.submit(command), engine.info.pid
        finally:
            await engine.aclose()

    try:
        reply, pid = anyio.run(send)
    except NoEngine as exc:
        if as_json:
            _emit_json({"ok": False, "message": str(exc), "engine": None})
        else:
            click.echo(
                f"backfill: {exc}: start one with `backfill run START END --detach`", err=True
            )
        raise click.exceptions.Exit(EXIT_NO_ENGINE) from None
    if as_json:
        _emit_json({**asdict(reply), "engine": {"pid": pid}})
    else:
        click.echo(reply.message if reply.ok else f"backfill: {reply.message}", err=not reply.ok)
    raise click.exceptions.Exit(0 if reply.ok else EXIT_BAD_INPUT)


@cli.command()
@config_option
@json_option
def pause(config_path: Path, as_json: bool) -> None:
    """No new dispatch in the live run; running attempts continue."""
    _control(config_path, Pause(), as_json)


@cli.command()
@config_option
@json_option
def resume(config_path: Path, as_json: bool) -> None:
    """Dispatch again in the live run."""
    _control(config_path, Resume(), as_json)


@cli.command()
@click.argument("item_id", type=int, required=False)
@click.option("--all", "everything", is_flag=True, help="Every open item (and stop the run).")
@config_option
@json_option
def cancel(item_id: int | None, everything: bool, config_path: Path, as_json: bool) -> None:
    """Cancel one item of the live run (its process group is killed), or --all."""
    if (item_id is None) == (not everything):
        raise click.UsageError("give an ITEM_ID (see the dashboard's queue) or --all, not both")
    _control(config_path, CancelAll() if everything else CancelItem(item_id or 0), as_json)


@cli.command()
@click.option("--processor", help="Only this processor's failed cells.")
@click.option("--dates", help="Only these dates: D1,D2,... (ISO).")
@config_option
@json_option
def retry(processor: str | None, dates: str | None, config_path: Path, as_json: bool) -> None:
    """Queue failed cells of the live run again, with their retries back."""
    config = load_config(config_path)
    if processor is not None and not config.has_processor(processor):
        raise click.BadParameter(f"unknown processor {processor!r}", param_hint="--processor")
    days = None
    if dates:
        try:
            days = frozenset(parse_date(d.strip()) for d in dates.split(",") if d.strip())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--dates") from None
    _control(config_path, Retry(processor, days), as_json)


@cli.command()
@click.argument("phase")
@click.argument("limit", metavar="N", type=click.IntRange(min=1))
@config_option
@json_option
def parallel(phase: str, limit: int, config_path: Path, as_json: bool) -> None:
    """Set PHASE's concurrency in the live run."""
    config = load_config(config_path)
    known = [ph.name for ph in config.phases]
    if phase not in known:
        raise click.BadParameter(
            f"unknown phase {phase!r} (phases: {', '.join(known)})", param_hint="PHASE"
        )
    _control(config_path, SetConcurrency(phase, limit), as_json)


@cli.command()
@click.option("--cancel-running", is_flag=True, help="Cancel running attempts first.")
@config_option
@json_option
def stop(cancel_running: bool, config_path: Path, as_json: bool) -> None:
    """End the live run: no new dispatch, running attempts finish (or are cancelled), then the
    engine exits. Starting the same run again resumes it."""
    _control(config_path, Stop(cancel_running=cancel_running), as_json)


@cli.command("known-empty")
@click.argument("processor")
@click.argument("first", metavar="DATE", type=DATE)
@click.argument("last", metavar="[DATE_END]", type=DATE, required=False)
@click.option("--reason", help="Why no rows are due (journaled with who and when).")
@click.option("--undo", is_flag=True, help="Judge these cells by their rows again.")
@config_option
@json_option
def known_empty(
    processor: str,
    first: date,
    last: date | None,
    reason: str | None,
    undo: bool,
    config_path: Path,
    as_json: bool,
) -> None:
    """Mark PROCESSOR's cells from DATE to DATE_END (the dates the calendar expects; default:
    DATE alone) known empty: no rows are due, so they count as complete and are never run
    (`--reprocess all` still runs them; they stay known empty until undone). `--undo` takes
    the mark back.

    With a live engine the mark goes through it (pending items of those cells are settled at
    once, dashboards see it); without one it is written to the journal directly."""
    config = load_config(config_path)
    if not config.has_processor(processor):
        raise click.BadParameter(
            f"unknown processor {processor!r} (see `backfill status` for the names)",
            param_hint="PROCESSOR",
        )
    last = last or first
    if last < first:
        raise click.BadParameter(f"the range ends ({last}) before it starts ({first})")
    if undo and reason is not None:
        raise click.UsageError("--undo takes no --reason")
    if not undo and not (reason or "").strip():
        raise click.UsageError("say why these cells have no rows: --reason TEXT (or --undo)")
    days = days_between(first, last)
    if not undo:
        # A mark is for a date that owes rows: off-days are not expected anyway (an undo takes
        # back whatever was marked).
        warehouse = open_warehouse(config)
        try:
            calendar = read_calendar(config, warehouse, first, last)
        finally:
            warehouse.close()
        days = [d for d in days if calendar.is_expected(d)]
        if not days:
            span = str(first) if first == last else f"{first} to {last}"
            raise UserError(
                f"{processor}: no date from {span} is expected by the calendar "
                "(calendar.expected_dates): nothing to mark"
            )
    command = KnownEmpty(processor, frozenset(days), (reason or "").strip(), undo)
    _mark_known_empty(config, command, as_json)


def _mark_known_empty(config: Config, command: KnownEmpty, as_json: bool) -> None:
    import anyio

    from core.engine.api import Who
    from core.service.client import NoEngine, RemoteEngine
    from core.state import Journal

    who = Who.me("cli")

    async def send() -> tuple[Reply, int]:
        engine = await RemoteEngine.connect(config.state_path, who)
        try:
            return await engine.submit(command), engine.info.pid
        finally:
            await engine.aclose()

    pid: int | None
    try:
        reply, pid = anyio.run(send)
    except NoEngine:
        # No engine to tell: the journal is the truth the next engine and dashboard read.
        journal = Journal(config.state_path)
        try:
            days = sorted(command.dates)
            if command.undo:
                count = journal.unmark_known_empty(
                    command.processor, days, who.describe(), run_id=None
                )
                message = f"{command.processor}: {count} known-empty marks undone."
            else:
                count = journal.mark_known_empty(
                    command.processor, days, command.reason, who.describe(), run_id=None
                )
                cells = "cell" if count == 1 else "cells"
                message = f"{command.processor}: {count} {cells} marked known empty."
        finally:
            journal.close()
        reply, pid = Reply(True, message, count), None
    if as_json:
        _emit_json({**asdict(reply), "engine": None if pid is None else {"pid": pid}})
    else:
        click.echo(reply.message if reply.ok else f"backfill: {reply.message}", err=not reply.ok)
    raise click.exceptions.Exit(0 if reply.ok else EXIT_BAD_INPUT)


@cli.command()
@click.argument("processor")
@click.argument("day", metavar="DATE", type=DATE)
@click.option("--attempt", "number", type=click.IntRange(min=1), help="Attempt N (default: last).")
@config_option
def logs(processor: str, day: date, number: int | None, config_path: Path) -> None:
    """Print the log of the attempt that covered PROCESSOR on DATE."""
    from core.state import Journal

    config = load_config(config_path)
    if not config.has_processor(processor):
        raise click.BadParameter(f"unknown processor {processor!r}", param_hint="PROCESSOR")
    journal = Journal.open_if_exists(config.state_path)
    attempts = journal.attempts_for_cell(processor, day) if journal else []
    if not attempts:
        raise click.ClickException(f"no attempt has run {processor} on {day} yet")
    if number is not None and number > len(attempts):
        raise click.ClickException(
            f"{processor} on {day} has {len(attempts)} attempts; there is no attempt {number}"
        )
    attempt = attempts[(number or len(attempts)) - 1]
    outcome = attempt.outcome or "running"
    # No code while running, nor for an attempt that ended while no engine was its parent.
    code = "" if attempt.exit_code is None else f" · exit {attempt.exit_code}"
    click.echo(
        f"# {processor} {day} · attempt {attempts.index(attempt) + 1} of {len(attempts)} · "
        f"{outcome}{code} ({attempt.reason or '-'}){attempt.leftovers_note} · {attempt.where} · "
        f"{attempt.log_path}",
        err=True,
    )
    try:
        with attempt.log_path.open("rb") as log:
            if sys.stdout.isatty():
                # A terminal would obey the job's escape sequences (retitle, clear, move).
                for raw in log:
                    text = printable(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                    sys.stdout.write(text + "\n")
            else:  # piped or redirected: the bytes as the job wrote them
                while chunk := log.read(1 << 16):
                    sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    except FileNotFoundError:
        raise click.ClickException(f"the log file {attempt.log_path} is gone") from None


@cli.command()
@click.option("--run", "run_id", type=click.IntRange(min=1), help="Run N (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@config_option
def report(run_id: int | None, fmt: str, config_path: Path) -> None:
    """What happened in a run: phases, failures grouped by error, retries, cooldowns, actions.
    Printed, and written to state_dir/reports/run-N.md and run-N.json for the hand-off (their
    paths on stderr)."""
    from core.report import build_report, to_json, to_markdown, write_report
    from core.state import Journal

    config = load_config(config_path)
    journal = Journal.open_if_exists(config.state_path)
    if journal is None:
        raise UserError(f"{config.state_path}: no journal yet, so no run to report on")
    try:
        built = build_report(journal, run_id)
    finally:
        journal.close()
    paths = write_report(built, config.state_path)
    if fmt == "json":
        _emit_json(to_json(built))
    else:
        click.echo(to_markdown(built), nl=False)
    click.echo("written: " + ", ".join(str(p) for p in paths), err=True)


@cli.command()
@config_option
@click.option("--quick", is_flag=True, help="Skip the checks marked quick: false.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def preflight(config_path: Path, quick: bool, as_json: bool) -> None:
    """Run the checks. Exit 0 all pass, 1 any fail, 2 warnings only."""
    import anyio

    from core.preflight import all_checks, exit_code, run_checks
    from core.report_text import preflight_json, render_preflight

    config = load_for_command(config_path)
    results = anyio.run(run_checks, all_checks(config, quick=quick))
    if as_json:
        _emit_json(preflight_json(results))
    else:
        click.echo(render_preflight(results))
    raise click.exceptions.Exit(exit_code(results))


@cli.command()
@click.option("--test", "test", is_flag=True, help="Send a test message.")
@click.option("--channel", "channel_name", metavar="NAME", help="Only this channel.")
@config_option
def notify(test: bool, channel_name: str | None, config_path: Path) -> None:
    """Send a test message on every channel (or one). Exit 0 only if all were delivered."""
    import anyio

    from core.notify import send_tests

    config = load_config(config_path)
    if not test:
        raise UserError("notify: say what to do: --test sends a test message")
    channels = list(config.notify)
    if not channels:
        raise UserError(f"{config.path}: no notify: channels to send to")
    if channel_name is not None:
        names = [ch.name for ch in channels]
        if channel_name not in names:
            raise UserError(
                f"{config.path}: notify: no channel {channel_name!r} (channels: {', '.join(names)})"
            )
        channels = [ch for ch in channels if ch.name == channel_name]
    errors = anyio.run(send_tests, channels)
    for spec in channels:
        error = errors[spec.name]
        click.echo(f"{spec.name}: " + ("delivered" if error is None else f"failed: {error}"))
    raise click.exceptions.Exit(0 if all(e is None for e in errors.values()) else 1)


@cli.group()
def demo() -> None:
    """The bundled demo warehouse."""


@demo.command("init")
@config_option
@click.option("--force", is_flag=True, help="Delete the demo warehouse and seed it again.")
def demo_init(config_path: Path, force: bool) -> None:
    """(Re)seed the demo warehouse (SQLite, or a BigQuery emulator)."""
    config = load_config(config_path)
    if not config.warehouse.demo:
        raise UserError(
            f"{config.path}: warehouse: not a demo warehouse (it needs demo: true); "
            "refusing to overwrite it"
        )
    if config.warehouse.kind == "bigquery":
        _seed_bigquery_demo(config, force)
        return
    from core.demo.seed import seed_demo_warehouse

    if config.warehouse_path.exists() and not force:
        raise UserError(
            f"{config.warehouse_path} already exists; `backfill demo init --force` reseeds it"
        )
    summary = seed_demo_warehouse(config.warehouse_path, force=force)
    click.echo(f"Seeded {summary.folder}: {summary.game_dates} game dates.")


def _seed_bigquery_demo(config: Config, force: bool) -> None:
    import shutil

    from core.demo import bigquery_io, faults
    from core.warehouse.bigquery import BigQueryWarehouse, emulator_endpoint

    wh = config.warehouse
    if not emulator_endpoint(wh.api_endpoint):
        raise UserError(
            f"{config.path}: warehouse: the simulated data goes only into an emulator: set "
            "api_endpoint (or $BIGQUERY_EMULATOR_HOST), e.g. `bqemulator start --rest-port 9050`"
        )
    warehouse = open_warehouse(config)
    assert isinstance(warehouse, BigQueryWarehouse)
    try:
        click.echo(f"Seeding the demo into {warehouse.description} ...", err=True)
        copied = bigquery_io.seed_demo(warehouse, force=force)
    finally:
        warehouse.close()
    # Fault markers of the earlier demo would keep its faults from firing again.
    shutil.rmtree(config.state_path / faults.MARKER_DIR, ignore_errors=True)
    click.echo(f"Seeded {wh.project}: {sum(copied.values())} rows in {len(copied)} tables.")


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run_cli(cli.main, argv))


def run_cli(entry: Callable[..., Any], argv: Sequence[str] | None) -> int:
    try:
        # Without standalone mode click returns exit codes (--help, ctx.exit) instead of exiting.
        code = entry(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except UserError as exc:
        click.echo(f"backfill: {exc}", err=True)
        return EXIT_BAD_INPUT
    except OSError as exc:
        # A file or folder the system refused (a read-only state_dir the demo seeds into, say):
        # the operator's to fix, named with its errno, never a traceback.
        click.echo(f"backfill: {_os_problem(exc)}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    return code if isinstance(code, int) else 0


def _os_problem(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0)
    why = f"{exc.strerror}, {code}" if exc.strerror and code else str(exc)
    return f"{exc.filename}: {why}" if exc.filename else why
