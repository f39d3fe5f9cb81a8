"""A real BigQuery API for the tests: bqemulator (DuckDB behind the BigQuery REST API) started as
a subprocess on free ports.

It needs DuckDB's spatial extension, which it would download; the wheel duckdb-extension-spatial
carries it and `duckdb_extensions.import_extension` installs it offline (into ~/.duckdb, where
the server looks).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT_S = 60.0
#: set by .ci/run: there the emulator must run; a missing one fails instead of skipping
REQUIRED_VARIABLE = "BACKFILL_REQUIRE_BQEMULATOR"


def missing_reason() -> str | None:
    """Why the emulator cannot run here, or None when it can."""
    for module in ("bqemulator", "duckdb_extensions", "google.cloud.bigquery"):
        try:
            __import__(module)
        except ImportError as exc:
            return f"{module} is not installed ({exc}); `uv sync` installs the dev group"
    return None


def _install_spatial() -> None:
    import duckdb
    import duckdb_extensions

    con = duckdb.connect()
    try:
        duckdb_extensions.import_extension("spatial", con=con)
        con.execute("LOAD spatial")
    finally:
        con.close()


@contextlib.contextmanager
def bqemulator(project: str) -> Iterator[str]:
    """Run an in-memory emulator; yield its endpoint (http://127.0.0.1:PORT)."""
    _install_spatial()
    exe = shutil.which("bqemulator") or str(Path(sys.executable).with_name("bqemulator"))
    # Format extensions (avro) would be downloaded: nothing here reads those formats.
    env = {**os.environ, "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}
    command = [
        exe,
        "start",
        "--rest-port",
        "0",
        "--grpc-port",
        "0",  # two emulators on the default gRPC port would silently share it
        "--project",
        project,
        "--log-level",
        "info",
        "--log-format",
        "json",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    port: list[int] = []
    tail: list[str] = []
    listening = threading.Event()

    def drain() -> None:  # keep reading stderr so the server never blocks on a full pipe
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line)
            del tail[:-50]
            if not port and '"rest.listen"' in line:
                with contextlib.suppress(ValueError, KeyError):
                    port.append(int(json.loads(line)["port"]))
                    listening.set()

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while not listening.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"bqemulator did not start (exit {proc.poll()}):\n{''.join(tail)}"
                )
        url = f"http://127.0.0.1:{port[0]}"
        while not _ready(url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"bqemulator never became ready:\n{''.join(tail)}")
            time.sleep(0.05)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            status: int = response.status
            return status == 200
    except OSError:
        return False
