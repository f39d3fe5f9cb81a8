"""The Ray executor against a real local Ray head (started once for the module: it takes 10-30 s
on a small machine), no stand-ins: jobs are submitted, followed, stopped and deleted through
Ray's Job Submission API, and the processes they start are looked for on this machine."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from core.config.model import RayExecutor as RaySettings
from core.executors import AttemptSpec
from core.executors.ray import RayExecutor, submission_id
from tests.executors.ray_head import Head, ray_head

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

# A command that leaves a double-forked child behind (re-parented away from the job's process
# tree, still in the command's process group), writes its pid, then does what `then` says.
DOUBLE_FORK = """
import os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    if os.fork() == 0:
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        time.sleep(600)
    os._exit(0)
print("forked", flush=True)
"""


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    with ray_head() as h:
        yield h


def executor_for(head: Head) -> RayExecutor:
    executor = RayExecutor(RaySettings(kind="ray", address=head.address))
    executor.poll = 0.3
    return executor


def spec_for(
    tmp_path: Path,
    code: str,
    *args: str,
    timeout: float | None = None,
    stall_timeout: float | None = None,
    tag: str | None = None,
) -> AttemptSpec:
    tag = tag or f"{time.monotonic_ns()}@{tmp_path}/journal"
    return AttemptSpec(
        argv=(PY, "-u", "-c", code, *args),
        env={"DEMO_SETTING": "on"},
        cwd=tmp_path,
        log_path=tmp_path / "attempt.log",
        timeout=timeout,
        stall_timeout=stall_timeout,
        grace=1.0,
        tag=tag,
        processor="p",
        remote_ref=submission_id(tag),
    )


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def wait_for_file(path: Path, limit: float = 60.0) -> str:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await anyio.sleep(0.1)
    return path.read_text()


async def test_a_job_runs_with_its_env_and_cwd_its_output_mirrored_and_status_kept(head, tmp_path):
    executor = executor_for(head)
    code = (
        "import os, sys\n"
        "print('attempt', os.environ['BACKFILL_ATTEMPT'])\n"
        "print('setting', os.environ['DEMO_SETTING'])\n"
        "print('cwd', os.getcwd())\n"
        "for i in range(3): print('line', i)\n"
        "sys.exit(3)"
    )
    spec = spec_for(tmp_path, code)
    handle = await executor.start(spec)
    outcome = await handle.wait()
    log = spec.log_path.read_text()
    assert (outcome.reason, outcome.exit_code) == ("exit", 3), log
    assert f"attempt {spec.tag}" in log
    assert "setting on" in log
    assert f"cwd {tmp_path}" in log
    assert [f"line {i}" for i in range(3)] == [x for x in log.splitlines() if x.startswith("line")]
    client = await executor.client()
    info = await anyio.to_thread.run_sync(client.get_job_info, spec.remote_ref)
    assert info.metadata is not None
    assert info.metadata["backfill_processor"] == "p"
    assert info.metadata["backfill_attempt"] == spec.tag
    await handle.forget()
    job = await executor.find(spec)
    assert job is None, "a forgotten job is deleted from the cluster"


async def test_submitting_the_same_attempt_again_finds_the_job_it_is(head, tmp_path):
    executor = executor_for(head)
    spec = spec_for(tmp_path, "print('once')")
    first = await executor.start(spec)
    again = await executor.start(spec)  # a dead engine had submitted it: the same job
    assert again.job.ref == first.job.ref == submission_id(spec.tag)
    outcome = await again.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    assert spec.log_path.read_text().splitlines().count("once") == 1
    await again.forget()


@pytest.mark.parametrize("how", ["stall", "timeout", "cancel"])
async def test_stall_timeout_and_cancel_end_the_job_and_its_double_forked_child(
    head, tmp_path, how
):
    executor = executor_for(head)
    pidfile = tmp_path / "child.pid"
    tick = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.3)\n"
    silent = "import time\ntime.sleep(600)\n"
    body = DOUBLE_FORK + (silent if how == "stall" else tick)
    spec = spec_for(
        tmp_path,
        body,
        str(pidfile),
        stall_timeout=3.0 if how == "stall" else None,
        timeout=8.0 if how == "timeout" else None,
    )
    handle = await executor.start(spec)
    async with anyio.create_task_group() as tg:
        result = {}

        async def watch() -> None:
            result["outcome"] = await handle.wait()

        tg.start_soon(watch)
        child = int(await wait_for_file(pidfile))
        assert alive(child)
        if how == "cancel":
            await anyio.sleep(1.0)
            await handle.cancel()
    outcome = result["outcome"]
    log = spec.log_path.read_text()
    assert outcome.reason == ("cancelled" if how == "cancel" else how), log
    assert not alive(child), "the double-forked child outlived the job"
    status = await handle.job.status()
    assert status.state == "ended"
    await handle.forget()


async def test_a_wrong_address_is_one_clear_line(tmp_path):
    executor = RayExecutor(RaySettings(kind="ray", address="http://127.0.0.1:9"))
    with pytest.raises(OSError) as err:
        await executor.start(spec_for(tmp_path, "print(1)"))
    text = str(err.value)
    assert "\n" not in text
    assert "the Ray Jobs API at http://127.0.0.1:9 did not answer" in text


def test_without_ray_installed_the_executor_says_which_extra_in_one_line(tmp_path):
    # ray made unimportable, as in an install without the extra
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"
        "from core.config.model import RayExecutor as S\n"
        "from core.errors import UserError\n"
        "from core.executors.ray import RayExecutor\n"
        "try:\n"
        "    RayExecutor(S(kind='ray', address='http://127.0.0.1:9'))\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [PY, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == (
        "executor kind ray needs the ray extra: uv sync --extra ray "
        "(or pip install 'backfill[ray]')"
    )


def test_a_token_env_that_is_unset_is_refused_by_name(monkeypatch):
    from core.errors import UserError

    monkeypatch.delenv("BACKFILL_TEST_RAY_TOKEN", raising=False)
    with pytest.raises(UserError, match="BACKFILL_TEST_RAY_TOKEN"):
        RayExecutor(
            RaySettings(kind="ray", address="http://x:1", token_env="BACKFILL_TEST_RAY_TOKEN")
        )
    monkeypatch.setenv("BACKFILL_TEST_RAY_TOKEN", "s3cret")
    executor = RayExecutor(
        RaySettings(kind="ray", address="http://x:1", token_env="BACKFILL_TEST_RAY_TOKEN")
    )
    assert executor._headers == {"Authorization": "Bearer s3cret"}
