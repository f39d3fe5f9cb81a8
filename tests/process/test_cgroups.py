"""Attempts' cgroups: one per running attempt, labelled with its tag, used again once emptied,
and none left behind by a process that has ended. Real cgroups, where this machine lets this
process make them (skipped elsewhere)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from core import process
from core.process import cgroups
from tests.process.support import PY, ROOT, py, spec

_USABLE, _FOUND = cgroups.probe()
pytestmark = pytest.mark.skipif(_USABLE is None, reason=f"no cgroup v2 for attempts here: {_FOUND}")

SLEEPS_A_LITTLE = "import time; time.sleep(0.3)"


def own_cgroup() -> Path | None:
    return cgroups.cgroup_of("self")


@pytest.mark.anyio
async def test_an_emptied_cgroup_is_the_next_attempts_labelled_with_its_tag(tmp_path):
    home = own_cgroup()
    first = await process.start(spec(tmp_path, py(SLEEPS_A_LITTLE), tag="1@journal"))
    group = process.attempt_cgroup("1@journal")
    assert group is not None and group.parent == home
    assert cgroups.cgroup_of(str(first.launched.pid)) == group
    assert own_cgroup() == home  # the engine went back home right after the spawn
    await first.wait()
    # Kept, but no longer the first's: recovery looking for it must not find the next one's.
    assert group.is_dir() and process.attempt_cgroup("1@journal") is None

    second = await process.start(spec(tmp_path, py(SLEEPS_A_LITTLE), tag="2@journal"))
    # The same folder, now the second's: the first's tag names no cgroup any more.
    assert process.attempt_cgroup("2@journal") == group
    assert cgroups.cgroup_of(str(second.launched.pid)) == group
    assert process.attempt_cgroup("1@journal") is None
    await second.wait()
    assert group.is_dir()  # kept for the next one


@pytest.mark.anyio
async def test_a_cgroup_something_was_left_in_is_not_used_again(tmp_path):
    pid_file = tmp_path / "escapee"
    leaves_one = f"""
        import subprocess
        w = subprocess.Popen(['sleep', '60'], start_new_session=True)
        open({str(pid_file)!r}, 'w').write(str(w.pid))
    """
    first = await process.start(spec(tmp_path, py(leaves_one), tag="1@journal", grace=0.5))
    group = process.attempt_cgroup("1@journal")
    outcome = await first.wait()
    assert outcome.leftovers == 1
    assert group is not None and not group.exists()  # ended with what was left, then removed
    second = await process.start(spec(tmp_path, py(SLEEPS_A_LITTLE), tag="2@journal"))
    assert process.attempt_cgroup("2@journal") not in (None, group)
    await second.wait()


ENGINE = """
import os, sys
from pathlib import Path
import anyio
from core import process
spec = process.AttemptSpec(
    argv=("sleep", "0.1"), env={}, cwd=Path(sys.argv[1]), log_path=Path(sys.argv[1]) / "a.log",
    timeout=None, stall_timeout=None, tag="ended@" + sys.argv[1],
)
async def main():
    attempt = await process.start(spec)
    print(process.attempt_cgroup(spec.tag))  # kept once the attempt has ended
    await attempt.wait()
anyio.run(main)
sys.stdout.flush()
if sys.argv[2] == "crash":
    os._exit(0)  # like kill -9: nothing is cleaned up
"""


def engine_process(tmp_path: Path, how: str) -> Path:
    done = subprocess.run(
        [PY, "-c", ENGINE, str(tmp_path), how],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return Path(done.stdout.strip())


def test_a_process_that_exits_leaves_none_of_its_cgroups(tmp_path):
    kept = engine_process(tmp_path, "exit")
    assert kept.name.startswith(cgroups.PREFIX) and not kept.exists()


def test_what_a_crashed_process_kept_is_removed_by_the_next_one(tmp_path):
    kept = engine_process(tmp_path, "crash")
    assert kept.is_dir()  # empty, but nobody removed it
    # A sibling of ours: its first look at the cgroup tree removes what ended processes kept.
    subprocess.run(
        [PY, "-c", "from core.process import cgroups; assert cgroups.unusable() is None"],
        cwd=ROOT,
        check=True,
        timeout=30,
    )
    assert not kept.exists()


def test_a_live_process_keeps_its_cgroups(tmp_path):
    """The sweep spares a process that still runs, and never touches one with a process in."""
    mine = own_cgroup()
    assert mine is not None
    theirs = mine / f"{cgroups.PREFIX}{os.getppid()}-0123abcd-1"  # pytest's parent: alive
    theirs.mkdir()
    try:
        subprocess.run(
            [PY, "-c", "from core.process import cgroups; assert cgroups.unusable() is None"],
            cwd=ROOT,
            check=True,
            timeout=30,
        )
        assert theirs.is_dir()
    finally:
        theirs.rmdir()
