"""The local executor through the executor protocol, as the engine uses it after a crash: real
subprocesses started by an engine process that dies (`os._exit`, like kill -9), found again
from a real journal by the next one."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import date
from pathlib import Path

import anyio
import pytest

from core.executors import (
    Adopted,
    AttemptOutcome,
    AttemptSpec,
    Executor,
    Handle,
    LocalExecutor,
    Unproven,
)
from core.process import cgroups, find_tagged
from core.state import Journal
from core.state.journal import AttemptRow
from tests.process.support import HAVE_PROC, PY, ROOT, running

DYING_ENGINE = """
import json, os, sys
from pathlib import Path
import anyio
from core.executors import AttemptSpec, LocalExecutor
spec = AttemptSpec(
    argv=tuple(json.loads(sys.argv[1])), env={}, cwd=Path(sys.argv[2]),
    log_path=Path(sys.argv[3]), timeout=None, stall_timeout=None, grace=2.0, tag=sys.argv[4],
)
launched = anyio.run(LocalExecutor().start, spec).launched
print(json.dumps([launched.pid, launched.pgid, launched.started_at, launched.start_ticks]))
sys.stdout.flush()
os._exit(0)  # like kill -9: no wait, no cleanup
"""


def attempt_spec(tmp_path: Path, attempt: AttemptRow, argv: list[str]) -> AttemptSpec:
    return AttemptSpec(
        argv=tuple(argv),
        env={},
        cwd=tmp_path,
        log_path=attempt.log_path,
        timeout=None,
        stall_timeout=None,
        grace=2.0,
        tag=f"{attempt.id}@{tmp_path}",
    )


def start_in_dying_engine(spec: AttemptSpec) -> tuple[int, int, float, int | None]:
    done = subprocess.run(
        [
            PY,
            "-c",
            DYING_ENGINE,
            json.dumps(spec.argv),
            str(spec.cwd),
            str(spec.log_path),
            spec.tag,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid, pgid, started_at, start_ticks = json.loads(done.stdout)
    return pid, pgid, started_at, start_ticks


async def _append(outcomes: list[AttemptOutcome], handle: Handle) -> None:
    outcomes.append(await handle.wait())


@pytest.mark.anyio
async def test_attempts_a_dead_engine_left_are_adopted_or_explained(tmp_path):
    journal = Journal(tmp_path / "state")
    _, (journaled, unjournaled, never) = journal.start_run_with_items(
        date(2024, 1, 1),
        date(2024, 1, 3),
        {},
        [("p", "raw", [date(2024, 1, d)]) for d in (1, 2, 3)],
    )
    argv = ["sh", "-c", "echo started; sleep 3; exit 3"]
    rows = [
        journal.start_attempt(item, 1, argv, tmp_path / f"{item}.log")
        for item in (journaled, unjournaled, never)
    ]
    specs = [attempt_spec(tmp_path, row, argv) for row in rows]
    first = start_in_dying_engine(specs[0])
    journal.attempt_launched(rows[0].id, *first)
    # The second died between spawning and journaling its pid: only its tag can find it.
    second = start_in_dying_engine(specs[1])
    rows = journal.attempts_of_item(journaled) + journal.attempts_of_item(unjournaled) + [rows[2]]
    assert rows[1].pid is None

    executor: Executor = LocalExecutor()
    found = await executor.recover(list(zip(rows, specs, strict=True)))

    adopted, by_tag, missing = (found[row.id] for row in rows)
    assert isinstance(adopted, Adopted) and adopted.alive
    assert adopted.handle.launched.pid == first[0]
    assert isinstance(missing, Unproven) and missing.gone
    handles = [adopted.handle]
    if HAVE_PROC:
        assert isinstance(by_tag, Adopted) and by_tag.alive
        assert by_tag.handle.launched.pid == second[0]
        handles.append(by_tag.handle)
    outcomes = []
    async with anyio.create_task_group() as tg:  # watched at once, as the engine does
        for handle in handles:
            tg.start_soon(lambda h=handle: _append(outcomes, h))
    # Not our children: no exit status, the warehouse judges; nothing of them runs any more.
    assert [(o.exit_code, o.reason) for o in outcomes] == [(None, "exit")] * len(handles)
    assert all("started" in o.tail for o in outcomes)
    assert not running(first[0]) and not running(second[0])
    journal.close()


def left_by_a_dead_leader(tmp_path: Path, **popen: object) -> tuple[AttemptSpec, int]:
    """An attempt whose leader, started by an engine that died, has ended after starting a
    worker that left its process group (`popen`: more of the worker's Popen arguments).
    (the attempt's spec, the worker's pid)."""
    journal = Journal(tmp_path / "state")
    _, (item,) = journal.start_run_with_items(
        date(2024, 1, 1), date(2024, 1, 1), {}, [("p", "raw", [date(2024, 1, 1)])]
    )
    pidfile = tmp_path / "worker.pid"
    argv = [
        PY,
        "-c",
        "import subprocess; "
        f"w = subprocess.Popen(['sleep', '300'], start_new_session=True, **{popen!r}); "
        f"open({str(pidfile)!r}, 'w').write(str(w.pid))",
    ]
    row = journal.start_attempt(item, 1, argv, tmp_path / "a.log")
    journal.close()
    spec = attempt_spec(tmp_path, row, argv)
    leader = start_in_dying_engine(spec)[0]
    for _ in range(1000):  # until the leader has written its worker's pid and ended
        if pidfile.exists() and pidfile.read_text() and not running(leader):
            break
        time.sleep(0.01)
    worker = int(pidfile.read_text())
    assert running(worker) and not running(leader)
    return spec, worker


@pytest.mark.anyio
@pytest.mark.skipif(not HAVE_PROC, reason="finding a process by its tag reads /proc")
async def test_remains_of_an_attempt_that_cannot_be_adopted_are_ended(tmp_path):
    """Its leader is gone, but a worker that left its process group still carries the tag:
    `end_remains` ends it without signalling any pid or group from the journal."""
    spec, worker = left_by_a_dead_leader(tmp_path)

    ended = await LocalExecutor().end_remains(spec)

    assert ended == 1 and not running(worker)
    assert "left by the attempt" in spec.log_path.read_text()


@pytest.mark.anyio
@pytest.mark.skipif(cgroups.probe()[0] is None, reason="only a cgroup finds it: none here")
async def test_remains_without_the_tag_are_ended_from_the_cgroup_labelled_with_it(tmp_path):
    """A worker that left its process group and its environment (the tag with it): after the
    engine died, the next one finds it in the cgroup labelled with the attempt's tag."""
    spec, worker = left_by_a_dead_leader(tmp_path, env={})
    assert spec.tag not in find_tagged([spec.tag])  # the tag scan cannot see it

    ended = await LocalExecutor().end_remains(spec)

    assert ended == 1 and not running(worker)
