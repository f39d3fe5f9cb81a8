"""Finding attempts by the tag in their environment, for the crash between spawn and journal.

The engine journals an attempt's pid right after spawning it, but a `kill -9` can land in
between. Every attempt therefore carries `$BACKFILL_ATTEMPT=<tag>`, and the next engine finds
the still-running ones by it and adopts them instead of running the work a second time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from core.process.groups import HAVE_PROC, PROC, is_dead_state, proc_stat
from core.process.spec import TAG_VAR


def find_tagged(tags: Iterable[str]) -> dict[str, int]:
    """The pids of running attempts started with these tags (their group leaders), for an engine
    that died between spawning an attempt and journaling its pid. Reads /proc; where there is
    none, finds nothing (then such an attempt is re-queued, as if it never started).

    Synchronous and blocking: it reads the environment of every process on the machine. From
    async code call it in a worker thread, `await anyio.to_thread.run_sync(find_tagged, tags)`.
    """
    wanted = {f"{TAG_VAR}={tag}".encode(): tag for tag in tags}
    if not wanted or not HAVE_PROC:
        return {}
    found: dict[str, int] = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            environ = (PROC / entry.name / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours
        tag = next((wanted[v] for v in environ.split(b"\0") if v in wanted), None)
        if tag is None:
            continue
        pid = int(entry.name)
        stat = proc_stat(pid)
        # Children inherit the tag; the attempt is the one leading its own group.
        if stat is not None and stat[1] == pid and not is_dead_state(stat[0]):
            found[tag] = pid
    return found
