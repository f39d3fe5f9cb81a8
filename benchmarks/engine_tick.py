"""Does an attached dashboard's tick cost what changed, not the size of the run? Over the socket.

For 300, 3,000 and 30,000 work items (1 x 300 days, 1 x 3,000 days, 10 processors x 3,000
days), builds a SQLite warehouse in a temp folder (tmpfs /dev/shm where it is writable: a source
table with a row on every date, empty output tables) and a config whose runnable phase has
`max_parallel: 8`, `chunk_days: 1`, and a job that sleeps for ten minutes (its argv carries a
token unique to this run). The engine is a process of its own, started as the dashboard's `s`
starts it (`start_detached` on `run_args(RunRequest(first, last))`: `backfill run ... --headless`
in a session of its own); the benchmark waits until 8 attempts run. This process is then the
dashboard: `Session.open`, its coverage (`refresh_coverage` + `adopt_refresh`), `attach()` to
the engine through its socket, and a `QueueModel` (the queue table's model, without a terminal).

One tick is what the dashboard's `_tick` does with the engine: `await Session.poll()` (a
`snapshot(since)` round trip to the engine with the version last seen, decoded, folded into the
session's items, overlay and grid) plus `QueueModel.apply(taken)`. First the first fill is
drained (every item, since 0, taken in PER_POLL items per poll: its slowest poll and its bytes
are shown for context). Then the steady state: the sleepers run throughout, so the delta is
(nearly) empty and a tick shows what attaching costs per tick regardless of what changed.
150 ticks per size on the dashboard's 4 Hz clock (0.25 s apart): per tick, its time (median and
p95) and the bytes the client received on the channel (every answer line the client decodes is
counted, newline included: `core.service.client.decode` is wrapped for the run); over the
steady window, the CPU this (dashboard) process used per wall second (getrusage, user + sys,
sleeps included: what an idle attached dashboard costs), and the engine process's for context
(/proc/PID/stat). Then `Stop(cancel_running=True)` through a RemoteEngine, a wait until the
state_dir's lock is free (the engine ended), and a check that no sleeper is left.

Run: `uv run python benchmarks/engine_tick.py` (about 3 minutes); `--profile` adds a cProfile
of the 30,000-item steady ticks (client side: poll, decode, fold, apply).
Targets: the 30,000-item tick within 3x the 300-item tick, and under 5 ms; the bytes per steady
tick and the dashboard's CPU per second, 30,000 : 300, each within 3x.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import anyio.to_thread

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.synthetic import config_text, create_source
from core.config import Config, load_config
from core.engine.api import HEADER_ONLY, ItemState, RunRequest, Stop, Who
from core.service import client, protocol
from core.service.client import RemoteEngine
from core.service.detach import Started, last_words, run_args, start_detached
from core.state import EngineLock
from core.warehouse import sqlite_layout
from tui.session import Session
from tui.widgets.queue_table import QueueModel

#: (items, processors): items / processors days each
SIZES = ((300, 1), (3_000, 1), (30_000, 10))
PARALLEL = 8
TICKS = 150
#: the dashboard's clock (tui/app.py TICK_SECONDS)
TICK_S = 0.25
FIRST = date(2015, 1, 1)
TARGET_RATIO = 3.0
TARGET_MS = 5.0
#: how long the engine may take to have 8 attempts running, and to end once stopped
UP_S = 120.0
DOWN_S = 60.0
TOKEN = f"engine-tick-{uuid.uuid4().hex[:12]}"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sleeper_argv() -> list[str]:
    return ["{python}", "-c", f"import time; time.sleep(600)  # {TOKEN}"]


def build(folder: Path, days: list[date], processors: int) -> Config:
    wh = folder / "wh"
    conn = sqlite_layout.connect(wh, ["src", "out"], readonly=False)
    try:
        create_source(conn, days)
        for n in range(processors):
            conn.execute(f"CREATE TABLE out.job{n} (d TEXT)")
        conn.commit()
    finally:
        conn.close()
    jobs = "".join(
        f"""
      - name: job{n}
        table: out.job{n}
        date_column: d
        depends_on: [base]
        chunk_days: 1
        retries: 0
        stall_timeout: 86400
        command: {json.dumps(sleeper_argv())}"""
        for n in range(processors)
    )
    phases = f"""  - name: work
    max_parallel: {PARALLEL}
    processors:{jobs}
