"""A real local Ray head for the Ray executor's tests and benchmark.

Started with `ray start --head --block` in a session of its own, every port chosen here (Ray's
defaults are fixed numbers another head on the machine may hold) and its own short temp dir
(Ray's Unix sockets live there: their paths have a length limit); stopped by its process group,
never by name.

The head's GCS and raylet listen on every interface whatever `--node-ip-address` says (Ray
picks the machine's address for the node). So where the machine allows it (`unshare -rn`: a
user and network namespace, root not needed) the head runs in a network namespace of its own,
with only a loopback, and the Jobs API is reached through a Unix socket in its temp dir
(`relay.py`): nothing of it listens on this machine's interfaces. Where namespaces are not
allowed, it runs here, its Jobs API on 127.0.0.1 (`--dashboard-host`), and says so.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.executors import relay

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 90.0
PENDING_LIMIT_S = 15


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _port_block(size: int) -> int:
    """The first of `size` consecutive ports free now (outside Ray's default ranges)."""
    for _ in range(200):
        base = random.randrange(30000, 60000 - size)
        if all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports")


@dataclass
class Head:
    address: str  # the Jobs API: http://127.0.0.1:PORT
    temp_dir: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        return (self.temp_dir / "head.log").read_text(errors="replace")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/version", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _jobs_ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(address + "/api/jobs/", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


RELAY = Path(__file__).with_name("relay.py")


def _netns_works() -> bool:
    if os.environ.get("BACKFILL_RAY_TEST_NO_NETNS"):
        return False
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not (unshare and ip):
        return False
    probe = subprocess.run(
        [unshare, "-rn", ip, "link", "set", "lo", "up"], capture_output=True, timeout=10
    )
    return probe.returncode == 0


@contextlib.contextmanager
def ray_head(num_cpus: int = 2) -> Iterator[Head]:
    temp_dir = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    base = _port_block(70)
    dashboard = base + 1
    args = [
        str(RAY),
        "start",
        "--head",
        f"--port={base}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={base + 2}",
        f"--dashboard-agent-listen-port={base + 3}",
        f"--dashboard-agent-grpc-port={base + 4}",
        f"--metrics-export-port={base + 5}",
        f"--node-manager-port={base + 6}",
        f"--object-manager-port={base + 7}",
        f"--runtime-env-agent-port={base + 8}",
        f"--min-worker-port={base + 10}",
        f"--max-worker-port={base + 69}",
        "--node-ip-address=127.0.0.1",
        "--disable-usage-stats",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir}",
        "--block",
    ]
    # No RAY_* of the caller's reaches the head (an address, a namespace of another cluster).
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # Started under `uv run` (as .ci/run runs pytest), Ray's uv hook makes every worker, the job
    # supervisors too, run through that `uv run` command line: none starts in time. A real
    # cluster's head is no child of `uv run`.
    env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    # How long a job may stay pending before Ray fails it (default 15 min): short enough for a
    # test to see a job that never starts, long enough for a supervisor on a loaded machine.
    env["RAY_JOB_START_TIMEOUT_SECONDS"] = str(PENDING_LIMIT_S)
    listener = None
    if _netns_works():
        sock = str(temp_dir / "api.sock")
        script = 'ip link set lo up && { "$0" "$1" "$2" "$3" & } && shift 3 && exec "$@"'
        args = [
            "unshare", "-rn", "sh", "-c", script,
            sys.executable, str(RELAY), sock, str(dashboard), *args,
        ]  # fmt: skip
        port, listener = relay.serve_tcp_to_unix(sock)
        address = f"http://127.0.0.1:{port}"
    else:
        address = f"http://127.0.0.1:{dashboard}"
        print("ray head: no network namespace here; its GCS and raylet listen on every interface")
    with open(temp_dir / "head.log", "wb") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    head = Head(address, temp_dir, proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_answers(head.address) and _jobs_ready(head.address)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start:\n{head.log()[-3000:]}")
            time.sleep(0.3)
        yield head
    finally:
        stop(proc)
        if listener is not None:
            listener.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """The head's whole process group: SIGTERM, a moment, then SIGKILL (`ray start --block`
    does not end its node's processes on SIGTERM by itself). Its workers, each in a group of
    their own, end when their raylet is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
