"""Executors: what runs an attempt's command, behind one protocol (`base`), so that the engine's
promises (limits, cancel, logs, adoption after a crash) do not depend on where it runs.

`local` (`LocalExecutor`): a subprocess in its own process group, all of it in `core.process`.
`ray` (`core.executors.ray`): a Ray job; `cloud_run` (`core.executors.cloud_run`): an execution
of the processor's Cloud Run Job. Each is imported only when a config selects it (an extra).
`core.executors.remote` holds what the remote ones share.
The engine uses executors through this package only, never `core.process` itself: the values
that cross the boundary and the per-attempt log file's readers, which every executor shares,
are re-exported here.
"""

from core.config import Config
from core.config.model import CloudRunExecutor as CloudRunSettings
from core.config.model import RayExecutor as RaySettings
from core.executors.base import Adopted, Executor, Handle, Remote
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
    "Remote",
    "Unproven",
    "executors_for",
    "human",
    "read_recent",
]


def executors_for(config: Config) -> dict[str, Executor]:
    """Executor kind -> what runs the attempts of that kind, for every kind the config selects
    (the local one always: attempts journaled by it may be open). A kind has one setting per
    config: the journal records an attempt's kind only."""
    executors: dict[str, Executor] = {LocalExecutor.kind: LocalExecutor()}
    for settings in config.executors():
        if settings.kind in executors:
            continue
        # The remote ones are imported only when selected: their clients are extras.
        if isinstance(settings, CloudRunSettings):
            from core.executors.cloud_run import CloudRunExecutor

            jobs = {p.name: p.cloud_run for p in config.processors if p.cloud_run is not None}
            executors[settings.kind] = CloudRunExecutor(settings, jobs)
            continue
        if isinstance(settings, RaySettings):
            from core.executors.ray import RayExecutor

            executors[settings.kind] = RayExecutor(settings)
            continue
        raise ValueError(f"executor kind {settings.kind} is not available in this version")
    return executors
