"""Checks that say whether a run can start: pass, warn or fail, each with a duration and a detail.

The built-in checks always run: the config is valid, the warehouse answers, the tables exist (a
missing source table fails; a missing output table only warns: it appears with its first run),
every command's program resolves, state_dir is writable, no other engine owns it. Checks run
concurrently, each bounded by its timeout; a check that crashes fails with its error as detail.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from core.config import Config
from core.coverage import processor_scan
from core.journal import EngineLock
from core.warehouse import open_warehouse

Status = Literal["pass", "warn", "fail", "info", "skipped"]
BUILTIN_TIMEOUT = 30.0


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


def builtin_checks(config: Config) -> list[Check]:
    return [
        Check("config valid", lambda: _config_valid(config)),
        Check("warehouse reachable, tables present", lambda: _tables(config)),
        Check("commands resolve", lambda: _commands(config)),
        Check("state_dir writable", lambda: _state_dir(config)),
        Check("engine lock free", lambda: _lock(config)),
    ]


async def run_checks(checks: list[Check]) -> list[CheckResult]:
    results: dict[int, CheckResult] = {}

    async def one(index: int, check: Check) -> None:
        started = time.perf_counter()
        status: Status
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


def _tables(config: Config) -> tuple[Status, str]:
    warehouse = open_warehouse(config)
    try:
        day = config.calendar.start
        scans = {p.name: processor_scan(p) for p in config.processors}
        results = warehouse.rows_per_date(list(scans.values()), day, day)
    finally:
        warehouse.close()
    missing_sources = [
        n for n, s in scans.items() if not results[s].table_exists and config.processor(n).is_source
    ]
    missing_outputs = [
        n for n, s in scans.items() if not results[s].table_exists and n not in missing_sources
    ]
    if missing_sources:
        return "fail", f"source tables missing: {', '.join(missing_sources)}"
    if missing_outputs:
        return "warn", f"output tables not created yet: {', '.join(missing_outputs)}"
    return "pass", f"{warehouse.description}: {len(scans)} tables present"


def _commands(config: Config) -> tuple[Status, str]:
    unresolved = []
    for proc in config.processors:
        if proc.command is None:
            continue
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
        return "pass", "owned by this dashboard"
    return "warn", f"another engine (pid {owner}) is running; starting a run here will be refused"
