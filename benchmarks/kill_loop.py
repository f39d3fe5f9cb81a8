"""Does a run survive its engine being killed again and again? `kill -9` of a headless engine
N times at random moments, then one last run to the end.

Builds a SQLite warehouse in a temp folder: a source `src.base` with a row on every day, phase
`load` (processor `a`, max_parallel 4) and phase `model` (`b`, depending on `a`, max_parallel 2),
one-day items. Each job sleeps 0.2 to 0.8 s, inserts its row and appends "processor day" to a
ledger (its commit). Round i starts `backfill run --headless` in its own session, waits a random
0.3 to 2.5 s (seeded), and SIGKILLs the engine alone: its running jobs live on, for the next
engine to adopt.
After N kills, a last engine runs uninterrupted. Then:
  - kills survived: kills after which the next engine resumed (exit 0, 1 or -9, never 2 or a
    traceback) and the run ended complete;
  - duplicates: cells committed more than once (the ledger) — a complete cell re-run;
  - lost: cells not complete in the warehouse at the end;
  - orphans: jobs still running after the last engine ended.
Target: N survived, 0 duplicates, 0 lost, 0 orphans.

Run: `uv run python benchmarks/kill_loop.py [--kills N] [--seed S]` (default N=20).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.synthetic import config_text, create_source, job_pids
from core.warehouse import sqlite_layout

ROOT = Path(__file__).parents[1]
FIRST = date(2020, 1, 1)
# No braces: the engine reads them as placeholders ({start}, ...).
JOB = """
import random, sqlite3, sys, time
table, day, db, ledger = sys.argv[1:5]
time.sleep(random.uniform(0.2, 0.8))
c = sqlite3.connect(db, timeout=30)
c.execute("INSERT INTO %s VALUES (?)" % table, (day,))
c.commit()
with open(ledger, "a") as f:
    f.write("%s %s\\n" % (table, day))
"""


def build(folder: Path, days: list[date], marker: str) -> Path:
    wh = folder / "wh"
    conn = sqlite_layout.connect(wh, ["src", "out"], readonly=False)
    try:
        create_source(conn, days)
        conn.execute("CREATE TABLE out.a (d TEXT)")
        conn.execute("CREATE TABLE out.b (d TEXT)")
        conn.commit()
    finally:
        conn.close()
    ledger = folder / "ledger.txt"

    def processor(name: str, depends: str) -> str:
        argv = ["{python}", "-c", JOB, name, "{start}", str(wh / "out.sqlite"), str(ledger)]
        return f"""
      - name: {name}
        table: out.{name}
        date_column: d
        depends_on: [{depends}]
        chunk_days: 1
        retries: 1
        stall_timeout: 30s
        command: {json.dumps([*argv, marker])}"""

    phases = f"""  - name: load
    max_parallel: 4
    processors:{processor("a", "base")}
  - name: model
    max_parallel: 2
    processors:{processor("b", "a")}
"""
    path = folder / "backfill.yaml"
    path.write_text(config_text("kill-loop", days, phases))
    return path


def start(config: Path, days: list[date]) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "core", "run", str(days[0]), str(days[-1]), "--headless"]
    return subprocess.Popen(
        [*argv, "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the engine alone gets the kill; its jobs have their own groups
    )


def complete_cells(config: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(config.parent / "wh" / "out.sqlite")
    try:
        return {(t, d) for t in ("a", "b") for (d,) in conn.execute(f"SELECT DISTINCT d FROM {t}")}
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    days = [FIRST + timedelta(days=i) for i in range(max(60, 8 * args.kills))]
    marker = f"kill-loop-{os.getpid()}"
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        config = build(Path(tmp), days, marker)
        survived, bad = 0, []
        for n in range(1, args.kills + 1):
            engine = start(config, days)
            time.sleep(rng.uniform(0.3, 2.5))
            ended = engine.poll()
            if ended is None:
                os.kill(engine.pid, signal.SIGKILL)
            out, _ = engine.communicate(timeout=60)
            if engine.returncode in (0, 1, -9) and "Traceback" not in out:
                survived += 1
            else:
                bad.append((n, engine.returncode, out[-400:]))
                print(out[-400:])
            done = len(complete_cells(config))
            print(f"kill {n:2}: engine exit {engine.returncode:3}, {done}/{2 * len(days)} cells")
        last = start(config, days)
        out, _ = last.communicate(timeout=600)
        ledger = Counter((config.parent / "ledger.txt").read_text().splitlines())
        duplicates = sorted(cell for cell, count in ledger.items() if count > 1)
        cells = complete_cells(config)
        lost = 2 * len(days) - len(cells)
        orphans = job_pids(marker)
    print(f"last engine: exit {last.returncode}: {out.strip().splitlines()[-1]}")
    for n, code, tail in bad:
        print(f"kill {n}: the next engine failed (exit {code}):\n{tail}")
    print(
        f"kills survived {survived}/{args.kills} · duplicates {len(duplicates)} · lost {lost} · "
        f"orphans {len(orphans)}" + (f" ({', '.join(duplicates[:5])})" if duplicates else "")
    )
    ok = survived == args.kills and not duplicates and lost == 0 and not orphans
    print("PASS" if ok and last.returncode == 0 else "FAIL")


if __name__ == "__main__":
    main()
