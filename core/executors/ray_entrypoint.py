"""What a Ray job runs: the attempt's command in a process group of its own, ended whole on stop.

Ray stops a job by signalling its entrypoint's process tree (the entrypoint and its descendants
as `psutil` finds them), so a child that double-forked, re-parented away from the tree, would
survive the stop. Here the command leads its own process group (a double-forked child stays in
it) and a SIGTERM or SIGINT is forwarded to the whole group; after `--grace` seconds whatever of
the group is left is SIGKILLed. The exit status is the command's (128 + N for signal N, as
shells say), so the job's `driver_exit_code` is the attempt's exit status.

A child that calls setsid() itself leaves the group and is out of reach here (the local
executor finds those in the attempt's cgroup; a Ray node gives a job none).

This file uses nothing but the standard library and is sent as the job's entrypoint text
(`python3 -c <this file> ...`, see `core.executors.ray`), so the cluster's nodes need no copy of
backfill for it; the command it runs is another matter (README: Running on more than one
machine).

Usage: python3 -c <source> --grace SECONDS [--cwd DIR] -- ARGV...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(args: list[str]) -> int:
    grace = 10.0
    cwd: str | None = None
    while args and args[0] != "--":
        flag, value, args = args[0], args[1], args[2:]
        if flag == "--grace":
            grace = float(value)
        elif flag == "--cwd":
            cwd = value
        else:
            print(f"ray_entrypoint: unknown option {flag}", file=sys.stderr)
            return 2
    argv = args[1:]
    if not argv:
        print("ray_entrypoint: no command given after --", file=sys.stderr)
        return 2
    if cwd is not None:
        try:
            os.chdir(cwd)
        except OSError as exc:
            print(f"ray_entrypoint: cannot enter {cwd}: {exc}", file=sys.stderr)
            return 127
    try:
        child = subprocess.Popen(argv, start_new_session=True)
    except OSError as exc:
        print(f"ray_entrypoint: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 127
    pgid = child.pid
    stop_at: list[float] = []

    def on_stop(signum: int, _frame: object) -> None:
        if not stop_at:
            stop_at.append(time.monotonic())
        _signal_group(pgid, signal.SIGTERM if signum == signal.SIGTERM else signum)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    code: int | None = None
    while True:
        if code is None:
            code = child.poll()
        if code is not None and not stop_at:
            # The command ended by itself: what it left in its group goes with it, as the
            # local executor ends an attempt's leftovers.
            if _group_alive(pgid):
                _signal_group(pgid, signal.SIGTERM)
                stop_at.append(time.monotonic())
            else:
                break
        if stop_at:
            if not _group_alive(pgid) and code is not None:
                break
            if time.monotonic() - stop_at[0] >= grace:
                _signal_group(pgid, signal.SIGKILL)
                if code is None:
                    code = child.wait()
                break
        time.sleep(0.1)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
