"""Does a job that prints a gigabyte grow the engine? Engine RSS while one job prints 1 GiB.

Builds a one-item pipeline (a source with one row on 2024-01-01 and one runnable processor) whose
job writes 1 GiB of text lines to stdout and then its row. Runs `backfill run --headless` on it as
a child process (the real command line: config, lock, journal, engine, runner) and samples that
process's VmRSS from /proc/<pid>/status every 100 ms; the job itself is the engine's child and is
not counted. In the same run, the same engine on the same pipeline whose job prints nothing gives
the baseline. Prints both peaks, the kernel's VmHWM at the last sample, the log's size and wall
times. Target: the engine's peak RSS < 150 MB while the job prints 1 GiB.

Needs about 1 GiB of disk in the temp folder (refuses with MISS below 3 GB free); the log is
deleted with the temp folder at the end.

Run: `uv run python benchmarks/output_memory.py` (a few seconds to a minute, depending on disk).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from core.warehouse import sqlite_layout

GIB = 1 << 30
MIB = 1 << 20
OUTPUT_MIB = 1024
TARGET_MB = 150.0
MIN_FREE = 3 * 10**9
SAMPLE_EVERY = 0.1
DAY = "2024-01-01"
REPO = Path(__file__).resolve().parents[1]

# The job: MiB blocks of 64-byte numbered text lines, then one row for its date.
JOB = """\
import sqlite3, sys

db, day, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = sys.stdout.buffer
for block in range(mib):
    head = b"%08d " % block
    line = head + b"x" * (63 - len(head)) + b"\\n"
    out.write(line * (1 << 14))  # 16384 lines of 64 bytes = 1 MiB
out.flush()
conn = sqlite3.connect(db, timeout=30)
conn.execute("INSERT INTO job VALUES (?)", (day,))
conn.commit()
print(f"wrote {mib} MiB and the row for {day}", flush=True)
"""


@dataclass(frozen=True)
class Sampled:
    exit_code: int
    wall: float  # seconds
    peak_rss: int  # bytes, highest VmRSS seen
    hwm: int  # bytes, VmHWM at the last sample
    maxrss: int  # bytes, ru_maxrss from wait4: the engine's peak (or a child's, if larger)
    samples: int
    log_size: int  # bytes of the attempt's log


def mb(size: int) -> float:
    return size / 1e6


def build(folder: Path, mib: int) -> Path:
    """A pipeline in `folder` whose one item prints `mib` MiB; returns its config path."""
    conn = sqlite_layout.connect(folder / "wh", ["src", "out"], readonly=False)
    conn.execute("CREATE TABLE src.base (d TEXT)")
    conn.execute("INSERT INTO src.base VALUES (?)", (DAY,))
    conn.execute("CREATE TABLE out.job (d TEXT)")
    conn.close()
    (folder / "job.py").write_text(JOB)
    config = folder / "backfill.yaml"
    db = folder / "wh" / "out.sqlite"
    config.write_text(
        f"""
name: output-memory
warehouse: {{kind: sqlite, path: wh}}
calendar: {{start: {DAY}, end: {DAY}}}
phases:
  - name: src
    processors:
      - {{name: base, table: src.base, date_column: d}}
  - name: work
    processors:
      - name: job
        table: out.job
        date_column: d
        depends_on: [base]
        retries: 0
        command: ["{{python}}", job.py, "{db}", "{{start}}", "{mib}"]
"""
    )
    return config


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a live process in KiB; empty once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def run_sampled(folder: Path) -> Sampled:
    """`backfill run --headless` on the pipeline in `folder`, sampling the engine's memory."""
    with open(folder / "engine.out", "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", "run", DAY, "--headless", "--config", "backfill.yaml"],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        peak = hwm = samples = 0
        while True:
            # wait4 rather than poll(): it also hands back the exact peak of the ended process.
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(wait_status)
                break
            status = status_kib(proc.pid)
            if status:
                samples += 1
                peak = max(peak, status["VmRSS"] * 1024)
                hwm = max(hwm, status["VmHWM"] * 1024)
            time.sleep(SAMPLE_EVERY)
        wall = time.perf_counter() - started
    logs = list((folder / ".backfill" / "logs").rglob("*.log"))
    size = sum(p.stat().st_size for p in logs)
    return Sampled(proc.returncode, wall, peak, hwm, usage.ru_maxrss * 1024, samples, size)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        free = shutil.disk_usage(root).free
        print(f"temp folder {root}: {free / 1e9:.1f} GB free")
        if free < MIN_FREE:
            print(
                f"\nMISS: not run: {free / 1e9:.1f} GB free in the temp folder, the benchmark "
                f"writes a {OUTPUT_MIB} MiB log and wants {MIN_FREE / 1e9:.0f} GB free"
            )
            return
        runs = {}
        for label, mib in (("quiet", 0), ("loud", OUTPUT_MIB)):
            folder = root / label
            folder.mkdir()
            build(folder, mib)
            runs[label] = run_sampled(folder)
            if runs[label].exit_code != 0:
                print((folder / "engine.out").read_text())
                print(f"\nMISS: the {label} run exited {runs[label].exit_code}")
                return
            # The gigabyte log goes now, not only with the temp folder.
            shutil.rmtree(folder / ".backfill" / "logs")
    quiet, loud = runs["quiet"], runs["loud"]
    print(
        f"\n{'engine process':30s} {'peak VmRSS':>11s} {'VmHWM':>9s} {'maxrss':>9s} "
        f"{'log':>11s} {'wall':>7s}"
    )
    for label, run in (("job prints nothing (baseline)", quiet), ("job prints 1 GiB", loud)):
        print(
            f"{label:30s} {mb(run.peak_rss):8.1f} MB {mb(run.hwm):6.1f} MB "
            f"{mb(run.maxrss):6.1f} MB {run.log_size / MIB:7.1f} MiB {run.wall:5.1f} s "
            f"  ({run.samples} samples)"
        )
    print(
        "(peak VmRSS, VmHWM: sampled every 100 ms from /proc/<pid>/status; maxrss: wait4's\n"
        " ru_maxrss at exit, the engine's own peak, or a child's if one was larger)"
    )
    growth = loud.peak_rss - quiet.peak_rss
    print(f"growth of the engine from the job's output: {mb(growth):+.1f} MB")
    if loud.log_size < OUTPUT_MIB * MIB:
        print(
            f"\nMISS: the log holds {loud.log_size} bytes, less than the {OUTPUT_MIB} MiB printed"
        )
        return
    peak = mb(max(loud.peak_rss, loud.hwm, loud.maxrss))
    verdict = "PASS" if peak < TARGET_MB else "MISS"
    print(
        f"\n{verdict}: engine peak {peak:.1f} MB while its job printed {loud.log_size / GIB:.2f} "
        f"GiB (target < {TARGET_MB:.0f} MB; baseline {mb(quiet.peak_rss):.1f} MB)"
    )


if __name__ == "__main__":
    main()
