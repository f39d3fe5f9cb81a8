"""Adoption after an engine crash: the attempt outlives the engine that started it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from core import process
from core.process import Launched
from tests.process.support import PY, ROOT, spec, wait_for_file

DYING_ENGINE = """
import json, os, sys
from pathlib import Path
import anyio
from core import process
spec = process.AttemptSpec(
    argv=tuple(json.loads(sys.argv[1])), env={}, cwd=Path(sys.argv[2]),
    log_path=Path(sys.argv[2]) / "adopted.log", timeout=None, stall_timeout=None, tag=sys.argv[3],
)
launched = anyio.run(process.start, spec).launched
print(json.dumps([launched.pid, launched.pgid, launched.started_at, str(launched.log_path)]))
sys.stdout.flush()
os._exit(0)  # like kill -9: no wait, no cleanup
"""


def launch_from_dying_engine(tmp_path: Path, argv: list[str], tag: str = "") -> Launched:
    # Tagged as the engine tags attempts: by the tag the next one finds the attempt's cgroup.
    tag = tag or f"adopted@{tmp_path}"
    done = subprocess.run(
        [PY, "-c", DYING_ENGINE, json.dumps(argv), str(tmp_path), tag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid, pgid, started_at, log_path = json.loads(done.stdout)
    launched = Launched(pid, pgid, started_at, Path(log_path))
    assert launched.log_path == tmp_path / "adopted.log"
    return launched


@pytest.mark.anyio
async def test_an_adopted_attempt_is_watched_to_its_end_without_a_status(tmp_path):
    argv = ["sh", "-c", "echo adopted; sleep 1.5; exit 5"]
    launched = launch_from_dying_engine(tmp_path, argv)
    assert process.alive(launched)  # still running when we reattach: not the trivial case
    attempt = process.adopt(
        launched, spec(tmp_path, argv, log_path=launched.log_path, tag=f"adopted@{tmp_path}")
    )
    outcome = await attempt.wait()
    # Not our child, so its exit status is not ours to read: the warehouse judges it.
    assert (outcome.reason, outcome.exit_code, outcome.ok) == ("exit", None, False)
    assert outcome.status_unknown
    assert outcome.tail == ("adopted",)
    assert 1.4 <= outcome.duration < 5  # clocks of two processes: a few ms either way
    assert not process.alive(launched)


@pytest.mark.anyio
async def test_an_attempt_whose_pid_was_never_journaled_is_found_by_its_tag(tmp_path):
    tag = f"17@{tmp_path}/journal.sqlite"
    argv = ["sh", "-c", "sleep 1; echo child; sleep 1"]  # sh forks: children carry the tag too
    launched = launch_from_dying_engine(tmp_path, argv, tag)  # as if its journal row had no pid
    found = process.find_tagged([tag, "18@elsewhere"])
    assert found == {tag: launched.pid}  # the group's leader, not its children
    outcome = await process.adopt(
        launched, spec(tmp_path, argv, log_path=launched.log_path, tag=tag)
    ).wait()
    assert outcome.tail == ("child",)
    assert process.find_tagged([tag]) == {}  # ended: nothing left to adopt


@pytest.mark.anyio
async def test_an_attempt_already_gone_when_adopted_is_interrupted(tmp_path):
    argv = ["sh", "-c", "echo quick"]
    launched = launch_from_dying_engine(tmp_path, argv)
    await wait_for_file(launched.log_path, "quick")
    deadline = time.monotonic() + 10
    while process.alive(launched) and time.monotonic() < deadline:
        await anyio.sleep(0.02)
    outcome = await process.adopt(
        launched, spec(tmp_path, argv, log_path=launched.log_path, tag=f"adopted@{tmp_path}")
    ).wait()
    assert (outcome.reason, outcome.exit_code, outcome.status_unknown) == (
        "interrupted",
        None,
        True,
    )
    assert outcome.duration < 5  # ended at its last log write, not when we looked


@pytest.mark.anyio
async def test_adopted_attempt_still_times_out_from_its_original_start(tmp_path):
    argv = ["sleep", "30"]
    launched = launch_from_dying_engine(tmp_path, argv)
    elapsed = time.time() - launched.started_at
    attempt = process.adopt(
        launched,
        spec(
            tmp_path,
            argv,
            log_path=launched.log_path,
            timeout=elapsed + 0.3,
            tag=f"adopted@{tmp_path}",
        ),
    )
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("timeout", None)
    assert outcome.duration < elapsed + 3
    assert not process.alive(launched)


@pytest.mark.anyio
async def test_alive_guards_against_dead_and_reused_pids(tmp_path):
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        log = tmp_path / "x.log"
        mine = Launched(other.pid, other.pid, time.time(), log)
        assert process.alive(mine)
        # Same pid, different group: a reused pid, not our attempt.
        assert not process.alive(Launched(other.pid, os.getpgrp(), 0.0, log))
        assert not process.alive(Launched(os.getpid(), other.pid, 0.0, log))
    finally:
        other.kill()
        other.wait()
    assert not process.alive(mine)
