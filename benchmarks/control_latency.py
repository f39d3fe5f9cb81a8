"""Control latency: `P` (pause) in an attached dashboard -> engine paused -> shown paused.

A run started from the command line (`backfill run START END --detach`: an engine process of
its own) on a synthetic pipeline in a temp folder: a SQLite warehouse, one source processor
complete on every date, then one phase of 8 processors x 40 one-day items = 320 items at
max_parallel 8. Dispatch goes by date, so the 8 attempts of the first day run: seven sleep for
10 minutes, the first processor's writes 20,000 lines a second to stdout. The real BackfillApp
(headless Pilot, 200x60) attaches at start-up; the queue's highlight is put on the flooding
attempt, so the log pane follows the flood. Then 20 times, a random 0.3-0.8 s apart:
  - pause: press `P` and time until the first frame handed to the driver whose status bar
    (`#status`) reads `paused`; separately, until the engine itself reports `paused` (a second,
    read-only client polling `snapshot(HEADER_ONLY)` every 5 ms from a thread of its own);
  - resume: press `P` again, the same until `running`.
Median, p95 and max of each. At the end the engine is stopped (`backfill stop --cancel-running`),
its lock must be released, and no job process may remain (their argv carries a marker, found
with pgrep).
Targets: on screen, median < 250 ms, p95 < 500 ms (pause and resume each).

Run: `uv run python benchmarks/control_latency.py` from the repository root (about 2 minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import anyio
from rich.console import RenderableType
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.screen import Screen

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.synthetic import (
    flood_pipeline,
    job_pids,
    kill_leftovers,
    percentile,
    until,
    wait_ended,
)
from core.config.loader import load_config
from core.engine.api import HEADER_ONLY, ItemState, Who
from core.service.client import EngineGone, RemoteEngine
from core.state import EngineLock
from tui.app import BackfillApp
from tui.widgets.log_tail import LogTail
from tui.widgets.queue_table import QueueTable

ROOT = Path(__file__).parents[1]
SIZE = (200, 60)
DAYS = 40
PROCESSORS = 8
ITEMS = DAYS * PROCESSORS
MAX_PARALLEL = 8
RATE = 20_000
TOGGLES = 20
POLL_SECONDS = 0.005
TARGET_MEDIAN_MS = 250.0
TARGET_P95_MS = 500.0
START = date(2024, 1, 1)
MARKER = f"backfill-control-latency-{os.getpid()}"
#: how often `until` checks its condition
UNTIL_STEP = 0.005


def backfill(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", *args, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class ControlApp(BackfillApp):
    """The dashboard, recording the run state its status bar showed in every frame."""

    CSS_PATH = str(Path(__file__).parents[1] / "tui" / "app.tcss")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        #: (time, state word of the status bar) for every screen update handed to the driver
        self.frames: list[tuple[float, str]] = []

    def shown_state(self) -> str:
        """The state the status bar reads now: its first word after the dot."""
        try:
            text = str(self.screen_stack[0].query_one("#status").render())
        except (NoMatches, IndexError):
            return ""
        return text.removeprefix("● ").split(" ", 1)[0]

    def _display(self, screen: Screen[object], renderable: RenderableType | None) -> None:
        if renderable is not None:
            self.frames.append((time.perf_counter(), self.shown_state()))
        super()._display(screen, renderable)


class EngineWatch:
    """A second client of the engine, read-only, in a thread with its own event loop: polls
    `snapshot(HEADER_ONLY)` every POLL_SECONDS and records when the engine's state changed."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        #: (time first seen, state)
        self.changes: list[tuple[float, str]] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: anyio.run(self._watch), daemon=True)

    def __enter__(self) -> EngineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    async def _watch(self) -> None:
        engine = await RemoteEngine.connect(self.state_dir, Who.me("benchmark"), read_only=True)
        try:
            while not self._stop.is_set():
                snap = await engine.snapshot(HEADER_ONLY)
                self.polls += 1
                if not self.changes or self.changes[-1][1] != snap.state:
                    self.changes.append((time.perf_counter(), snap.state))
                await anyio.sleep(POLL_SECONDS)
        except EngineGone:
            pass
        finally:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await engine.aclose()

    def first(self, state: str, after: float) -> float | None:
        return next((at for at, s in self.changes if s == state and at >= after), None)


def summary(name: str, values: list[float], target: bool) -> str:
    line = (
        f"{name}: median {statistics.median(values):6.1f} ms, "
        f"p95 {percentile(values, 0.95):6.1f} ms, max {max(values):6.1f} ms"
    )
    if target:
        line += f"   target median < {TARGET_MEDIAN_MS:.0f} ms, p95 < {TARGET_P95_MS:.0f} ms"
    return line


async def toggle(
    pilot: Pilot[None], app: ControlApp, watch: EngineWatch, state: str
) -> tuple[float, float]:
    """Press P; ms until the engine reports `state`, and until a frame shows it."""
    pressed = time.perf_counter()
    await pilot.press("P")

    def drawn() -> bool:
        return any(s == state and at >= pressed for at, s in app.frames[-50:])

    await until(pilot, drawn, timeout=10, step=UNTIL_STEP)
    frame = next(at for at, s in app.frames if s == state and at >= pressed)
    await until(pilot, lambda: watch.first(state, pressed) is not None, timeout=10, step=UNTIL_STEP)
    engine = watch.first(state, pressed)
    assert engine is not None
    return (engine - pressed) * 1000, (frame - pressed) * 1000


