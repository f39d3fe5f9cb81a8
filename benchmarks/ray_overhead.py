"""What does running an attempt on Ray cost? The same jobs through the local executor and as Ray
jobs on a local Ray head (tests/executors/ray_head.py: started here, stopped by its group).

Each job sleeps one second and writes its date's row into a SQLite table; the engine runs them
in-process (anyio, asyncio) with `chunk_days: 1`, `max_parallel: 4`: N one-date items, each
planned, journaled, started, followed (Ray: its log mirrored over the Jobs API's websocket),
verified against the warehouse. Printed: each makespan (Engine construction to `run()`
returning), the time per attempt beyond its one second, and the ratio Ray / local.

Ray's overhead per attempt is its job supervisor (an actor started per job), the runtime env,
the entrypoint wrapper's python3, and the log stream closing after the job's end; next to a
minute-long BigQuery job it is to be read as a share of the job, not of this one second.

Run: `uv run python benchmarks/ray_overhead.py [--jobs N]` (100 jobs: several minutes on 2
cores; `--jobs 12` for a quick look). Needs the ray extra (a dev dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.synthetic import config_text, create_source
from core.config import load_config
from core.engine.api import RunRequest, local_engine
from core.state import Journal
from core.warehouse import open_warehouse, sqlite_layout
from tests.executors.ray_head import ray_head

PARALLEL = 4
FIRST = date(2024, 1, 1)
JOB = (
    "import sqlite3, sys, time; time.sleep(1); "
    "c = sqlite3.connect(sys.argv[1], timeout=30); "
    "c.execute('INSERT INTO job VALUES (?)', (sys.argv[2],)); c.commit(); "
    "print('wrote', sys.argv[2])"
)


def pipeline(folder: Path, dates: list[date], executor: str) -> Path:
    conn = sqlite_layout.connect(folder / "wh", ["src", "out"], readonly=False)
    create_source(conn, dates)
    conn.execute("CREATE TABLE out.job (d TEXT)")
    conn.close()
    argv = [sys.executable, "-S", "-c", JOB, str(folder / "wh" / "out.sqlite"), "{start}"]
    text = config_text(
        "ray-overhead",
        dates,
        f"""  - name: work
    max_parallel: {PARALLEL}
    processors:
      - name: job
        table: out.job
        date_column: d
        depends_on: [base]
        chunk_days: 1
        retries: 0
        command: {json.dumps(argv)}
""",
    )
    path = folder / "backfill.yaml"
    path.write_text(executor + text)
    return path


async def makespan(path: Path, dates: list[date]) -> tuple[float, bool, int]:
    config = load_config(path)
    journal = Journal(config.state_path)
    warehouse = open_warehouse(config)
    request = RunRequest(dates[0], dates[-1], max_parallel=PARALLEL)
    started = time.perf_counter()
    engine = local_engine(config, warehouse, request, journal=journal, on_event=lambda e: None)
    result = await engine.run()
    wall = time.perf_counter() - started
    journal.close()
    warehouse.close()
    return wall, result.complete, engine.snapshot().total


def rows(folder: Path) -> int:
    conn = sqlite3.connect(folder / "wh" / "out.sqlite")
    try:
        return int(conn.execute("SELECT COUNT(DISTINCT d) FROM job").fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100, help="one-second jobs (default 100)")
    jobs = parser.parse_args().jobs
    dates = [FIRST + timedelta(days=i) for i in range(jobs)]
    print(f"{jobs} one-second jobs, {PARALLEL} at a time, {os.cpu_count()} CPUs")
    ideal = jobs / PARALLEL  # seconds, with no overhead at all
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, ray_head() as head:
        for name, executor in (
            ("local", ""),
            ("ray", f'executor: {{kind: ray, address: "{head.address}"}}\n'),
        ):
            folder = Path(tmp) / name
            folder.mkdir()
            path = pipeline(folder, dates, executor)
            wall, complete, items = anyio.run(makespan, path, dates, backend="asyncio")
            if not (complete and items == jobs and rows(folder) == jobs):
                raise SystemExit(f"MISS: the {name} run was wrong: complete={complete}")
            results[name] = wall
            extra = (wall - ideal) * PARALLEL / jobs
            print(f"{name:6s} makespan {wall:7.1f} s   overhead per attempt {extra:5.2f} s")
    print(f"ratio ray / local: {results['ray'] / results['local']:.2f}x (ideal {ideal:.0f} s)")


if __name__ == "__main__":
    main()
