"""Synthetic pipelines the benchmarks build in a temp folder, and the helpers that go with them.

Two kinds:
  - the flooding pipeline of the dashboard benchmarks (control_latency.py, dashboard_loop.py):
    a source processor complete on every date, then one phase of one-day items whose jobs sleep
    for 10 minutes, but the first processor's, which writes 20,000 lines a second to stdout.
    Every job's argv carries a marker, so `job_pids` finds what a run left behind (pgrep), and
    `wait_ended` / `kill_leftovers` check and clean up after the engine was stopped;
  - the trivial pipelines of the headless benchmarks (dispatch_overhead.py,
    gated_throughput.py, engine_tick.py): a source table `src.base` with a row on every day
    (`create_source`), the config around the phases they add (`config_text`), and the trivial
    job, a `sqlite3` insert of one row (`trivial_job`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from textual.pilot import Pilot

from core.state import EngineLock
from core.warehouse import sqlite_layout

SLEEPER = "import time; time.sleep(600)"
# 20,000 lines a second in 5 ms batches, about 80 bytes each, for at most 10 minutes.
FLOODER = """
import sys, time
rate = 20000
out = sys.stdout
start = time.monotonic()
n = 0
while time.monotonic() - start < 600:
    target = int((time.monotonic() - start) * rate)
    while n < target:
        out.write("2024-01-20T12:00:00.%03d INFO box date=2024-01-20 row=%d ok\\n" % (n % 1000, n))
        n += 1
    out.flush()
    time.sleep(0.005)
"""


def flood_pipeline(
    folder: Path,
    *,
    name: str,
    start: date,
    days: int,
    processors: int,
    max_parallel: int,
    marker: str,
) -> Path:
    """The warehouse (source complete on every date, empty output tables) and backfill.yaml of
    the flooding pipeline, named `name`: `processors` one-day processors p00, p01, ... over
    `days` days from `start`, at `max_parallel`; p00 floods, the others sleep; every job's argv
    ends with `marker`. Returns the path of backfill.yaml."""
    dates = [start + timedelta(days=i) for i in range(days)]
    names = [f"p{i:02d}" for i in range(processors)]
    conn = sqlite_layout.connect(folder / "wh", {"raw", "out"}, readonly=False)
    try:
        conn.execute("CREATE TABLE raw.src (d TEXT, status INT)")
        conn.executemany("INSERT INTO raw.src VALUES (?, 3)", [(d.isoformat(),) for d in dates])
        for table in names:
            conn.execute(f"CREATE TABLE out.{table} (d TEXT, status INT)")
        conn.commit()
    finally:
        conn.close()
    stanzas = []
    for i, table in enumerate(names):
        command = ["{python}", "-c", FLOODER if i == 0 else SLEEPER, marker]
        stanzas.append(
            f"""      - name: {table}
        table: out.{table}
        date_column: d
        depends_on: [src]
        command: {json.dumps(command)}
        chunk_days: 1
        timeout: 1d
        stall_timeout: 1d
        retries: 0
"""
        )
    text = f"""version: 1
name: {name}
state_dir: .backfill
warehouse: {{kind: sqlite, path: wh}}
calendar:
  start: {dates[0]}
  end: {dates[-1]}
phases:
  - name: raw
    processors:
      - name: src
        table: raw.src
        date_column: d
  - name: work
    max_parallel: {max_parallel}
    processors:
{"".join(stanzas)}"""
    path = folder / "backfill.yaml"
    path.write_text(text)
    return path


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values, by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def until(
    pilot: Pilot[None],
    condition: Callable[[], bool],
    timeout: float,
    *,
    step: float,
    draw: bool = True,
) -> None:
    """Pause the Pilot app `step` seconds at a time until `condition()` holds; fail after
    `timeout` seconds. `draw=False` sleeps instead: Pilot.pause() also renders the screen in
    the calling task, which a measure of the app's own loop must not count."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        if draw:
            await pilot.pause(step)
        else:
            await asyncio.sleep(step)


def job_pids(marker: str) -> list[int]:
    """The processes (but this one) whose argv holds `marker`."""
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split() if int(p) != os.getpid()]


async def wait_ended(
    pilot: Pilot[None], lock: EngineLock, marker: str, timeout: float = 60.0
) -> tuple[list[int], int | None]:
    """After a stop: wait (at most `timeout` seconds) until the engine released `lock` and no job
    with `marker` remains. Returns the jobs left and the lock's owner (None: released)."""
    deadline = time.monotonic() + timeout
    while (lock.owner() is not None or job_pids(marker)) and time.monotonic() < deadline:
        await pilot.pause(0.1)
    return job_pids(marker), lock.owner()


def kill_leftovers(lock: EngineLock, marker: str) -> None:
    """Only if stopping failed: kill our own engine (the owner of `lock`) and jobs, by pid."""
    owner = lock.owner()
    for pid in job_pids(marker) + ([owner] if owner is not None else []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def trivial_job(out_db: Path, table: str, day: str = "{start}") -> list[str]:
    """The trivial job: insert one row for `day` into `table` of the SQLite file `out_db`, with
    the `sqlite3` CLI, or without it a `python -S -c` one-liner. `day` may be a placeholder:
    `{start}` for the engine, `{}` for xargs."""
    sql = f"INSERT INTO {table} VALUES ('{day}')"
    cli = shutil.which("sqlite3")
    if cli:
        return [cli, "-cmd", ".timeout 30000", str(out_db), sql]
    code = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=30); "
    code += "c.execute(sys.argv[2]); c.commit()"
    return [sys.executable, "-S", "-c", code, str(out_db), sql]


def create_source(conn: sqlite3.Connection, days: list[date]) -> None:
    """The source table `src.base`, with a row on every one of `days`."""
    conn.execute("CREATE TABLE src.base (d TEXT)")
    conn.executemany("INSERT INTO src.base VALUES (?)", [(d.isoformat(),) for d in days])


def config_text(name: str, days: list[date], phases: str) -> str:
    """backfill.yaml of a trivial pipeline named `name`: the SQLite warehouse `wh`, the calendar
    over `days`, the source phase `src` (processor `base` on `src.base`), then `phases` (the YAML
    list items of the phases after it)."""
    return f"""
name: {name}
warehouse: {{kind: sqlite, path: wh}}
calendar: {{start: {days[0]}, end: {days[-1]}}}
phases:
  - name: src
    processors:
      - {{name: base, table: src.base, date_column: d}}
{phases}"""
