"""Helpers for the process tests: small Python or sh jobs, and what "running" means.

"Gone" means not running: a zombie counts as gone, since orphans here are re-parented to an init
that may never reap them.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio

from core.process import AttemptSpec

ROOT = Path(__file__).parents[2]
PY = sys.executable
HAVE_PROC = Path("/proc/self/stat").exists()


def spec(tmp_path: Path, argv: list[str], **kw: Any) -> AttemptSpec:
    fields: dict[str, Any] = {
        "env": {},
        "cwd": tmp_path,
        "log_path": tmp_path / "logs" / "attempt.log",
        "timeout": None,
        "stall_timeout": None,
        "grace": 2.0,
    }
    fields.update(kw)
    return AttemptSpec(argv=tuple(argv), **fields)


def py(code: str, *args: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code), *args]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return not stat.parent.parent.exists()  # no /proc: kill() is all we have


async def wait_for_file(path: Path, text: str = "", limit: float = 10.0) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and text in (content := path.read_text()):
            return content
        await anyio.sleep(0.02)
    raise AssertionError(f"{path} never contained {text!r}")


SPAWNS_GRANDCHILDREN = """
    import subprocess, sys, time
    pids = [subprocess.Popen(["sleep", "300"]).pid for _ in range(2)]
    with open(sys.argv[1] + ".part", "w") as f:
        f.write(" ".join(map(str, pids)))
    __import__("os").rename(sys.argv[1] + ".part", sys.argv[1])
    print("spawned", flush=True)
    time.sleep(300)
"""

IGNORES_SIGTERM = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(300)
"""


async def grandchildren(pid_file: Path) -> list[int]:
    pids = [int(p) for p in (await wait_for_file(pid_file)).split()]
    assert len(pids) == 2 and all(running(p) for p in pids)
    return pids
