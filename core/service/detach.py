"""Starting an engine that outlives whoever started it: `backfill run --detach` and the
dashboard's `s`.

The engine is `backfill run ... --headless` in a session of its own (no controlling terminal,
so a closed terminal or SIGHUP never reaches it or its attempts), stdin closed, its output
appended to state_dir/engine.log. The starter waits until the engine answers on its socket with
a run id, then returns: the engine goes on alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from core.engine.api import HEADER_ONLY, RunRequest, Who
from core.errors import UserError
from core.process import read_tail
from core.service.client import NoEngine, RemoteEngine
from core.state import statedir

LOG_FILE = "engine.log"
#: an engine that has not answered by then (its process still alive) is reported, not awaited
UP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Started:
    run_id: int
    pid: int
    host: str
    log: Path


class DetachFailed(UserError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def last_words(state_dir: Path, lines: int = 1) -> str | None:
    """The last lines the engine wrote to its log (why it ended, when it failed)."""
    tail = read_tail(state_dir / LOG_FILE, lines)
    return " / ".join(tail) if tail else None


def run_args(request: RunRequest, *, ignore_preflight: bool = False) -> list[str]:
    """The `backfill run` arguments that make this request."""
    args = [request.start.isoformat(), request.end.isoformat(), "--reprocess", request.reprocess]
    args += [f"--phase={p}" for p in request.phases]
    args += [f"--processor={p}" for p in request.processors]
    args += [f"--max-parallel={request.max_parallel}"] if request.max_parallel else []
    return args + (["--ignore-preflight"] if ignore_preflight else [])


def engine_argv(
    config: Path, run_args: Sequence[str], preflight: dict[str, Any] | None = None
) -> list[str]:
    argv = [sys.executable, "-m", "core", "run", *run_args, "--config", str(config)]
    argv += ["--headless", "--detached-child"]
    if preflight is not None:
        argv += ["--preflight-record", json.dumps(preflight, default=str)]
    return argv


async def start_detached(
    state_dir: Path,
    config: Path,
    args: Sequence[str],
    *,
    preflight: dict[str, Any] | None = None,
) -> Started:
    """Start the engine on `backfill run ARGS`; returns once it runs the run (raises
    DetachFailed, with the engine's last words, if it ended instead)."""
    statedir.ensure(state_dir)
    log_path = state_dir / LOG_FILE
    statedir.create_file(log_path)  # the engine's output quotes jobs': private, like the logs
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} engine starting\n".encode())
        log.flush()
        proc = subprocess.Popen(
            engine_argv(config, args, preflight),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path.cwd(),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + UP_TIMEOUT_S
    who = Who.me("cli")
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            last = last_words(state_dir, 3) or "no output"
            raise DetachFailed(f"the engine ended at once (exit {code}): {last}", code or 1)
        try:
            engine = await RemoteEngine.connect(state_dir, who)
        except NoEngine:
            await anyio.sleep(0.1)
            continue
        try:
            snap = await engine.snapshot(HEADER_ONLY)
        finally:
            await engine.aclose()
        if snap.run_id is not None and engine.info.pid == proc.pid:
            return Started(snap.run_id, proc.pid, engine.info.host, log_path)
        await anyio.sleep(0.1)
    raise DetachFailed(
        f"the engine (pid {proc.pid}) has not started its run after {UP_TIMEOUT_S:.0f}s; "
        f"it goes on: see {log_path}",
        1,
    )
