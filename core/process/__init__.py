"""Run one attempt of a job as a real subprocess, and get its result even across an engine crash.

Output goes to a file, not through the engine: the log is handed to the child as stdout and
stderr, so a job that prints a gigabyte does not grow the engine's memory, and the log keeps
filling while the engine is down (`spawn`, `logfile`).

Each attempt leads its own process group. Timeouts, stalls and cancellation signal the whole
group, so grandchildren die too: SIGTERM, `grace` seconds, then SIGKILL (`attempt`, `groups`).

The engine may be `kill -9`ed while attempts run. They keep running, but the next engine is not
their parent, so their exit status is lost. `adopt()` reattaches to such an attempt through its
pid and log, watches it to its end and enforces the limits; the warehouse, not the exit status,
then says whether it did its work. An attempt whose pid never reached the journal is found by
the tag in its environment (`find_tagged`, in `tags`). A journaled pid is adopted only if it is
still the attempt's process: the start time journaled with it and the tag (`identify`); after a
crash the OS may have given it to a stranger, who is then left alone.

An attempt owns every process it started. Once it ends, whatever of it still runs (workers it
left behind, grandchildren that called setsid()) is ended before `wait()` returns, found in the
attempt's own cgroup where it has one, else by its group and its tag (`leftovers`, `cgroups`).

There is deliberately no wrapper process (an earlier version ran each job under a /bin/sh shim
that wrote the exit status to a file): it cost a second exec per attempt, as much as the job
itself for short jobs (benchmarks/dispatch_overhead.py), to learn an exit status the warehouse
already answers.

Zombies count as dead everywhere here. When the engine dies, orphans are re-parented to PID 1,
and many container inits never reap them: `kill(pid, 0)` keeps succeeding for a process that
ended long ago.

Clocks: deadlines and durations use `time.monotonic()`; the wall clock appears only where a
value is journaled or comes from the file system (`Launched.started_at`, log mtimes), and is
translated to the monotonic clock once, at the edge.
"""

from core.process.attempt import Attempt, adopt
from core.process.cgroups import existing as attempt_cgroup
from core.process.groups import alive, start_ticks
from core.process.leftovers import containment, end_leftovers
from core.process.logfile import TAIL_LINES, read_recent, read_tail
from core.process.spawn import LaunchError, start
from core.process.spec import TAG_VAR, AttemptOutcome, AttemptSpec, Launched, Reason
from core.process.tags import Unproven, find_tagged, identify

__all__ = [
    "TAG_VAR",
    "TAIL_LINES",
    "Attempt",
    "AttemptOutcome",
    "AttemptSpec",
    "LaunchError",
    "Launched",
    "Reason",
    "Unproven",
    "adopt",
    "alive",
    "attempt_cgroup",
    "containment",
    "end_leftovers",
    "find_tagged",
    "identify",
    "read_recent",
    "read_tail",
    "start",
    "start_ticks",
]
