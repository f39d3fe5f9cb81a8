"""Starting an attempt: the log file, the environment, the process group, and why a start failed.

The log is opened here (append, binary, unbuffered) and handed to the child as stdout and stderr,
so the kernel writes output straight to disk: the engine never carries it, and the file keeps
filling while the engine is down. `start_new_session=True` makes the job lead a new process
group, which is what lets a kill reach its grandchildren; where attempts get a cgroup of their
own, the job is born in it (`cgroups`), which also holds the grandchildren that leave the group.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from pathlib import Path

import anyio

from core.process import cgroups
from core.process.attempt import Attempt
from core.process.groups import boot_clock, spawned_ticks
from core.process.logfile import note
from core.process.spec import TAG_VAR, AttemptSpec, Launched
from core.state import statedir


class LaunchError(OSError):
    """The attempt could not start: nothing ran. Says why in operator's words."""


async def start(spec: AttemptSpec) -> Attempt:
    """Spawn the attempt. Returns as soon as it runs; await `Attempt.wait()` for the end.

    There is no checkpoint after the spawn, so a cancelled caller either gets no process or gets
    the Attempt (and with it the duty to journal or kill it).
    """
    # Cancelled before the spawn: no process. Not a trip through the loop: nothing is gained
    # by letting other tasks run first, and the trip was a share of what an attempt costs.
    await anyio.lowlevel.checkpoint_if_cancelled()
    env = _environment()
    env.update((os.fsencode(k), os.fsencode(v)) for k, v in spec.env.items())
    if spec.tag:
        env[TAG_VAR.encode()] = os.fsencode(spec.tag)
    log_path = spec.log_path
    log = _open_log(log_path)

    def popen() -> tuple[subprocess.Popen[bytes], int | None]:
        before = boot_clock()
        proc = subprocess.Popen(
            spec.argv,
            stdin=_devnull(),
            stdout=log,
            stderr=log,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
            umask=statedir.job_umask(),
        )
        return proc, spawned_ticks(proc.pid, before, boot_clock())

    try:
        # Both clocks at once: the wall clock is journaled, the monotonic one anchors deadlines.
        started_at, started_mono = time.time(), time.monotonic()
        # No shell: argv runs as given, PATH searched in the job's own environment.
        try:
            (proc, start_ticks), cgroup = cgroups.spawn_inside(spec.tag, popen)
        except OSError as exc:
            why = _launch_problem(spec, exc)
            note(log_path, f"could not start: {why}")
            raise LaunchError(why) from exc
    finally:
        os.close(log)  # the child has its own copy
    # setsid() made the job the leader of a new group whose id is its pid.
    launched = Launched(proc.pid, proc.pid, started_at, log_path, start_ticks)
    return Attempt(launched, spec, proc=proc, started_mono=started_mono, cgroup=cgroup)


def _environment() -> dict[bytes, bytes]:
    """A copy of this process's environment, in bytes (Popen encodes every variable anyway).
    `os.environb` is a mapping that checks and converts every key and value it hands out:
    copying it item by item cost 40 us a spawn, the dict it wraps (always the current
    environment, as `os.environ` and `os.environb` write through it) costs one."""
    data = getattr(os.environb, "_data", None)
    if isinstance(data, dict):
        return dict(data)
    return dict(os.environb)


@functools.cache
def _devnull() -> int:
    """Every job's stdin, opened once (`subprocess.DEVNULL` opens and closes it per spawn)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _open_log(log_path: Path) -> int:
    """Append, creating the folders on first use (the common case costs one open, no mkdir).
    A plain descriptor (not inherited but by the job's stdout and stderr): the file object
    was most of what opening it cost."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    try:
        return os.open(log_path, flags, 0o666)
    except FileNotFoundError:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(log_path, flags, 0o666)


def _launch_problem(spec: AttemptSpec, exc: OSError) -> str:
    """What went wrong, in the words an operator would look for in the config."""
    if isinstance(exc, FileNotFoundError) and not spec.cwd.is_dir():
        return f"working directory {spec.cwd} does not exist"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {spec.argv[0]}"
    if isinstance(exc, PermissionError):
        return f"not executable: {spec.argv[0]}"
    return f"{spec.argv[0]}: {exc.strerror or exc}"
