"""The tag scan finds each attempt's own processes, and attempts asking together share a pass."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import anyio
import pytest

from core.process.groups import start_ticks
from core.process.leftovers import _SharedScan
from core.process.spec import TAG_VAR
from tests.process.support import HAVE_PROC

pytestmark = pytest.mark.skipif(not HAVE_PROC, reason="the tag scan reads /proc")


@pytest.fixture
def tagged() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Three sleepers in sessions of their own, each carrying another attempt's tag."""
    procs = {
        tag: subprocess.Popen(
            ["sleep", "30"], env={**os.environ, TAG_VAR: tag}, start_new_session=True
        )
        for tag in ("run1:a", "run1:b", "run1:c")
    }
    yield procs
    for proc in procs.values():
        proc.kill()
        proc.wait()


def test_each_attempt_gets_its_own_processes_from_one_shared_pass(
    tagged: dict[str, subprocess.Popen[bytes]],
) -> None:
    scan = _SharedScan()
    found: dict[str, set[int]] = {}

    async def ask(tag: str) -> None:
        found[tag] = await scan.members(tag, None, start_ticks(tagged[tag].pid))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for tag in tagged:
                tg.start_soon(ask, tag)

    anyio.run(main)
    assert found == {tag: {proc.pid} for tag, proc in tagged.items()}
    # the first ask starts a pass; the two that came while it ran share the next one
    assert scan._started < len(tagged)


def test_a_process_older_than_the_attempt_is_not_its_own(
    tagged: dict[str, subprocess.Popen[bytes]],
) -> None:
    older = tagged["run1:a"]
    ticks = start_ticks(older.pid)
    assert ticks is not None

    async def main() -> tuple[set[int], set[int]]:
        scan = _SharedScan()
        # a later attempt that reuses the tag (a retry) does not own what the first one left
        later = await scan.members("run1:a", None, ticks + 10_000)
        same = await scan.members("run1:a", None, ticks)
        return later, same

    later, same = anyio.run(main)
    assert later == set()
    assert same == {older.pid}


def test_a_process_group_member_without_the_tag_is_found_by_its_group() -> None:
    proc = subprocess.Popen(
        ["sleep", "30"],
        env={k: v for k, v in os.environ.items() if k != TAG_VAR},
        start_new_session=True,
    )
    try:
        found = anyio.run(_SharedScan().members, "run1:z", proc.pid, start_ticks(proc.pid))
        assert found == {proc.pid}
    finally:
        proc.kill()
        proc.wait()
