"""Is the ETA honest? A synthetic run whose job durations are known, predicted vs actual.

Builds a SQLite warehouse in a temp folder: a source with a row on every day, phase `load`
(three processors of one-day items whose jobs sleep 0.3 s, 0.5 s and 0.2 s, each +-30 %
at random, max_parallel 4) and phase `model` (two processors depending on all of `load`, jobs of
0.6 s and 0.4 s +-30 %, max_parallel 2). The engine runs in this process (`local_engine`); its
snapshot is read every 0.25 s. At 10, 50 and 90 % of items done, the forecast's remaining time
(estimate and range) is set against the time the run really took from there.

Run: `uv run python benchmarks/eta_accuracy.py [--days N]` (default 40 days: about a minute).
Target: the estimate within 20 % of the actual remaining time at 50 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.synthetic import config_text, create_source
from core.config import load_config
from core.engine.api import ItemState, RunRequest, local_engine
from core.progress import Forecast
from core.state import Journal
from core.warehouse import open_warehouse, sqlite_layout

FIRST = date(2022, 1, 1)
LOAD = {"a": 0.3, "b": 0.5, "c": 0.2}
MODEL = {"m": 0.6, "n": 0.4}
CHECKPOINTS = (0.10, 0.50, 0.90)
TARGET = 0.20
# No braces in the job: the engine reads them as placeholders.
JOB = """
import random, sqlite3, sys, time
table, day, db, mean = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
time.sleep(mean * random.uniform(0.7, 1.3))
c = sqlite3.connect(db, timeout=30)
c.execute("INSERT INTO %s VALUES (?)" % table, (day,))
c.commit()
"""


def build(folder: Path, days: list[date]) -> Path:
    wh = folder / "wh"
    conn = sqlite_layout.connect(wh, ["src", "out"], readonly=False)
    try:
        create_source(conn, days)
        for name in [*LOAD, *MODEL]:
            conn.execute(f"CREATE TABLE out.{name} (d TEXT)")
        conn.commit()
    finally:
        conn.close()

    def processor(name: str, mean: float, depends: list[str]) -> str:
        argv = ["{python}", "-c", JOB, name, "{start}", str(wh / "out.sqlite"), str(mean)]
        return f"""
      - name: {name}
        table: out.{name}
        date_column: d
        depends_on: {json.dumps(depends)}
        chunk_days: 1
        retries: 0
        command: {json.dumps(argv)}"""

    load = "".join(processor(n, s, ["base"]) for n, s in LOAD.items())
    model = "".join(processor(n, s, list(LOAD)) for n, s in MODEL.items())
    phases = f"""  - name: load
    max_parallel: 4
    processors:{load}
  - name: model
    max_parallel: 2
    processors:{model}
"""
    path = folder / "backfill.yaml"
    path.write_text(config_text("eta-accuracy", days, phases))
    return path


@dataclass(frozen=True)
class Reading:
    at: float
    done: int
    total: int
    forecast: Forecast


async def run(config_path: Path, days: list[date]) -> tuple[list[Reading], float]:
    config = load_config(config_path)
    journal = Journal(config.state_path)
    warehouse = open_warehouse(config)
    engine = local_engine(config, warehouse, RunRequest(days[0], days[-1]), journal=journal)
    readings: list[Reading] = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while True:
                snap = engine.snapshot(-1)
                if snap.total:
                    readings.append(
                        Reading(
                            time.monotonic(), snap.count(ItemState.DONE), snap.total, snap.forecast
                        )
                    )
                await anyio.sleep(0.25)

        tg.start_soon(watch)
        result = await engine.run()
        ended = time.monotonic()
        tg.cancel_scope.cancel()
    journal.close()
    warehouse.close()
    if not result.complete:
        raise SystemExit("MISS: the run did not complete")
    return readings, ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=40)
    args = parser.parse_args()
    days = [FIRST + timedelta(days=i) for i in range(args.days)]
    with tempfile.TemporaryDirectory() as tmp:
        readings, ended = anyio.run(run, build(Path(tmp), days), days, backend="asyncio")
    total = readings[-1].total
    print(f"{total} items: {len(LOAD)} x {args.days} in load (parallel 4), then {len(MODEL)} x")
    print(f"{args.days} in model (parallel 2); run took {ended - readings[0].at:.1f} s\n")
    head = ("done", "status", "predicted", "range", "actual", "error")
    print("{:>6s} {:>9s} {:>10s} {:>16s} {:>8s} {:>7s}".format(*head))
    errors: dict[float, float] = {}
    for share in CHECKPOINTS:
        r = next(r for r in readings if r.done >= share * r.total)
        actual = ended - r.at
        f = r.forecast
        if f.eta_seconds is None:
            print(f"{share:6.0%} {f.status:>9s} {'--':>10s} {'':>16s} {actual:7.1f}s")
            continue
        error = (f.eta_seconds - actual) / actual
        errors[share] = error
        span = f"{f.eta_low:.1f}-{f.eta_high:.1f}s"
        print(
            f"{share:6.0%} {f.status:>9s} {f.eta_seconds:9.1f}s {span:>16s} {actual:7.1f}s "
            f"{error:+7.0%}"
        )
    middle = errors.get(0.50)
    ok = middle is not None and abs(middle) <= TARGET
    print(
        f"\n{'PASS' if ok else 'MISS'}: at 50 % the estimate is "
        + (f"{middle:+.0%} off" if middle is not None else "missing")
        + f" (target within {TARGET:.0%})"
    )


if __name__ == "__main__":
    main()
