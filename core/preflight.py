"""Checks that say whether a run can start: pass, warn or fail, each with a duration and a detail.

The built-in checks always run: the config is valid, the warehouse answers, the tables exist (a
missing source table fails; a missing output table only warns: it appears with its first run),
every command's program resolves, state_dir is writable, no other engine owns it, and how the
processes an attempt leaves running are found (its own cgroup v2, or a scan of /proc), and on a
cloud_run phase each processor's Cloud Run Job exists and never retries by itself. The
checks of backfill.yaml's `preflight:` list follow (coverage, query, command, path_exists,
python_import, env_var); a check that does not hold reports its severity (fail, warn or info).
Checks run concurrently, each bounded by its timeout; a check that crashes fails with its error
as detail.
`--quick` skips the checks marked `quick: false`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import anyio

from core import cloud_run, process
from core.calendar import expected_scan
from core.config import Config
from core.config.model import (
    CheckSpec,
    CommandCheck,
    CoverageCheck,
    EnvVarCheck,
    PathExistsCheck,
    PythonImportCheck,
    QueryCheck,
)
from core.coverage import counts_complete, measure
from core.errors import UserError
from core.planner import fill
from core.state import JOURNAL_FILE, EngineLock, Journal
from core.warehouse import Scan, TableCheck, open_warehouse

Status = Literal["pass", "warn", "fail", "info", "skipped"]
BUILTIN_TIMEOUT = 30.0
#: the table checks make a metadata call and a dry run per table: with 20 tables on a busy
#: project (or an emulator on a loaded machine) that is more than one call's worth of patience
WAREHOUSE_TIMEOUT = 120.0
#: a metadata call per Cloud Run job (the seed has a dozen)
CLOUD_RUN_TIMEOUT = 120.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    duration_s: float
    detail: str


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], tuple[Status, str]]  # blocking; runs in a worker thread
    timeout: float = BUILTIN_TIMEOUT
    skip: str | None = None  # why it does not run (e.g. not quick)


def exit_code(results: list[CheckResult]) -> int:
    """0 all pass, 1 any fail, 2 warnings only (the seed's preflight_verification.sh contract)."""
    statuses = {r.status for r in results}
    return 1 if "fail" in statuses else 2 if "warn" in statuses else 0


def gate_record(results: list[CheckResult], *, overridden: bool, by: str) -> dict[str, Any]:
    """What the journal keeps of the preflight that gated a run; `by`: who started the run."""
    return {
        "by": by,
        "overridden": overridden,
        "failed": [r.name for r in results if r.status == "fail"],
        "warnings": [r.name for r in results if r.status == "warn"],
        "checks": [{"name": r.name, "status": r.status, "detail": r.detail} for r in results],
    }


def all_checks(config: Config, *, quick: bool = False) -> list[Check]:
    return builtin_checks(config) + configured_checks(config, quick=quick)


def configured_checks(config: Config, *, quick: bool = False) -> list[Check]:
    checks = []
    for spec in config.preflight:
        probe = _PROBES[spec.kind]

        def run(spec: CheckSpec = spec, probe: Probe = probe) -> tuple[Status, str]:
            holds, detail = probe(config, spec)
            if spec.severity == "info":
                return "info", detail
            return ("pass" if holds else spec.severity), detail

        skip = "not quick (skipped by --quick)" if quick and not spec.quick else None
        # A command check kills its process at its own timeout; the outer bound is a backstop.
        checks.append(Check(spec.name, run, timeout=spec.timeout + 5, skip=skip))
    return checks


def builtin_checks(config: Config) -> list[Check]:
    look = _TablesLook(config)
    return [
        Check("config valid", lambda: _config_valid(config)),
        Check("warehouse reachable, tables present", lambda: _tables(look()), WAREHOUSE_TIMEOUT),
        *(
            [
                Check(
                    "partition expiration keeps the range",
                    lambda: _expiration(config, look()),
                    WAREHOUSE_TIMEOUT,
                )
            ]
            if config.warehouse.kind == "bigquery"
            else []
        ),
        Check("commands resolve", lambda: _commands(config)),
        Check("state_dir writable", lambda: _state_dir(config)),
        Check("engine lock free", lambda: _lock(config)),
        Check("attempts' leftover processes found", _containment),
        *(
            [Check("Cloud Run jobs ready", lambda: _cloud_run_jobs(config), CLOUD_RUN_TIMEOUT)]
            if cloud_run.cloud_run_jobs(config)
            else []
        ),
    ]


async def run_checks(checks: list[Check]) -> list[CheckResult]:
    results: dict[int, CheckResult] = {}

    async def one(index: int, check: Check) -> None:
        started = time.perf_counter()
        status: Status
        if check.skip:
            results[index] = CheckResult(check.name, "skipped", 0.0, check.skip)
            return
        try:
            with anyio.fail_after(check.timeout):
                status, detail = await anyio.to_thread.run_sync(check.run, abandon_on_cancel=True)
        except TimeoutError:
            status, detail = "fail", f"no answer within {check.timeout:.0f}s"
        except Exception as exc:  # a crashing check is a failed check, never a traceback
            status, detail = "fail", f"{type(exc).__name__}: {exc}"
        results[index] = CheckResult(check.name, status, time.perf_counter() - started, detail)

    async with anyio.create_task_group() as tg:
        for index, check in enumerate(checks):
            tg.start_soon(one, index, check)
    return [results[i] for i in range(len(checks))]


def _config_valid(config: Config) -> tuple[Status, str]:
    runnable = sum(not p.is_source for p in config.processors)
    return "pass", (
        f"{len(config.phases)} phases, {len(config.processors)} processors ({runnable} runnable)"
    )


@dataclass(frozen=True)
class _Table:
    label: str  # the processor's name, or "calendar"
    scan: Scan
    source: bool  # read, never written by the run: missing is a failure
    check: TableCheck


def _look_at_tables(config: Config) -> tuple[str, list[_Table]]:
    """Every processor's table and the calendar's, looked at without a billed scan."""
    named = [(p.name, Scan(p.table, p.date_column), p.is_source) for p in config.processors]
    calendar = expected_scan(config)
    if calendar is not None:
        named.append(("calendar", calendar, True))
    start, end = _run_range(config)
    warehouse = open_warehouse(config)
    try:
        checks = warehouse.check_tables([scan for _, scan, _ in named], start, end)
    finally:
        warehouse.close()
    return warehouse.description, [_Table(n, scan, src, checks[scan]) for n, scan, src in named]


class _TablesLook:
    """One look at the tables shared by the checks that read it: they run concurrently, and a
    second look would double every metadata call and dry run."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._seen: tuple[str, list[_Table]] | Exception | None = None

    def __call__(self) -> tuple[str, list[_Table]]:
        with self._lock:
            if self._seen is None:
                try:
                    self._seen = _look_at_tables(self._config)
                except Exception as exc:  # an unreachable warehouse is waited for once
                    self._seen = exc
            if isinstance(self._seen, Exception):
                raise self._seen
            return self._seen


def _run_range(config: Config) -> tuple[date, date]:
    return config.calendar.start, config.calendar.end_date(date.today())


def _tables(look: tuple[str, list[_Table]]) -> tuple[Status, str]:
    description, tables = look
    missing_sources = [t.label for t in tables if not t.check.exists and t.source]
    missing_outputs = [t.label for t in tables if not t.check.exists and not t.source]
    failures = [f"source tables missing: {', '.join(missing_sources)}"] if missing_sources else []
    failures += [
        f"{t.label} ({t.scan.table}): {t.check.problem}" for t in tables if t.check.problem
    ]
    if failures:
        return "fail", "; ".join(failures)
    if missing_outputs:
        return "warn", f"output tables not created yet: {', '.join(missing_outputs)}"
    return "pass", f"{description}: {len(tables)} tables present"


def _expiration(config: Config, look: tuple[str, list[_Table]]) -> tuple[Status, str]:
    _, tables = look
    start, _ = _run_range(config)
    lost = [
        f"{t.label} ({t.scan.table}): partitions of dates before {kept} are deleted"
        for t in tables
        if (kept := t.check.keeps_from) is not None and kept > start
    ]
    if lost:
        return (
            "warn",
            f"partition expiration deletes dates of the range from {start}: " + "; ".join(lost),
        )
    return "pass", f"no partition of the range from {start} expires"


def _commands(config: Config) -> tuple[Status, str]:
    unresolved = []
    for proc in config.processors:
        if (
            proc.command is None
            or config.executor_of(config.phase_of(proc.name)).kind == "cloud_run"
        ):
            continue  # a Cloud Run Job's program is in its image
        program = sys.executable if proc.command[0] == "{python}" else proc.command[0]
        path = program if os.sep in program else shutil.which(program)
        if path is None or not os.access(config.root / path, os.X_OK):
            unresolved.append(f"{proc.name}: {program}")
    if unresolved:
        return "fail", f"not executable: {'; '.join(unresolved)}"
    return "pass", "every command's program resolves"


def _state_dir(config: Config) -> tuple[Status, str]:
    config.state_path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=config.state_path):
        pass
    return "pass", str(config.state_path)


def _lock(config: Config) -> tuple[Status, str]:
    owner = EngineLock(config.state_path).owner()
    if owner is None:
        return "pass", "no engine owns the state_dir"
    if owner == os.getpid():
        return "pass", "owned by this process"
    return "warn", f"another engine (pid {owner}) is running; starting a run here will be refused"


def _cloud_run_jobs(config: Config) -> tuple[Status, str]:
    try:
        return cloud_run.check_jobs(config)
    except UserError as exc:  # the cloud-run extra is not installed
        return "fail", str(exc)


def _containment() -> tuple[Status, str]:
    kind, detail = process.containment()
    return ("warn" if kind == "none" else "pass"), detail


# -- the kinds of backfill.yaml ----------------------------------------------------------------

Probe = Callable[[Config, Any], tuple[bool, str]]


def _known_empty_cells(config: Config, start: date, end: date) -> frozenset[tuple[str, date]]:
    """Read-only: coverage checks run side by side in threads, and a writable open probes the
    state_dir with a file of its own, which those opens would race on."""
    if not (config.state_path / JOURNAL_FILE).exists():
        return frozenset()
    try:
        journal = Journal(config.state_path, read_only=True)
    except UserError:
        # Another schema version: the engine migrates it when it opens it; until then no
        # cell is known empty to this check, which then errs on the strict side.
        return frozenset()
    try:
        return journal.known_empty_cells(start, end)
    finally:
        journal.close()


def _coverage_probe(config: Config, spec: CoverageCheck) -> tuple[bool, str]:
    start = spec.start or config.calendar.start
    end = spec.end or config.calendar.end_date(date.today())
    warehouse = open_warehouse(config)
    try:
        coverage = measure(config, warehouse, start, end)
    finally:
        warehouse.close()
    coverage = coverage.with_known_empty(_known_empty_cells(config, start, end))
    if spec.phase:
        phase = config.phase(spec.phase)
        share, label = coverage.phase_coverage(phase), phase.label
        due = len(coverage.calendar.expected) - len(coverage.skipped[phase.name])
    else:
        assert spec.processor is not None
        proc = config.processor(spec.processor)
        skipped = coverage.skipped[config.phase_of(proc.name).name]
        due_dates = [d for d in coverage.calendar.expected_dates if d not in skipped]
        done = sum(counts_complete(coverage.cell(proc, d).state) for d in due_dates)
        share, label, due = (
            (done / len(due_dates) if due_dates else None),
            proc.name,
            len(due_dates),
        )
    if share is None:
        return True, f"{label}: no expected dates in {start} … {end}"
    complete = round(share * due)
    return share >= spec.min_coverage, (
        f"{label}: {complete}/{due} dates complete ({share:.1%}), needs {spec.min_coverage:.0%}"
    )


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "between": lambda a, b: b[0] <= a <= b[1],
}


def _query_probe(config: Config, spec: QueryCheck) -> tuple[bool, str]:
    warehouse = open_warehouse(config)
    try:
        value = warehouse.scalar(spec.sql)
    finally:
        warehouse.close()
    expected = list(spec.value) if isinstance(spec.value, tuple) else spec.value
    try:
        holds = _COMPARE[spec.op](value, spec.value)
    except TypeError:
        return False, f"got {value!r}, which cannot be compared with {expected!r}"
    return holds, f"got {value!r}, expected {spec.op} {expected!r}"


def _command_probe(config: Config, spec: CommandCheck) -> tuple[bool, str]:
    argv = fill(spec.command, {"python": sys.executable, "config": str(config.path.resolve())})
    try:
        done = subprocess.run(
            argv,
            cwd=config.root,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=spec.timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"still running after {spec.timeout:.0f}s: killed"
    except OSError as exc:
        return False, f"cannot run {argv[0]}: {exc.strerror or exc}"
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    last = lines[-1].strip()[:200] if lines else "no output"
    return done.returncode == 0, f"exit {done.returncode}: {last}"


def _path_probe(config: Config, spec: PathExistsCheck) -> tuple[bool, str]:
    path = config.root / spec.path
    return path.exists(), f"{spec.path} {'exists' if path.exists() else 'does not exist'}"


def _import_probe(config: Config, spec: PythonImportCheck) -> tuple[bool, str]:
    # In a child interpreter: an import may hang, print or change global state.
    done = subprocess.run(
        [sys.executable, "-c", f"import {spec.module}"],
        cwd=config.root,
        capture_output=True,
        text=True,
        timeout=spec.timeout,
        check=False,
    )
    if done.returncode == 0:
        return True, f"import {spec.module} works"
    error = (done.stderr.strip().splitlines() or ["failed"])[-1]
    return False, error[:200]


def _env_probe(config: Config, spec: EnvVarCheck) -> tuple[bool, str]:
    value = os.environ.get(spec.variable, "")
    return bool(value), f"{spec.variable} is {'set' if value else 'not set or empty'}"


_PROBES: dict[str, Probe] = {
    "coverage": _coverage_probe,
    "query": _query_probe,
    "command": _command_probe,
    "path_exists": _path_probe,
    "python_import": _import_probe,
    "env_var": _env_probe,
}