"""
    text = config_text("engine-tick-bench", days, phases)
    (folder / "backfill.yaml").write_text(text)
    return load_config(folder / "backfill.yaml")


class Wire:
    """Counts what the client receives: every answer line it decodes, newline included."""

    def __init__(self) -> None:
        self.received = 0
        self._decode = protocol.decode

    def decode(self, line: bytes) -> dict[str, Any]:
        self.received += len(line) + 1
        return self._decode(line)


WIRE = Wire()


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds (user + sys) of another process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass(frozen=True)
class Result:
    items: int
    up_s: float  # start_detached to 8 attempts running
    fill_polls: int  # polls the first fill took
    fill_slowest_ms: float  # the slowest of them
    fill_bytes: int
    ticks_ms: list[float]
    tick_bytes: list[int]
    changed: int  # items in the deltas of all the steady ticks
    cpu_per_s: float  # this (dashboard) process, CPU seconds per wall second, steady window
    engine_cpu_per_s: float

    @property
    def median(self) -> float:
        return statistics.median(self.ticks_ms)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.ticks_ms, n=20)[-1]

    @property
    def bytes_median(self) -> float:
        return statistics.median(self.tick_bytes)


async def wait_running(state_dir: Path, items: int) -> None:
    """Until the engine has PARALLEL attempts running (and every item planned)."""
    engine = await RemoteEngine.connect(state_dir, Who.me("cli"))
    try:
        deadline = time.monotonic() + UP_S
        while True:
            snap = await engine.snapshot(HEADER_ONLY)
            if snap.count(ItemState.RUNNING) >= PARALLEL and snap.total == items:
                return
            if snap.state in ("finished", "failed") or time.monotonic() > deadline:
                raise SystemExit(
                    f"MISS: {PARALLEL} attempts never ran: {snap.state}, {dict(snap.counts)}"
                )
            await anyio.sleep(0.05)
    finally:
        await engine.aclose()


async def stop(state_dir: Path, started: Started) -> None:
    """Stop(cancel_running=True) through a RemoteEngine; wait until the engine let go of the
    state_dir (its lock is free), then reap it (it is our child, in a session of its own)."""
    try:
        engine = await RemoteEngine.connect(state_dir, Who.me("cli"))
        try:
            reply = await engine.submit(Stop(cancel_running=True))
        finally:
            await engine.aclose()
        if not reply.ok:
            raise SystemExit(f"MISS: the engine refused Stop: {reply.message}")
        lock = EngineLock(state_dir)
        deadline = time.monotonic() + DOWN_S
        while lock.owner() is not None:
            if time.monotonic() > deadline:
                raise SystemExit(f"MISS: the engine (pid {started.pid}) still runs after Stop")
            await anyio.sleep(0.05)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(started.pid, signal.SIGKILL)
        raise
    finally:
        deadline = time.monotonic() + DOWN_S
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(started.pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                await anyio.sleep(0.05)


async def measure(
    config: Config, days: list[date], items: int, profile: cProfile.Profile | None
) -> Result:
    state_dir = config.state_path
    began = time.perf_counter()
    request = RunRequest(days[0], days[-1])
    started = await start_detached(state_dir, config.path.absolute(), run_args(request))
    try:
        await wait_running(state_dir, items)
        up_s = time.perf_counter() - began
        session = Session.open(config, read_only=False)
        try:
            return await attached(session, items, up_s, started.pid, profile)
        finally:
            await session.detach()
            session.close()
    except BaseException:
        print(f"  the engine's last words: {last_words(state_dir, 5)}")
        raise
    finally:
        await stop(state_dir, started)


async def attached(
    session: Session, items: int, up_s: float, engine_pid: int, profile: cProfile.Profile | None
) -> Result:
    fresh = await anyio.to_thread.run_sync(session.refresh_coverage)
    session.adopt_refresh(fresh, save=False)
    if not await session.attach():
        raise SystemExit("MISS: no engine to attach to")
    queue = QueueModel()
    # The first polls take in every item (a big first snapshot is taken in over several polls):
    # drain that before the steady state, timing it for context.
    fill_polls, fill_slowest, fill_from = 0, 0.0, WIRE.received
    while len(session.items) < items or len(queue.items) < items:
        started = time.perf_counter()
        _, taken = await session.poll()
        queue.apply(taken)
        fill_slowest = max(fill_slowest, (time.perf_counter() - started) * 1000)
        fill_polls += 1
        if session.gone is not None or fill_polls > items:
            raise SystemExit(f"MISS: {len(session.items)} items, expected {items}: {session.gone}")
        await anyio.sleep(TICK_S)
    fill_bytes = WIRE.received - fill_from

    ticks: list[float] = []
    tick_bytes: list[int] = []
    changed = 0
    engine_cpu0 = process_cpu(engine_pid)
    cpu0 = _cpu(resource.getrusage(resource.RUSAGE_SELF))
    wall0 = time.perf_counter()
    for n in range(TICKS):
        await anyio.sleep(max(0.0, wall0 + (n + 1) * TICK_S - time.perf_counter()))
        received = WIRE.received
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        _, taken = await session.poll()
        queue.apply(taken)
        ticks.append((time.perf_counter() - started) * 1000)
        if profile is not None:
            profile.disable()
        tick_bytes.append(WIRE.received - received)
        changed += len(taken)
    wall = time.perf_counter() - wall0
    cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - cpu0
    engine_cpu = process_cpu(engine_pid) - engine_cpu0

    snap = session.snapshot
    if session.gone is not None or snap is None:
        raise SystemExit(f"MISS: the engine went away during the ticks: {session.gone}")
    if snap.count(ItemState.RUNNING) != PARALLEL:
        raise SystemExit(f"MISS: running dropped to {snap.count(ItemState.RUNNING)}")
    return Result(
        items,
        up_s,
        fill_polls,
        fill_slowest,
        fill_bytes,
        ticks,
        tick_bytes,
        changed,
        cpu / wall,
        engine_cpu / wall,
    )


def sleepers_left() -> list[str]:
    """`pid argv` of the processes whose argv holds this run's token."""
    found = subprocess.run(["pgrep", "-af", TOKEN], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def kill_sleepers() -> None:
    """After a failed measurement: end the sleepers this run started (their token is ours)."""
    for line in sleepers_left():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    profile = cProfile.Profile() if "--profile" in sys.argv[1:] else None
    memory = Path("/dev/shm")
    where = str(memory) if memory.is_dir() and os.access(memory, os.W_OK) else None
    print(
        f"{PARALLEL} attempts running (sleepers) in an engine process; {TICKS} ticks per size, "
        f"{TICK_S}s apart; {os.cpu_count()} CPUs; files in {where or tempfile.gettempdir()}"
    )
    print("tick = await Session.poll() (snapshot(since) over the socket + fold into")
    print("       items/overlay/grid) + QueueModel.apply(taken)")
    results: list[Result] = []
    with (
        mock.patch.object(client, "decode", WIRE.decode),
        tempfile.TemporaryDirectory(dir=where) as tmp,
    ):
        for items, processors in SIZES:
            n_days = items // processors
            days = [FIRST + timedelta(days=i) for i in range(n_days)]
            folder = Path(tmp) / f"n{items}"
            folder.mkdir()
            config = build(folder, days, processors)
            try:
                result = anyio.run(
                    measure,
                    config,
                    days,
                    items,
                    profile if items == SIZES[-1][0] else None,
                    backend="asyncio",
                )
            except BaseException:
                kill_sleepers()
                raise
            results.append(result)
            left = sleepers_left()
            if left:
                kill_sleepers()
                raise SystemExit(f"MISS: sleepers left after Stop(cancel_running=True): {left}")
            print(
                f"  {items:>6,} items ({processors} x {n_days:,} days): 8 running after "
                f"{result.up_s:.1f} s; median tick {result.median:.3f} ms, "
                f"changed items seen {result.changed}"
            )

    print(
        f"\n{'items':>8s} {'median':>10s} {'p95':>10s} {'max':>10s} {'bytes/tick':>11s} "
        f"{'CPU/s':>9s} {'engine CPU/s':>13s}   {'first fill: slowest poll (polls), bytes':s}"
    )
    for r in results:
        print(
            f"{r.items:>8,} {r.median:>7.3f} ms {r.p95:>7.3f} ms {max(r.ticks_ms):>7.3f} ms "
            f"{r.bytes_median:>11,.0f} {r.cpu_per_s * 1000:>6.1f} ms "
            f"{r.engine_cpu_per_s * 1000:>10.1f} ms   "
            f"{r.fill_slowest_ms:>8.1f} ms ({r.fill_polls}), {r.fill_bytes:,}"
        )
    print("  (CPU/s: CPU ms per wall second over the steady window, sleeps included;")
    print("   the dashboard = this process; the engine's is for context)")
    small, big = results[0], results[-1]
    tick_ratio = big.median / small.median
    bytes_ratio = big.bytes_median / small.bytes_median
    cpu_ratio = big.cpu_per_s / small.cpu_per_s
    remaining = len(sleepers_left())
    print(
        f"\nratio 30,000 : 300, tick (median):     {tick_ratio:5.2f}x   target <= {TARGET_RATIO}x"
    )
    print(f"30,000-item tick (median):             {big.median:5.2f} ms  target < {TARGET_MS} ms")
    print(f"30,000-item tick (p95):                {big.p95:5.2f} ms")
    print(f"ratio 30,000 : 300, bytes/tick:        {bytes_ratio:5.2f}x   target <= {TARGET_RATIO}x")
    print(f"ratio 30,000 : 300, dashboard CPU/s:   {cpu_ratio:5.2f}x   target <= {TARGET_RATIO}x")
    print(f"sleepers left after Stop:              {remaining}")

    print(
        f"\n{verdict(tick_ratio <= TARGET_RATIO and big.median < TARGET_MS)}: 30,000-item tick "
        f"{big.median:.2f} ms (p95 {big.p95:.2f} ms) vs 300-item {small.median:.2f} ms = "
        f"{tick_ratio:.2f}x (targets <= {TARGET_RATIO}x, < {TARGET_MS} ms)"
    )
    print(
        f"{verdict(bytes_ratio <= TARGET_RATIO)}: bytes per steady tick {big.bytes_median:,.0f} "
        f"vs {small.bytes_median:,.0f} = {bytes_ratio:.2f}x (target <= {TARGET_RATIO}x)"
    )
    print(
        f"{verdict(cpu_ratio <= TARGET_RATIO)}: dashboard CPU {big.cpu_per_s * 1000:.1f} ms/s "
        f"vs {small.cpu_per_s * 1000:.1f} ms/s = {cpu_ratio:.2f}x (target <= {TARGET_RATIO}x)"
    )
    print(f"{verdict(remaining == 0)}: {remaining} sleepers left after Stop(cancel_running=True)")

    if profile is not None:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("cumulative").print_stats(25)
        print(f"\ncProfile of the {big.items:,}-item steady ticks (client side):\n{out.getvalue()}")


if __name__ == "__main__":
    main()
