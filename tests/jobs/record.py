"""A test job: records when it ran, writes one row per date, and misbehaves on request.

usage: record.py NAME DATES [--sleep S]
Behaviour per (NAME, date) comes from env FAULTS, a comma list of NAME:DATE:KIND with KIND
  fail-once     exit 1 on the first attempt (prints a BigQuery rate-limit error if NAME ends
                in _q)
  fail          exit 1 every time
  error-once    print $MESSAGE, then 30 lines of traceback and a summary, exit 1 (first attempt)
  error         the same, every attempt
  empty-once    exit 0 without writing on the first attempt
  hang          print a line, then sleep forever (after spawning a grandchild that also sleeps)
  outage-once   after writing, move the warehouse folder to WAREHOUSE.away (a warehouse
                outage while the engine verifies; the test moves it back), on the first attempt
  stubborn      print a line, ignore SIGTERM, sleep forever (only SIGKILL ends it)
  escapes       print terminal escapes (a title change, colours) in its error line, exit 1
  break-table   after writing, replace the table by one without the date column (every
                later read of it fails: a permanent warehouse error)
  setsid-escapee  start a grandchild that calls setsid() (leaving the process group), then
                print a line and sleep forever (a stall); once the job is gone the grandchild
                waits 1 s and writes the date's row every 0.2 s, silently, for a minute
  fork-and-exit start three sleeping grandchildren (in the job's group), write, exit 0
Grandchildren carry $RECORD in their argv, so a test finds its own leftovers, and their pids are
recorded ("escapee", "forked"); each row an escapee writes is recorded too ("escapee-wrote").
Every start and end is appended to $RECORD as a JSON line.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def record(kind: str, name: str, dates: list[str], **more: object) -> None:
    line = json.dumps(
        {"kind": kind, "name": name, "dates": dates, "at": time.time(), "pid": os.getpid(), **more}
    )
    with open(os.environ["RECORD"], "a") as f:
        f.write(line + "\n")


# Leaves the job's process group and session, then outlives the job: what a daemonising worker
# does. Silent, so the job still stalls; it writes only once the job has gone, as the escapee of
# a killed attempt would.
ESCAPEE = """
import json, os, sqlite3, sys, time
os.setsid()
parent, table, day = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while os.getppid() == parent:
    time.sleep(0.05)
time.sleep(1.0)
for _ in range(300):
    conn = sqlite3.connect(os.environ["WAREHOUSE"] + "/ds.sqlite", timeout=30)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (d TEXT)")
    conn.execute(f"INSERT INTO {table} VALUES (?)", (day,))
    conn.commit()
    conn.close()
    with open(os.environ["RECORD"], "a") as f:
        f.write(json.dumps({"kind": "escapee-wrote", "name": table, "dates": [day]}) + "\\n")
    time.sleep(0.2)
"""
SLEEPER = "import time; time.sleep(600)"


def grandchild(code: str, *args: str, silent: bool = False) -> int:
    """Started with $RECORD last in its argv: how a test tells its own leftovers."""
    argv = [sys.executable, "-c", code, *args, os.environ["RECORD"]]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL if silent else None).pid


def first_time(name: str, day: str, kind: str) -> bool:
    marker = Path(os.environ["RECORD"]).with_name(f"fired-{name}-{day}-{kind}")
    try:
        marker.touch(exist_ok=False)
        return True
    except FileExistsError:
        return False


def main() -> int:
    name, dates = sys.argv[1], sys.argv[2].split(",")
    sleep = float(sys.argv[sys.argv.index("--sleep") + 1]) if "--sleep" in sys.argv else 0.2
    faults = {
        tuple(f.split(":")[:2]): f.split(":")[2]
        for f in os.environ.get("FAULTS", "").split(",")
        if f
    }
    record("start", name, dates)
    print(f"{name} starting {dates}", flush=True)
    write = list(dates)
    for day in dates:
        kind = faults.get((name, day))
        if kind == "escapes":
            print(f"\x1b]2;PWNED-TITLE\x07\x1b[31mboom on {day}\x1b[0m", flush=True)
            record("end-fail", name, dates)
            return 1
        if kind == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ignoring SIGTERM", flush=True)
            time.sleep(600)
        if kind == "setsid-escapee":
            pid = grandchild(ESCAPEE, str(os.getpid()), name, day, silent=True)
            record("escapee", name, [day], escapee=pid)
            print("working ...", flush=True)
            time.sleep(600)
        if kind == "fork-and-exit":
            pids = [grandchild(SLEEPER) for _ in range(3)]
            record("forked", name, [day], grandchildren=pids)
        if kind == "hang":
            # $RECORD in its argv: a test finds its own leftovers, not another test run's.
            sleeper = "import time; time.sleep(600)"
            subprocess.Popen([sys.executable, "-c", sleeper, os.environ["RECORD"]])
            print("working ...", flush=True)
            time.sleep(600)
        if kind == "fail" or (kind == "fail-once" and first_time(name, day, kind)):
            print(
                "google.api_core.exceptions.Forbidden: 403 Exceeded rate limits: too many table "
                "update operations for this table"
                if name.endswith("_q")
                else f"boom on {day}",
                flush=True,
            )
            record("end-fail", name, dates)
            return 1
        if kind == "error" or (kind == "error-once" and first_time(name, day, kind)):
            # The error first, as a client library logs it; what follows buries it deeper than
            # the last lines of the log.
            print(os.environ["MESSAGE"], flush=True)
            for n in range(30):
                print(f'  File "/srv/jobs/{name}.py", line {n + 1}, in process_date', flush=True)
            print(f"Failed dates: {day}", flush=True)
            record("end-fail", name, dates)
            return 1
        if kind == "empty-once" and first_time(name, day, kind):
            write.remove(day)
    time.sleep(sleep)
    conn = sqlite3.connect(os.environ["WAREHOUSE"] + "/ds.sqlite", timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {name} (d TEXT)")
    conn.executemany(f"DELETE FROM {name} WHERE d = ?", [(d,) for d in write])
    conn.executemany(f"INSERT INTO {name} VALUES (?)", [(d,) for d in write])
    conn.commit()
    conn.close()
    if any(faults.get((name, d)) == "break-table" for d in dates):
        conn = sqlite3.connect(os.environ["WAREHOUSE"] + "/ds.sqlite", timeout=30)
        conn.execute(f"DROP TABLE {name}")
        conn.execute(f"CREATE TABLE {name} (other TEXT)")
        conn.commit()
        conn.close()
    if any(faults.get((name, d)) == "outage-once" and first_time(name, d, "outage") for d in dates):
        # The test brings it back: anything this job left running would be ended with it.
        os.rename(os.environ["WAREHOUSE"], os.environ["WAREHOUSE"] + ".away")
    print(f"{name} done", flush=True)
    record("end", name, dates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
