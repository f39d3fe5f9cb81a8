"""The `local` executor: each attempt is a subprocess of this machine leading its own process
group (and cgroup, where there is one). All the work is in `core.process`; this adapts it to the
executor protocol (`core.executors.base`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import anyio

from core import process
from core.executors.base import Adopted
from core.process import AttemptSpec, Launched, Unproven
from core.state.journal import AttemptRow


class LocalExecutor:
    kind = "local"

    def reference(self, tag: str) -> None:
        return None  # a pid, known once it runs: `Handle.launched`

    async def start(self, spec: AttemptSpec) -> process.Attempt:
        return await process.start(spec)

    async def recover(
        self, attempts: Sequence[tuple[AttemptRow, AttemptSpec]]
    ) -> dict[int, Adopted | Unproven]:
        """Each attempt whose process is still the one it started (found by its journaled pid,
        or by its tag in /proc when the engine died before journaling the pid) is adopted; so is
        one whose pid nobody holds any more: it ends at once and the warehouse judges what it
        did. A pid a stranger holds now is never watched, nor ever signalled."""
        # One stat and environment read per attempt, and a read of every process for those
        # whose pid was never journaled: not on the event loop.
        found = await anyio.to_thread.run_sync(_find_processes, attempts)
        # Adopting builds the handle's anyio primitives, which belong on the event loop.
        specs = {attempt.id: spec for attempt, spec in attempts}
        return {
            attempt_id: (
                launched
                if isinstance(launched, Unproven)
                else Adopted(process.adopt(launched, specs[attempt_id]), process.alive(launched))
            )
            for attempt_id, launched in found.items()
        }

    async def end_remains(self, spec: AttemptSpec) -> int:
        # No pgid: the group the dead engine's attempt led may be a stranger's by now.
        return await process.end_leftovers(
            tag=spec.tag,
            pgid=None,
            cgroup=process.attempt_cgroup(spec.tag),
            grace=spec.grace,
            log_path=spec.log_path,
        )


def _find_processes(
    attempts: Sequence[tuple[AttemptRow, AttemptSpec]],
) -> dict[int, Launched | Unproven]:
    """Attempt id -> its process to adopt, or why there is none. Blocking: reads /proc."""
    tags = [spec.tag for attempt, spec in attempts if attempt.pid is None]
    untracked = process.find_tagged(tags) if tags else {}
    found: dict[int, Launched | Unproven] = {}
    for attempt, spec in attempts:
        launched = _launched(attempt)
        if launched is None and spec.tag in untracked:
            pid = untracked[spec.tag]  # the tag is its proof of identity
            launched = _launched(
                replace(attempt, pid=pid, pgid=pid, start_ticks=process.start_ticks(pid))
            )
        if launched is None:
            why = "no pid was journaled and no process carries its tag (never started, or ended)"
            found[attempt.id] = Unproven(why, gone=True)
            continue
        unproven = process.identify(launched, spec.tag)
        found[attempt.id] = launched if unproven is None or unproven.gone else unproven
    return found


def _launched(attempt: AttemptRow) -> Launched | None:
    if attempt.pid is None or attempt.pgid is None:
        return None
    return Launched(
        pid=attempt.pid,
        pgid=attempt.pgid,
        started_at=attempt.started_at,
        log_path=attempt.log_path,
        start_ticks=attempt.start_ticks,
    )
