"""The Ray executor against a real local Ray head (started once for the module: it takes 10-30 s
on a small machine), no stand-ins: jobs are submitted, followed, stopped and deleted through
Ray's Job Submission API, and the processes they start are looked for on this machine."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import anyio
import pytest

from core.config.model import RayExecutor as RaySettings
from core.executors import Adopted, AttemptSpec, Unproven
from core.executors import ray as ray_executor
from core.executors.ray import RayExecutor, submission_id
from core.state import Journal
from core.state.journal import AttemptRow
from tests.executors.ray_head import Head, ray_head
from tests.helpers import write_tables

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
    deadline = time.monotonic() + 20
    while await executor.find(spec) is not None:  # deleted shortly after (see RayJob.delete)
        assert time.monotonic() < deadline, "a forgotten job is deleted from the cluster"
        await anyio.sleep(0.5)


async def test_submitting_the_same_attempt_again_finds_the_job_it_is(head, tmp_path, monkeypatch):
    # and a log past the polling limit goes on over the websocket, nothing written twice
    monkeypatch.setattr(ray_executor, "POLL_LOGS_UP_TO", 10)
    executor = executor_for(head)
    spec = spec_for(tmp_path, "import time\ntime.sleep(2)\nprint('once')")
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


def row_for(spec: AttemptSpec, attempt_id: int) -> AttemptRow:
    return AttemptRow(
        attempt_id, 1, 1, spec.argv, spec.log_path, None, None, time.time(), None, None, None,
        None, None, (), executor="ray", remote_ref=spec.remote_ref,
    )  # fmt: skip


async def test_a_new_engine_adopts_running_and_finished_jobs_and_forgets_unknown_ones(
    head, tmp_path
):
    """What `recover` finds with a fresh executor (as the next engine has): a running job is
    adopted and watched to its end, its whole output mirrored once; a finished one is adopted
    dead, its exit status kept; an id the cluster does not know is gone."""
    first = executor_for(head)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    running = spec_for(
        tmp_path / "a",
        "import time\nfor i in range(10):\n    print('tick', i, flush=True)\n    time.sleep(1)",
    )
    finished = spec_for(tmp_path / "b", "import sys\nprint('done')\nsys.exit(4)")
    unknown = spec_for(tmp_path, "print(1)")
    await first.submit(finished)
    await first.start(running)  # and the first engine dies: nobody watches either job
    await anyio.sleep(6.0)  # the finished one is over by now, the running one runs on
    second = executor_for(head)
    found = await second.recover(
        [
            (row_for(running, 1), running),
            (row_for(finished, 2), finished),
            (row_for(unknown, 3), unknown),
        ]
    )
    assert isinstance(found[3], Unproven) and found[3].gone
    adopted, dead = found[1], found[2]
    assert isinstance(adopted, Adopted) and isinstance(dead, Adopted)
    assert adopted.alive and not dead.alive
    outcome = await dead.handle.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 4)
    outcome = await adopted.handle.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    ticks = [x for x in running.log_path.read_text().splitlines() if x.startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(10)], running.log_path.read_text()
    await adopted.handle.forget()
    await dead.handle.forget()


async def test_a_job_the_cluster_never_starts_ends_unstarted(head, tmp_path):
    """Ray fails a job pending past its limit (RAY_JOB_START_TIMEOUT_SECONDS, short on this
    head): the attempt is "unstarted", re-queued without spending a retry."""
    executor = RayExecutor(
        RaySettings(kind="ray", address=head.address, resources={"no_such_node_type": 1})
    )
    executor.poll = 0.5
    spec = spec_for(tmp_path, "print('never')")
    handle = await executor.start(spec)
    outcome = await handle.wait()
    assert outcome.reason == "unstarted", spec.log_path.read_text()
    assert "never" not in spec.log_path.read_text().splitlines()
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


# -- the engine on Ray: the real CLI, headless ------------------------------------------------

JOB = ROOT / "tests" / "jobs" / "record.py"
DATES = [f"2024-01-0{i}" for i in range(1, 7)]


def cli(*args: str) -> list[str]:
    return [PY, "-m", "core", *args]


def demo_on_ray(tmp_path: Path, address: str) -> Path:
    """The bundled demo with Phase 3 on the Ray head, its injected faults off (the job's env on
    a cluster is the processor's `env:` only, so the switch goes there)."""
    from core.demo.seed import seed_demo_warehouse

    text = (ROOT / "backfill.yaml").read_text()
    text = text.replace(
        "    max_parallel: 5\n",
        f'    max_parallel: 5\n    executor: {{kind: ray, address: "{address}"}}\n',
        1,
    )
    text = text.replace(
        'env: {SKIP_DOWNSTREAM_TRIGGER: "1"}',
        'env: {SKIP_DOWNSTREAM_TRIGGER: "1", BACKFILL_DEMO_FAULTS: "0"}',
    )
    assert "kind: ray" in text and "BACKFILL_DEMO_FAULTS: " in text
    path = tmp_path / "backfill.yaml"
    path.write_text(text)
    seed_demo_warehouse(tmp_path / ".backfill" / "warehouse")
    return path


def test_the_demos_phase_3_on_ray_ends_complete_with_its_logs_in_the_attempt_files(head, tmp_path):
    config = demo_on_ray(tmp_path, head.address)
    args = cli("run", "2024-01-15", "2024-01-16", "--phase", "analytics", "--headless")
    done = subprocess.run(
        [*args, "--ignore-preflight", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    logs = sorted((tmp_path / ".backfill" / "logs").glob("**/*.log"))
    assert logs, "no attempt log"
    for log in logs:
        text = log.read_text()
        assert "Running entrypoint for job backfill-" in text, (log, text)  # Ray's own words
        assert "backfill-" in text and "Traceback" not in text, (log, text)
    assert not list((tmp_path / ".backfill" / "logs").glob("**/*.mirrored"))
    assert not our_jobs_on(head, tmp_path), "finished jobs are deleted from the cluster"


def our_jobs_on(head: Head, tmp_path: Path) -> list[str]:
    """The submission ids of the jobs of this test's journal the cluster still has."""
    conn = sqlite3.connect(tmp_path / ".backfill" / "journal.sqlite")
    try:
        refs = {r for (r,) in conn.execute("SELECT remote_ref FROM attempts") if r}
    finally:
        conn.close()
    assert refs, "no attempt was journaled with its Ray job's id"
    with urllib.request.urlopen(head.address + "/api/jobs/", timeout=10) as r:
        jobs = json.load(r)
    return [j["submission_id"] for j in jobs if j.get("submission_id") in refs]


def record_config(tmp_path: Path, address: str, sleep: str) -> Path:
    wh = tmp_path / "wh"
    write_tables(wh, {"ds.base": {date.fromisoformat(d): 1 for d in DATES}}, date_column="d")
    env = f'{{WAREHOUSE: "{wh}", RECORD: "{tmp_path / "record.jsonl"}", FAULTS: ""}}'
    path = tmp_path / "backfill.yaml"
    path.write_text(
        f"""
name: ray-adoption
warehouse: {{kind: sqlite, path: wh}}
calendar: {{start: 2024-01-01, end: 2024-01-06}}
executor: {{kind: ray, address: "{address}"}}
phases:
  - name: src
    processors:
      - {{name: base, table: ds.base, date_column: d}}
  - name: work
    max_parallel: 3
    processors:
      - name: x
        table: ds.x
        date_column: d
        depends_on: [base]
        command: ["{{python}}", "{JOB}", x, "{{dates}}", "--sleep", "{sleep}"]
        env: {env}
        retries: 0
        timeout: 120s
        stall_timeout: 60s
"""
    )
    return path


def job_records(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "record.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_kill_9_of_the_engine_then_a_second_run_adopts_the_ray_jobs_by_id(head, tmp_path):
    config = record_config(tmp_path, head.address, sleep="4")
    args = [*cli("run", "2024-01-01", "2024-01-06", "--headless"), "--config", str(config)]
    engine = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        recs = job_records(tmp_path)
        ended = {r["pid"] for r in recs if r["kind"] == "end"}
        running = [r for r in recs if r["kind"] == "start" and r["pid"] not in ended]
        if ended and running:
            break  # some cells done, some jobs running on the cluster
        assert engine.poll() is None, engine.communicate()[0]
        assert time.monotonic() < deadline, recs
        time.sleep(0.1)
    engine.send_signal(signal.SIGKILL)
    engine.wait()
    second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Resuming run #1" in second.stdout
    starts = Counter(d for r in job_records(tmp_path) if r["kind"] == "start" for d in r["dates"])
    assert set(starts) == set(DATES)
    assert max(starts.values()) == 1, starts  # adopted, never started twice
    journal = Journal(tmp_path / ".backfill")
    assert any(kind == "attempt_adopted" for _, _, kind, _ in journal.events(1))
    assert not our_jobs_on(head, tmp_path), "finished jobs are deleted from the cluster"


def test_a_run_against_a_wrong_address_says_so_in_one_line(tmp_path):
    config = record_config(tmp_path, "http://127.0.0.1:9", sleep="0")
    done = subprocess.run(
        [*cli("run", "2024-01-01", "2024-01-01", "--headless"), "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out
    assert "the Ray Jobs API at http://127.0.0.1:9 did not answer" in out, out


def test_a_run_without_ray_installed_says_which_extra_in_one_line(tmp_path):
    config = record_config(tmp_path, "http://127.0.0.1:9", sleep="0")
    code = (
        "import runpy, sys\n"
        "sys.modules['ray'] = None  # as in an install without the extra\n"
        "sys.argv[0] = 'backfill'\n"
        "runpy.run_module('core', run_name='__main__')\n"
    )
    done = subprocess.run(
        [PY, "-c", code, "run", "2024-01-01", "--headless", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out
    assert [line for line in out.splitlines() if line.startswith("backfill:")] == [
        "backfill: executor kind ray needs the ray extra: uv sync --extra ray "
        "(or pip install 'backfill[ray]')"
    ], out
