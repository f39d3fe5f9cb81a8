"""Does a flooding job make the dashboard sluggish? Key-press latency under 20,000 lines/s.

A real subprocess writes 20,000 lines a second (about 80 bytes each, 1.6 MB/s) into a log file
that a LogTail follows inside a headless Pilot app of 200x60. The app has one binding that
updates a Static. In the same run:
  - latency: 30 presses of that key, spread over the flood, each timed from the press to the
    first screen update (the compositor's frame handed to the driver) drawn after the action
    ran, i.e. when the operator would see it; median and p95;
  - the flood is followed, not dropped on the floor: how many lines the widget holds (bounded by
    max_lines), how many Log writes a second it made (bounded by the poll), how long it takes to
    show the job's last line after the job stops;
  - idle CPU: the same app over 10 s with the file no longer growing, from this process's CPU
    time (all threads) over wall time.
Targets: p95 latency < 100 ms, idle CPU < 3%.

Run: `uv run python benchmarks/log_flood.py` (about 30 seconds).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from rich.console import RenderableType
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Log, Static

from tui.widgets.log_tail import LogTail

SIZE = (200, 60)
RATE = 20_000
PRESSES = 30
IDLE_SECONDS = 10.0
TARGET_P95_MS = 100.0
TARGET_IDLE_CPU = 3.0

# Writes `rate` lines a second in 5 ms batches until the stop file appears, then "DONE".
JOB = """
import os, sys, time
path, stop, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = open(path, "w", buffering=1 << 16)
start = time.monotonic()
n = 0
while not os.path.exists(stop):
    target = int((time.monotonic() - start) * rate)
    while n < target:
        out.write(f"2024-01-20T12:00:00.{n % 1000:03d} INFO box date=2024-01-20 row={n} ok\\n")
        n += 1
    out.flush()
    time.sleep(0.005)
out.write("DONE\\n")
out.close()
print(n, time.monotonic() - start)
"""


class FloodApp(App[None]):
    """A LogTail and a counter the benchmark's key bumps; records when frames reach the driver."""

    BINDINGS: ClassVar[list[BindingType]] = [("x", "bump", "Bump")]

    def __init__(self) -> None:
        super().__init__()
        self.presses = 0
        #: (time, presses handled) for every screen update handed to the driver
        self.frames: list[tuple[float, int]] = []
        self.log_writes: list[float] = []

    def compose(self) -> ComposeResult:
        yield Static("presses: 0", id="counter")
        yield LogTail()

    def on_mount(self) -> None:
        log = self.query_one(LogTail).log_widget
        log.focus()
        write_lines = log.write_lines

        def counted(lines: Iterable[str], scroll_end: bool | None = None) -> Log:
            self.log_writes.append(time.perf_counter())
            return write_lines(lines, scroll_end)

        log.write_lines = counted  # type: ignore[method-assign]

    def action_bump(self) -> None:
        self.presses += 1
        self.query_one("#counter", Static).update(f"presses: {self.presses}")

    def _display(self, screen: Screen[object], renderable: RenderableType | None) -> None:
        if renderable is not None:
            self.frames.append((time.perf_counter(), self.presses))
        super()._display(screen, renderable)


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure(folder: Path) -> tuple[float, float]:
    log_path, stop = folder / "attempt.log", folder / "stop"
    app = FloodApp()
    rng = random.Random(3)
    async with app.run_test(size=SIZE) as pilot:
        tail = app.query_one(LogTail)
        tail.follow(log_path, title="flood")
        job = subprocess.Popen(
            [sys.executable, "-c", JOB, str(log_path), str(stop), str(RATE)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            await asyncio.sleep(1.0)  # let the flood reach steady state
            flood_started = time.perf_counter()
            latencies, line_counts = [], []
            for _ in range(PRESSES):
                target = app.presses + 1
                pressed = time.perf_counter()
                await pilot.press("x")

                def shown_now(t: int = target, p: float = pressed) -> bool:
                    return any(n >= t and at >= p for at, n in app.frames[-20:])

                shown = await until(shown_now, timeout=5)
                assert shown, "the key press never reached the screen"
                frame = next(at for at, n in app.frames if n >= target and at >= pressed)
                latencies.append((frame - pressed) * 1000)
                line_counts.append(tail.log_widget.line_count)
                await asyncio.sleep(rng.uniform(0.05, 0.2))
            flood_seconds = time.perf_counter() - flood_started
            writes = [t for t in app.log_writes if t >= flood_started]
            stop.touch()
            stopped = time.perf_counter()
            out, _ = job.communicate(timeout=10)
            written, job_seconds = out.split()
            caught_up = await until(lambda: tail.log_widget.lines[-1:] == ["DONE"], timeout=10)
            catch_up = time.perf_counter() - stopped
        finally:
            if job.poll() is None:
                job.kill()
        print(
            f"job: {int(written):,} lines in {float(job_seconds):.1f} s "
            f"({int(written) / float(job_seconds):,.0f} lines/s, "
            f"{log_path.stat().st_size / 1e6:.0f} MB)"
        )
        print(
            f"widget: at most {max(line_counts):,} lines held (max_lines {tail.max_lines:,}); "
            f"{len(writes) / flood_seconds:.1f} Log writes/s; "
            f"last line shown {catch_up * 1000:.0f} ms after the job stopped"
            + ("" if caught_up else " (NEVER)")
        )

        median, p95 = statistics.median(latencies), percentile(latencies, 0.95)
        print(
            f"\nkey press to screen during the flood, {PRESSES} presses: "
            f"median {median:.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms   "
            f"target p95 < {TARGET_P95_MS:.0f} ms"
        )

        await asyncio.sleep(1.0)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(IDLE_SECONDS)
        idle = (time.process_time() - cpu) / (time.perf_counter() - wall) * 100
        print(
            f"idle CPU over {IDLE_SECONDS:.0f} s (file not growing, still polled): "
            f"{idle:.2f}%   target < {TARGET_IDLE_CPU:.0f}%"
        )
        assert caught_up and max(line_counts) <= tail.max_lines
    return p95, idle


def main() -> None:
    print(f"LogTail following a job writing {RATE:,} lines/s, app {SIZE[0]}x{SIZE[1]}")
    with tempfile.TemporaryDirectory() as tmp:
        p95, idle = asyncio.run(measure(Path(tmp)))
    ok = p95 < TARGET_P95_MS and idle < TARGET_IDLE_CPU
    verdict = "PASS" if ok else "MISS"
    print(f"\n{verdict}: p95 key-press latency {p95:.0f} ms, idle CPU {idle:.1f}%")


if __name__ == "__main__":
    main()
