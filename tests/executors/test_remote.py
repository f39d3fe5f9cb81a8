"""What every remote executor shares (`core.executors.remote`): mirroring, stall, timeout,
cancel, adoption and "never started", driven through a backend of this test's own.

The backend below is a stand-in for a cluster, and only that: each job is a real subprocess of
this machine whose output goes to the backend's own file, read back through `follow` as a
cluster's log API would serve it, and whose stream the test can break. It proves the shared
machinery; the Ray and Cloud Run backends are tested against their own services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from core.executors import Adopted, AttemptSpec, Unproven
from core.executors.remote import JobStatus, Mirror, RemoteExecutor, RemoteJob
from core.state.journal import AttemptRow

pytestmark = pytest.mark.anyio


class ToyJob:
    def __init__(self, ref: str, proc: subprocess.Popen[bytes] | None, out: Path) -> None:
        self._ref = ref
        self.proc = proc
        self.out = out
        self.broken = False  # while True, every read of the stream fails
        self.deleted = False
        self.stops = 0
        self.pending_forever = False
        self.pending_until = 0.0  # time.monotonic() until which the job is said to be pending

    @property
    def ref(self) -> str:
        return self._ref

    async def status(self) -> JobStatus:
        if self.deleted:
            return JobStatus("unknown")
        if self.pending_forever:
            return JobStatus("ended", message="pending past the cluster's limit", unstarted=True)
        if time.monotonic() < self.pending_until:
            return JobStatus("pending")
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return JobStatus("running")
        return JobStatus("ended", exit_code=code if code >= 0 else 128 - code, message="done")

    async def follow(self, offset: int) -> AsyncIterator[bytes]:
        while True:
            if self.broken:
                raise ConnectionResetError("stream reset by the toy cluster")
            with open(self.out, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            yield chunk
            if self.proc is None or self.proc.poll() is not None:
                with open(self.out, "rb") as f:
                    f.seek(offset)
                    rest = f.read()
                if rest:
                    yield rest
                return
            await anyio.sleep(0.05)

    async def stop(self) -> None:
        self.stops += 1
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    async def delete(self) -> None:
        self.deleted = True


class ToyExecutor(RemoteExecutor):
    kind = "toy"
    poll = 0.05

    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs: dict[str, ToyJob] = {}

    def reference(self, tag: str) -> str:
        return f"toy-{tag}"

    async def submit(self, spec: AttemptSpec) -> RemoteJob:
        ref = self.reference(spec.tag)
        out = self.root / f"{ref}.out"
        with open(out, "wb") as f:
            proc = subprocess.Popen(
                spec.argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.jobs[ref] = ToyJob(ref, proc, out)
        return self.jobs[ref]

    async def find(self, spec: AttemptSpec) -> RemoteJob | None:
        return self.jobs.get(spec.remote_ref or "")


def spec_for(
    tmp_path: Path, code: str, *, timeout: float | None = None, stall_timeout: float | None = None
) -> AttemptSpec:
    return AttemptSpec(
        argv=(sys.executable, "-u", "-c", code),
        env={},
        cwd=tmp_path,
        log_path=tmp_path / "attempt.log",
        timeout=timeout,
        stall_timeout=stall_timeout,
        grace=1.0,
        tag="7@journal",
        remote_ref="toy-7@journal",
    )


async def test_output_is_mirrored_into_the_attempt_log_and_the_exit_status_kept(
    tmp_path: Path,
) -> None:
    executor = ToyExecutor(tmp_path)
    spec = spec_for(tmp_path, "import sys\nfor i in range(5): print('line', i)\nsys.exit(3)")
    handle = await executor.start(spec)
    outcome = await handle.wait()
    log = spec.log_path.read_text()
    assert [f"line {i}" for i in range(5)] == [x for x in log.splitlines() if x.startswith("line")]
    assert (outcome.reason, outcome.exit_code) == ("exit", 3)
    assert "job toy-7@journal: done" in log  # the backend's words on a failed end
    assert not (tmp_path / "attempt.log.mirrored").exists()
    await handle.forget()
    assert executor.jobs["toy-7@journal"].deleted


async def test_a_broken_stream_reconnects_writes_nothing_twice_and_is_no_stall(
    tmp_path: Path,
) -> None:
    executor = ToyExecutor(tmp_path)
    code = "import time\nfor i in range(30):\n    print('tick', i, flush=True)\n    time.sleep(0.1)"
    spec = spec_for(tmp_path, code, stall_timeout=1.0)
    handle = await executor.start(spec)
    job = executor.jobs["toy-7@journal"]
    async with anyio.create_task_group() as tg:

        async def break_for_a_while() -> None:
            await anyio.sleep(0.5)
            job.broken = True  # longer than the stall limit, while the job prints on
            await anyio.sleep(1.8)
            job.broken = False

        tg.start_soon(break_for_a_while)
        outcome = await handle.wait()
    ticks = [x for x in spec.log_path.read_text().splitlines() if x.startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(30)]
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    assert "reconnecting" in spec.log_path.read_text()


async def test_a_silent_job_is_stopped_as_stalled(tmp_path: Path) -> None:
    executor = ToyExecutor(tmp_path)
    spec = spec_for(
        tmp_path, "import time\nprint('hello', flush=True)\ntime.sleep(60)", stall_timeout=0.6
    )
    handle = await executor.start(spec)
    with anyio.fail_after(20):
        outcome = await handle.wait()
    assert outcome.reason == "stall"
    assert executor.jobs["toy-7@journal"].proc.poll() is not None  # type: ignore[union-attr]
    assert "stalled: no output for 0.6s; stopping job toy-7@journal" in spec.log_path.read_text()


async def test_a_job_still_pending_is_not_stalled_and_its_log_folder_is_made(
    tmp_path: Path,
) -> None:
    executor = ToyExecutor(tmp_path)
    spec = spec_for(tmp_path, "print('at last', flush=True)", stall_timeout=0.5)
    spec = replace(spec, log_path=tmp_path / "logs" / "run-1" / "attempt.log")
    handle = await executor.start(spec)
    executor.jobs["toy-7@journal"].pending_until = time.monotonic() + 2.0  # 4x the limit
    outcome = await handle.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    assert "at last" in spec.log_path.read_text()


async def test_timeout_and_cancel_stop_the_job_before_wait_returns(tmp_path: Path) -> None:
    executor = ToyExecutor(tmp_path)
    spec = spec_for(tmp_path, "import time\ntime.sleep(60)", timeout=0.5)
    with anyio.fail_after(20):
        outcome = await (await executor.start(spec)).wait()
    assert outcome.reason == "timeout"
    assert executor.jobs["toy-7@journal"].proc.poll() is not None  # type: ignore[union-attr]

    executor = ToyExecutor(tmp_path)
    handle = await executor.start(spec_for(tmp_path, "import time\ntime.sleep(60)"))
    async with anyio.create_task_group() as tg:
        results = []

        async def watch() -> None:
            results.append(await handle.wait())

        tg.start_soon(watch)
        await anyio.sleep(0.3)
        with anyio.fail_after(20):
            await handle.cancel()
        # cancel() returns once the job is over, not once it was asked to stop
        assert executor.jobs["toy-7@journal"].proc.poll() is not None  # type: ignore[union-attr]
    assert results[0].reason == "cancelled"


async def test_an_adopting_engine_goes_on_where_the_mirror_stopped(tmp_path: Path) -> None:
    executor = ToyExecutor(tmp_path)
    code = "import time\nfor i in range(20):\n    print('n', i, flush=True)\n    time.sleep(0.05)"
    spec = spec_for(tmp_path, code)
    await executor.start(spec)
    await anyio.sleep(0.4)
    # What an engine killed -9 while it watched left: part of the output mirrored, and counted.
    Mirror(spec.log_path).write(executor.jobs["toy-7@journal"].out.read_bytes())
    assert Mirror(spec.log_path).offset > 0
    found = await executor.recover([(row_for(spec), spec)])
    adopted = found[1]
    assert isinstance(adopted, Adopted)
    await adopted.handle.wait()
    lines = [x for x in spec.log_path.read_text().splitlines() if x.startswith("n ")]
    assert lines == [f"n {i}" for i in range(20)]


async def test_a_job_the_backend_forgot_is_not_adopted_and_one_never_started_is_unstarted(
    tmp_path: Path,
) -> None:
    executor = ToyExecutor(tmp_path)
    spec = spec_for(tmp_path, "print('x')")
    assert isinstance((await executor.recover([(row_for(spec), spec)]))[1], Unproven)

    handle = await executor.start(spec)
    executor.jobs["toy-7@journal"].pending_forever = True
    outcome = await handle.wait()
    assert outcome.reason == "unstarted"


def row_for(spec: AttemptSpec) -> AttemptRow:
    return AttemptRow(
        1, 1, 1, spec.argv, spec.log_path, None, None, 0.0, None, None, None, None, None, (),
        executor="toy", remote_ref=spec.remote_ref,
    )  # fmt: skip
