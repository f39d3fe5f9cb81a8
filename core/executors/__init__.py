"""Executors: what runs an attempt's command, behind one protocol (`base`), so that the engine's
promises (limits, cancel, logs, adoption after a crash) do not depend on where it runs.

`local` (`LocalExecutor`) is the only one so far: a subprocess in its own process group, all of
it in `core.process`. The engine uses executors through this package only, never `core.process`
itself: the values that cross the boundary and the per-attempt log file's readers, which every
executor shares, are re-exported here.
"""

from core.executors.base import Adopted, Executor, Handle
from core.executors.local import LocalExecutor
from core.process import AttemptOutcome, AttemptSpec, Launched, Reason, Unproven, read_recent
from core.process.logfile import human

__all__ = [
    "Adopted",
    "AttemptOutcome",
    "AttemptSpec",
    "Executor",
    "Handle",
    "Launched",
    "LocalExecutor",
    "Reason",
    "Unproven",
    "human",
    "read_recent",
]
