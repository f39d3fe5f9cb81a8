"""What does the engine cost per work item? The engine against `xargs -P 8` on the same jobs.

Builds identical SQLite warehouses, a fresh one for every measurement: a source table with one
row on each of 2,000 days (2019-01-01 .. 2024-06-22) and an empty output table. The job writes
one row for its date with the `sqlite3` CLI (a few milliseconds of start-up, so the engine's own
cost shows; without the CLI a `python -S -c` one-liner does the same). Then, in the same run:
  - baseline: `xargs -P 8` runs that program once per date, exactly the same argv;
  - ours:     the engine in-process (anyio, asyncio) on a config with one source processor and
    one runnable processor over those dates (`chunk_days: 1`, `max_parallel: 8`): 2,000 real
    work items, each planned, journaled, spawned, verified against the warehouse.
The engine's wall time runs from Engine construction to `run()` returning, and is split into
planning (coverage, plan, journaling the items) and dispatch; the CPU the engine process and the
jobs used is printed per item. Paired rounds: each round runs xargs and then the engine, and its
ratio compares the two in the same conditions; the median of the rounds' ratios counts (not the
best of each side, which may come from different moments of a busy machine).
Files go to tmpfs (/dev/shm) where there is one, for both: see main() for why.
Target: engine <= 1.3x xargs.

Run: `uv run python benchmarks/dispatch_overhead.py` (about a minute on 2 cores).
`--profile`: no rounds; one engine run under cProfile, timed by the event loop thread's CPU
clock (so a spawn waiting for its child, or the loop preempted by jobs, costs nothing), with the
functions of the most CPU printed: what an item costs the engine, not what the target says.
`--rounds N`: N paired rounds instead of 5.
`--uncontained`: each round also runs the engine with attempts' containment stripped
(`uncontained`), which backfill never does: the gap between the ratios is what containment costs.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, TypeVar

import anyio

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.synthetic import config_text, create_source, trivial_job
from core.config import Config, load_config
from core.engine.api import EngineEvent, RunRequest, local_engine
from core.process import attempt, cgroups
from core.state import Journal
from core.warehouse import open_warehouse, sqlite_layout

ITEMS = 2000
PARALLEL = 8
FIRST = date(2019, 1, 1)
TARGET_RATIO = 1.3
ROUNDS = 5

T = TypeVar("T")


def build(folder: Path, dates: list[date]) -> None:
    conn = sqlite_layout.connect(folder, ["src", "out"], readonly=False)
    create_source(conn, dates)
    conn.execute("CREATE TABLE out.job (d TEXT)")
    conn.close()


def rows_written(folder: Path) -> tuple[int, int]:
    conn = sqlite3.connect(folder / "out.sqlite")
    try:
        total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT d) FROM job").fetchone()
    finally:
        conn.close()
    return total, distinct


@dataclass(frozen=True)
class Timed:
    wall: float  # seconds
    own_cpu: float  # CPU seconds of this process (the engine, with its worker threads)
    child_cpu: float  # CPU seconds of the processes it started and reaped (jobs, xargs)


class timed:
    """Wall clock and CPU (this process, and its reaped children) of a `with` block."""

    def __enter__(self) -> timed:
        self._self = resource.getrusage(resource.RUSAGE_SELF)
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        own = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(self._self)
        children = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(self._children)
        self.result = Timed(wall, own, children)


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def run_xargs(argv: list[str], dates: list[date], stdout: IO[bytes] | None = None) -> Timed:
    """`printf '%s\\n' DATES | xargs -P 8 -I{} ARGV` with {} where the date goes."""
    stdin = "".join(f"{d.isoformat()}\n" for d in dates).encode()
    with timed() as t:
        subprocess.run(
            ["xargs", "-P", str(PARALLEL), "-I{}", *argv],
            input=stdin,
            stdout=stdout or subprocess.DEVNULL,
            stderr=stdout,
            check=True,
        )
    return t.result


def pipeline_text(dates: list[date], argv: list[str]) -> str:
    return config_text(
        "dispatch-bench",
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


async def run_engine(config: Config, dates: list[date]) -> tuple[Timed, float, bool, int]:
    """(wall and CPU, planning seconds, complete, items) from Engine construction to the end."""
    journal = Journal(config.state_path)
    warehouse = open_warehouse(config)
    planned_at: list[float] = []

    def on_event(event: EngineEvent) -> None:
        if event.kind == "run_started":
            planned_at.append(time.perf_counter())

    request = RunRequest(dates[0], dates[-1], max_parallel=PARALLEL)
    with timed() as t:
        started = time.perf_counter()
        engine = local_engine(config, warehouse, request, journal=journal, on_event=on_event)
        result = await engine.run()
    journal.close()
    warehouse.close()
    plan = planned_at[0] - started if planned_at else float("nan")
    return t.result, plan, result.complete, engine.snapshot().total


def _spawn_here(tag: str, spawn: Callable[[], T]) -> tuple[T, Path | None]:
    return spawn(), None


async def _no_sweep(**_: object) -> int:
    return 0  # end_leftovers' answer when nothing of the attempt is left


@contextlib.contextmanager
def uncontained() -> Iterator[None]:
    """The engine as if attempts needed no containment: each job spawned in the engine's own
    cgroup (the engine is not moved into the attempt's cgroup and back around the spawn, two
    cgroup migrations) and nothing swept for leftovers once it ends. Not a mode backfill runs in
    (a daemonized grandchild would outlive its attempt): it measures what containment costs."""
    # `attempt` imported end_leftovers by name: its own binding is the one an Attempt calls.
    names = attempt.__dict__
    saved = cgroups.spawn_inside, names["end_leftovers"]
    cgroups.spawn_inside, names["end_leftovers"] = _spawn_here, _no_sweep
    try:
        yield
    finally:
        cgroups.spawn_inside, names["end_leftovers"] = saved


def attempt_seconds(config: Config) -> list[float]:
    conn = sqlite3.connect(config.state_path / "journal.sqlite")
    try:
        rows = conn.execute("SELECT duration FROM attempts WHERE outcome = 'ok'").fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def row(label: str, t: Timed, *, engine: bool = False) -> str:
    ms = 1000 / ITEMS
    own = f"{t.own_cpu * ms:7.2f}" if engine else "      -"
    # What share of the machine's CPUs the side kept busy: with a job this short, xargs keeps
    # nearly all of them busy, so the CPU the engine adds per item bounds its ratio.
    used = (t.own_cpu if engine else 0.0) + t.child_cpu
    share = used / ((os.cpu_count() or 1) * t.wall)
    return (
        f"{label:34s} {t.wall:7.2f} s {t.wall * ms:8.2f} ms {t.child_cpu * ms:9.2f} ms "
        f"{own} ms {share:8.0%}"
    )


@dataclass(frozen=True)
class Round:
    xargs: Timed
    engine: Timed
    plan_s: float
    durations: list[float]
    uncontained: Timed | None  # with --uncontained

    @property
    def ratio(self) -> float:
        return self.engine.wall / self.xargs.wall

    @property
    def uncontained_ratio(self) -> float | None:
        return None if self.uncontained is None else self.uncontained.wall / self.xargs.wall


def one_round(root: Path, dates: list[date], *, also_uncontained: bool) -> Round:
    """xargs, then the engine (then the engine uncontained): each on a fresh warehouse."""
    sides = ("xargs", "engine", "uncontained") if also_uncontained else ("xargs", "engine")
    for name in sides:
        build(root / name / "wh", dates)

    xargs = run_xargs(trivial_job(root / "xargs" / "wh" / "out.sqlite", "job", "{}"), dates)
    assert rows_written(root / "xargs" / "wh") == (ITEMS, ITEMS)

    engine, plan_s, config = engine_side(root / "engine", dates)
    bare = None
    if also_uncontained:
        with uncontained():
            bare = engine_side(root / "uncontained", dates)[0]
    return Round(xargs, engine, plan_s, attempt_seconds(config), bare)


def engine_side(folder: Path, dates: list[date]) -> tuple[Timed, float, Config]:
    """One engine run on the warehouse in `folder`, checked: (wall and CPU, planning, config)."""
    argv = trivial_job(folder / "wh" / "out.sqlite", "job", "{start}")
    (folder / "backfill.yaml").write_text(pipeline_text(dates, argv))
    config = load_config(folder / "backfill.yaml")
    engine, plan_s, complete, items = anyio.run(run_engine, config, dates, backend="asyncio")
    written = rows_written(folder / "wh")
    if not (complete and items == ITEMS and written == (ITEMS, ITEMS)):
        raise SystemExit(
            f"MISS: the engine run was wrong: complete={complete} items={items} rows={written}"
        )
    return engine, plan_s, config


def profile(root: Path, dates: list[date]) -> None:
    """One engine run under cProfile on the event loop thread's CPU clock (worker threads, the
    warehouse re-reads, are not in it)."""
    folder = root / "engine"
    build(folder / "wh", dates)
    argv = trivial_job(folder / "wh" / "out.sqlite", "job", "{start}")
    (folder / "backfill.yaml").write_text(pipeline_text(dates, argv))
    config = load_config(folder / "backfill.yaml")
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    engine, _, complete, items = anyio.run(run_engine, config, dates, backend="asyncio")
    profiler.disable()
    if not (complete and items == ITEMS):
        raise SystemExit(f"MISS: the engine run was wrong: complete={complete} items={items}")
    print(
        f"engine {engine.wall:.2f} s, engine CPU {engine.own_cpu * 1000 / ITEMS:.2f} ms per item "
        "(inflated by the profiler)"
    )
    for order, limit in (("tottime", 40), ("cumulative", 60)):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(limit)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="one profiled engine run")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="paired rounds (default 5)")
    parser.add_argument(
        "--uncontained",
        action="store_true",
        help="each round also runs the engine without containment: what containment costs",
    )
    args = parser.parse_args()
    dates = [FIRST + timedelta(days=i) for i in range(ITEMS)]
    rounds_wanted = max(1, args.rounds)
    print(
        f"{ITEMS} items, {PARALLEL} at a time, {os.cpu_count()} CPUs, "
        f"{'a profiled engine run' if args.profile else f'{rounds_wanted} paired rounds'}"
    )
    shown = trivial_job(Path("WAREHOUSE/out.sqlite"), "job", "{}")
    print("job: " + " ".join(f'"{a}"' if " " in a else a for a in shown))
    rounds = []
    # In memory (tmpfs) where there is one, and one folder for all rounds: on ext4, creating
    # thousands of files (the engine's attempt logs) within minutes of deleting thousands (the
    # last round's, or the last run's) is several times slower, as the allocator steps over
    # recently freed inodes. That would measure what ran before, not the engine.
    memory = Path("/dev/shm")
    where = str(memory) if memory.is_dir() and os.access(memory, os.W_OK) else None
    print(f"files in {where or tempfile.gettempdir()}")
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        if args.profile:
            profile(Path(tmp), dates)
            return
        for n in range(rounds_wanted):
            done = one_round(Path(tmp) / f"round-{n + 1}", dates, also_uncontained=args.uncontained)
            rounds.append(done)
            bare = done.uncontained_ratio
            also = "" if bare is None else f"; uncontained {bare:.2f}x"
            print(
                f"  round {n + 1}: xargs {done.xargs.wall:.2f} s, engine {done.engine.wall:.2f} s, "
                f"ratio {done.ratio:.2f}x{also}"
            )
    # The round with the median ratio is the one shown in detail.
    rounds.sort(key=lambda r: r.ratio)
    middle = rounds[len(rounds) // 2]
    xargs, engine, plan_s, durations = middle.xargs, middle.engine, middle.plan_s, middle.durations

    ratio = middle.ratio
    dispatch_s = engine.wall - plan_s
    header = (
        f"{'wall':>9s} {'per item':>11s} {'jobs CPU':>12s} {'engine CPU':>10s} {'CPUs used':>9s}"
    )
    print(f"\n{'':34s} {header}")
    print(row(f"xargs -P {PARALLEL}, the job alone", xargs))
    print(row("engine (construction to return)", engine, engine=True))
    if middle.uncontained is not None:
        print(row("engine uncontained (not a mode)", middle.uncontained, engine=True))
    print(
        "  (CPU per item: jobs = every process started and reaped, xargs included;\n"
        "   engine = the engine's own process, its worker threads included;\n"
        "   CPUs used = CPU time of the side over the wall time of all the machine's CPUs)"
    )
    print(f"  planning (coverage, plan, journaling {ITEMS} items): {plan_s:6.2f} s")
    print(f"  dispatch (spawn, wait, verify, journal):            {dispatch_s:6.2f} s")
    if durations:
        busy = sum(durations) / (dispatch_s * PARALLEL)
        print(
            f"  attempts as the engine timed them: median "
            f"{statistics.median(durations) * 1000:.1f} ms;\n  the {PARALLEL} slots held an "
            f"attempt {busy:.0%} of the dispatch time"
        )
    print(f"median ratio engine / xargs:      {ratio:5.2f}x   target <= {TARGET_RATIO}x")
    if args.uncontained:
        # Paired within each round, as the main ratio is.
        pairs = [(r.ratio, r.uncontained_ratio) for r in rounds if r.uncontained_ratio]
        gap = statistics.median(full - bare for full, bare in pairs)
        print(
            f"median ratio uncontained / xargs: {statistics.median(b for _, b in pairs):5.2f}x   "
            f"(containment adds {gap:.2f}x)"
        )
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    print(
        f"\n{verdict}: engine {engine.wall:.2f} s vs xargs -P {PARALLEL} {xargs.wall:.2f} s "
        f"= {ratio:.2f}x (target <= {TARGET_RATIO}x)"
    )


if __name__ == "__main__":
    main()