async def measure(folder: Path) -> tuple[list[float], list[float], bool]:
    config_path = flood_pipeline(
        folder,
        name="control latency benchmark",
        start=START,
        days=DAYS,
        processors=PROCESSORS,
        max_parallel=MAX_PARALLEL,
        marker=MARKER,
    )
    config = load_config(config_path)
    begun = time.perf_counter()
    started = backfill(config_path, "run", str(START), str(START + timedelta(DAYS - 1)), "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    print(
        f"`backfill run --detach` ({time.perf_counter() - begun:.1f} s): {started.stdout.strip()}"
    )
    lock = EngineLock(config.state_path)
    app = ControlApp(config)
    rng = random.Random(5)
    left: list[int] = []
    try:
        async with app.run_test(size=SIZE) as pilot:

            def ready() -> bool:
                snap = app.session.snapshot
                return (
                    app.session.engine is not None
                    and snap is not None
                    and snap.count(ItemState.RUNNING) == MAX_PARALLEL
                    and app.query_one(QueueTable).row_count == ITEMS
                    and app.shown_state() == "running"
                )

            await until(pilot, ready, timeout=60, step=UNTIL_STEP)
            engine = app.session.engine
            assert engine is not None
            flood = next(
                v
                for v in app.session.items.values()
                if v.processor == "p00" and v.state is ItemState.RUNNING and v.log_path
            )
            queue = app.query_one(QueueTable)
            row = queue.row_of(flood.id)
            assert row is not None and flood.log_path is not None
            queue.focus()
            queue.move_cursor(row=row)
            tail = app.query_one(LogTail)
            await until(pilot, lambda: tail.path == flood.log_path, timeout=10, step=UNTIL_STEP)
            await asyncio.sleep(1.0)  # the flood at steady state in the pane
            print(
                f"dashboard attached to engine pid {engine.info.pid} (this process "
                f"{os.getpid()}); {MAX_PARALLEL} attempts running, the log pane follows "
                f"{flood.processor} {flood.dates[0]}"
            )

            pause_engine, pause_shown, resume_engine, resume_shown = [], [], [], []
            running: list[int] = []
            size0, flood_started = flood.log_path.stat().st_size, time.perf_counter()
            with EngineWatch(config.state_path) as watch:
                await until(pilot, lambda: bool(watch.changes), timeout=10, step=UNTIL_STEP)
                for _ in range(TOGGLES):
                    await asyncio.sleep(rng.uniform(0.3, 0.8))
                    at_engine, at_screen = await toggle(pilot, app, watch, "paused")
                    pause_engine.append(at_engine)
                    pause_shown.append(at_screen)
                    snap = app.session.snapshot
                    running.append(0 if snap is None else snap.count(ItemState.RUNNING))
                    await asyncio.sleep(rng.uniform(0.3, 0.8))
                    at_engine, at_screen = await toggle(pilot, app, watch, "running")
                    resume_engine.append(at_engine)
                    resume_shown.append(at_screen)
                flood_end = time.perf_counter()
                polls = watch.polls
            with open(flood.log_path, "rb") as handle:
                handle.seek(size0)
                grown = handle.read().count(b"\n")
            seconds = flood_end - flood_started
            print(
                f"{TOGGLES} pauses and resumes over {seconds:.1f} s; flood {grown / seconds:,.0f} "
                f"lines/s, pane holds {tail.log_widget.line_count:,} lines; attempts running "
                f"while paused: {min(running)}-{max(running)}; engine polled {polls:,} times "
                f"by the watcher"
            )
            print()
            print(summary("pause:  P ->     shown paused  ", pause_shown, target=True))
            print(summary("        P ->     engine paused ", pause_engine, target=False))
            print(summary("resume: P ->     shown running ", resume_shown, target=True))
            print(summary("        P ->     engine running", resume_engine, target=False))
            after = [
                s - e
                for s, e in zip(
                    pause_shown + resume_shown, pause_engine + resume_engine, strict=True
                )
            ]
            print(summary("        engine -> shown (both) ", after, target=False))

            # Stop the engine from the command line; neither it nor any job may outlive it.
            before = len(job_pids(MARKER))
            stopping = time.perf_counter()
            stopped = backfill(config_path, "stop", "--cancel-running")
            left, owner = await wait_ended(pilot, lock, MARKER)
            print(
                f"\n`backfill stop --cancel-running` (exit {stopped.returncode}: "
                f"{stopped.stdout.strip() or stopped.stderr.strip()}): {before} job processes "
                f"before, {len(left)} left {time.perf_counter() - stopping:.1f} s later; engine "
                f"{'still holds the lock' if owner is not None else 'exited, lock released'}"
            )
            left += [owner] if owner is not None else []
            await pilot.pause(0.5)
    finally:
        # Only if stopping failed: our own engine and jobs, by pid.
        kill_leftovers(lock, MARKER)
    return pause_shown, resume_shown, not left


def main() -> None:
    print(
        f"BackfillApp {SIZE[0]}x{SIZE[1]} attached to a detached engine: {PROCESSORS} processors "
        f"x {DAYS} days = {ITEMS} items at max_parallel {MAX_PARALLEL}; one running job writes "
        f"{RATE:,} lines/s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        pause, resume, clean = asyncio.run(measure(Path(tmp)))
    medians = statistics.median(pause), statistics.median(resume)
    p95s = percentile(pause, 0.95), percentile(resume, 0.95)
    ok = max(medians) < TARGET_MEDIAN_MS and max(p95s) < TARGET_P95_MS and clean
    verdict = "PASS" if ok else "MISS"
    print(
        f"\n{verdict}: pause shown median {medians[0]:.0f} ms / p95 {p95s[0]:.0f} ms, resume "
        f"shown median {medians[1]:.0f} ms / p95 {p95s[1]:.0f} ms, "
        f"{'no' if clean else 'SOME'} engine or job processes left"
    )


if __name__ == "__main__":
    main()
