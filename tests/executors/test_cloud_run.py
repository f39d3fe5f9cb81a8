"""The Cloud Run Jobs executor (`core.executors.cloud_run`) with the real `google-cloud-run` and
`google-cloud-logging` clients, against a local stand-in for their REST APIs.

No Cloud Run emulator exists. The server below is a real HTTP server on 127.0.0.1 that serves
only the endpoints our code calls (run a job, get / list / cancel an execution, list its tasks,
get a job, list log entries), CHECKS every request it gets (the overrides' args, env, task count
and timeout; no credentials sent), and plays each execution as a scripted state machine over
wall-clock time. It proves our requests and our handling of the answers, not Cloud Run: how
Cloud Run really schedules, retries, logs and reports is only exercised by the smoke test at
the end, which runs when `BACKFILL_CLOUD_RUN_PROJECT` names a project to run a real job in.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import anyio
import pytest

pytest.importorskip("google.cloud.run_v2", reason="the cloud-run extra is not installed")

from core import cloud_run
from core.cloud_run import check_jobs
from core.config import load_config
from core.config.model import CloudRunExecutor as Settings
from core.config.model import CloudRunJob
from core.executors import Adopted, AttemptSpec, executors_for
from core.executors.cloud_run import CloudRunExecutor
from core.state.journal import AttemptRow
from tests.helpers import write_config

pytestmark = pytest.mark.anyio

PROJECT, REGION, JOB = "nba-props-platform", "us-west2", "player-game-summary-analytics-backfill"
PARENT = f"projects/{PROJECT}/locations/{REGION}"


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Script:
    """What one execution does: pending `start_after` s, prints `lines` (seconds after its
    start, text), ends `end_after` s after its start with `exit_code` (None: runs until
    cancelled)."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    end_after: float | None = 0.5
    exit_code: int = 0
    start_after: float = 0.1
    json_lines: bool = False  # entries as jsonPayload {"message": ...} instead of textPayload
    lag: float = 0.0  # an entry is listed this long after its timestamp (ingestion lag)


@dataclass
class Run:
    name: str
    job: str
    script: Script
    overrides: dict[str, Any]
    created: float
    cancelled_at: float | None = None
    reported: bool = False  # its success was seen (and `on_success` called)

    def elapsed(self, now: float) -> float:
        return now - self.created - self.script.start_after

    def ended_at(self) -> float | None:
        start = self.created + self.script.start_after
        ends = [] if self.script.end_after is None else [start + self.script.end_after]
        if self.cancelled_at is not None:
            ends.append(self.cancelled_at)
        return min(ends) if ends else None

    def resource(self, now: float) -> dict[str, Any]:
        container = self.overrides.get("containerOverrides", [{}])[0]
        body: dict[str, Any] = {
            "name": self.name,
            "job": self.job,
            "createTime": rfc3339(self.created),
            "taskCount": 1,
            "template": {
                "containers": [
                    {
                        "image": "img",
                        "args": container.get("args", []),
                        "env": container.get("env", []),
                    }
                ],
                "maxRetries": 0,
            },
        }
        ended = self.ended_at()
        started = self.created + self.script.start_after
        if now >= started and (self.cancelled_at is None or self.cancelled_at > started):
            body["startTime"] = rfc3339(started)
        if ended is not None and now >= ended:
            body["completionTime"] = rfc3339(ended)
            if self.cancelled_at is not None and self.cancelled_at <= ended:
                body["cancelledCount"] = 1
                body["conditions"] = [
                    {
                        "type": "Completed",
                        "state": "CONDITION_FAILED",
                        "message": "The execution was cancelled.",
                    }
                ]
            elif self.script.exit_code == 0:
                body["succeededCount"] = 1
                body["conditions"] = [
                    {
                        "type": "Completed",
                        "state": "CONDITION_SUCCEEDED",
                        "message": "Execution completed successfully in 1s.",
                    }
                ]
            else:
                body["failedCount"] = 1
                body["conditions"] = [
                    {
                        "type": "Completed",
                        "state": "CONDITION_FAILED",
                        "message": "Task "
                        f"{self.name.rsplit('/', 1)[-1]}-task0 failed with exit code "
                        f"{self.script.exit_code}.",
                    }
                ]
        elif "startTime" in body:
            body["runningCount"] = 1
        return body

    def entries(self, now: float) -> list[dict[str, Any]]:
        started = self.created + self.script.start_after
        stop = min(now, self.ended_at() or now)
        out = []
        for i, (at, text) in enumerate(self.script.lines):
            if started + at > stop:
                break
            if started + at + self.script.lag > now:
                continue
            entry: dict[str, Any] = {
                "insertId": f"{self.name}-{i}",
                "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout",
                "timestamp": rfc3339(started + at),
                "resource": {"type": "cloud_run_job", "labels": {"job_name": self.job}},
                "labels": {"run.googleapis.com/execution_name": self.name.rsplit("/", 1)[-1]},
            }
            if self.script.json_lines:
                entry["jsonPayload"] = {"message": text, "severity": "INFO"}
            else:
                entry["textPayload"] = text
            out.append(entry)
        return out


class FakeCloudRun:
    """The REST endpoints the clients call, on 127.0.0.1 (see the module's docstring)."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.scripts: dict[str, list[Script]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.problems: list[str] = []  # requests the server refused: each fails the test
        self.cancels: list[str] = []
        self.log_reads = 0
        self.logs_refused_until = 0.0  # Cloud Logging's read quota, used up until then
        self.lose_run_answers = 0  # the next N runs start, but their answer is a 503
        #: called once per execution when it is first seen succeeded (the job's own writes)
        self.on_success: Callable[[Run], None] | None = None
        self._lock = threading.Lock()
        self._counter = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def add_job(self, job: str, *, max_retries: int | None = 0, updated: float = 0.0) -> None:
        task: dict[str, Any] = {"containers": [{"image": f"us-west2-docker.pkg.dev/x/{job}"}]}
        if max_retries is not None:
            task["maxRetries"] = max_retries
        self.jobs[job] = {
            "name": f"{PARENT}/jobs/{job}",
            "updateTime": rfc3339(updated or time.time()),
            "template": {"taskCount": 1, "template": task},
        }

    def queue(self, job: str, script: Script) -> None:
        self.scripts.setdefault(job, []).append(script)

    # -- the server ---------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}") if length else {}
        if h.headers.get("Authorization"):
            self.problems.append(f"{method} {url.path}: credentials were sent")
        with self._lock:
            self.requests.append((method, url.path, body))
            status, answer = self.route(method, url.path, body)
        data = json.dumps(answer).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = time.time()
        jobs = re.escape(f"/v2/{PARENT}/jobs/")
        if method == "POST" and path == "/v2/entries:list":
            return self.list_entries(body, now)
        if m := re.fullmatch(jobs + r"([^/:]+):run", path):
            return self.run_job(m[1], body, now)
        if m := re.fullmatch(jobs + r"([^/:]+)", path):
            job = self.jobs.get(m[1])
            return (200, job) if job else not_found(path)
        if m := re.fullmatch(jobs + r"([^/:]+)/executions", path):
            runs = [r for r in self.runs.values() if r.job == m[1]]
            return 200, {"executions": [self.seen(r, now) for r in reversed(runs)]}
        if m := re.fullmatch(jobs + r"[^/:]+/executions/[^/:]+", path):
            run = self.runs.get(path[len("/v2/") :])
            return (200, self.seen(run, now)) if run else not_found(path)
        if method == "POST" and path.endswith(":cancel"):
            run = self.runs.get(path[len("/v2/") : -len(":cancel")])
            if run is None:
                return not_found(path)
            self.cancels.append(run.name)
            ended = run.ended_at()
            if ended is not None and ended <= now:
                return 400, {
                    "error": {
                        "code": 400,
                        "status": "FAILED_PRECONDITION",
                        "message": "execution already completed",
                    }
                }
            run.cancelled_at = now + 0.2  # Cloud Run takes a moment to stop the task
            return 200, operation(run, now)
        if path.endswith("/tasks"):
            run = self.runs.get(path[len("/v2/") : -len("/tasks")])
            if run is None:
                return not_found(path)
            resource = self.seen(run, now)
            task: dict[str, Any] = {"name": f"{run.name}/tasks/{run.name[-4:]}-task0"}
            if "completionTime" in resource and run.cancelled_at is None:
                task["lastAttemptResult"] = {"exitCode": run.script.exit_code}
            return 200, {"tasks": [task]}
        self.problems.append(f"unexpected request {method} {path}")
        return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": path}}

    def seen(self, run: Run, now: float) -> dict[str, Any]:
        resource = run.resource(now)
        if "succeededCount" in resource and not run.reported:
            run.reported = True
            if self.on_success is not None:
                self.on_success(run)
        return resource

    def run_job(self, job: str, body: dict[str, Any], now: float) -> tuple[int, dict[str, Any]]:
        overrides = body.get("overrides", {})
        containers = overrides.get("containerOverrides", [])
        problems = []
        if job not in self.jobs:
            return not_found(job)
        if overrides.get("taskCount") != 1:
            problems.append(f"taskCount {overrides.get('taskCount')!r}, expected 1")
        if len(containers) != 1:
            problems.append(f"{len(containers)} container overrides, expected 1")
        env = {e["name"]: e.get("value") for c in containers for e in c.get("env", [])}
        if not env.get("BACKFILL_ATTEMPT"):
            problems.append("no BACKFILL_ATTEMPT in the env overrides")
        if not re.fullmatch(r"\d+s", overrides.get("timeout", "")):
            problems.append(f"timeout {overrides.get('timeout')!r}, expected whole seconds")
        if problems:
            self.problems.extend(problems)
            return 400, {
                "error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "; ".join(problems)}
            }
        self._counter += 1
        name = f"{PARENT}/jobs/{job}/executions/{job}-{self._counter:05d}"
        queued = self.scripts.get(job) or [Script()]
        script = queued.pop(0) if len(queued) > 1 else queued[0]  # the last one goes on
        self.runs[name] = Run(name, job, script, overrides, now)
        if self.lose_run_answers:
            self.lose_run_answers -= 1
            return 503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "lost"}}
        return 200, operation(self.runs[name], now)

    def list_entries(self, body: dict[str, Any], now: float) -> tuple[int, dict[str, Any]]:
        self.log_reads += 1
        if now < self.logs_refused_until:
            return 429, {
                "error": {
                    "code": 429,
                    "status": "RESOURCE_EXHAUSTED",
                    "message": "Quota exceeded for ReadRequestsPerMinute",
                }
            }
        query = body.get("filter", "")
        if body.get("resourceNames") != [f"projects/{PROJECT}"]:
            self.problems.append(f"entries:list resourceNames {body.get('resourceNames')}")
        if 'resource.type="cloud_run_job"' not in query:
            self.problems.append(f"entries:list filter without the resource type: {query}")
        m = re.search(r'labels\."run\.googleapis\.com/execution_name"="([^"]+)"', query)
        if m is None:
            self.problems.append(f"entries:list filter without the execution: {query}")
            return 200, {}
        since = re.search(r'timestamp>="([^"]+)"', query)
        entries = [
            e
            for run in self.runs.values()
            if run.name.endswith("/" + m[1])
            for e in run.entries(now)
            if since is None or e["timestamp"] >= since[1].replace("+00:00", "Z")
        ]
        return 200, {"entries": entries}


def not_found(what: str) -> tuple[int, dict[str, Any]]:
    return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": f"{what} not found"}}


def operation(run: Run, now: float) -> dict[str, Any]:
    metadata = {"@type": "type.googleapis.com/google.cloud.run.v2.Execution", **run.resource(now)}
    return {"name": f"{PARENT}/operations/op-{run.name[-5:]}", "metadata": metadata}


@pytest.fixture
def fake() -> Iterator[FakeCloudRun]:
    server = FakeCloudRun()
    thread = threading.Thread(target=server.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
    assert not server.problems, server.problems


def executor_for(fake: FakeCloudRun, *, stall_slack: float = 0.0) -> CloudRunExecutor:
    executor = CloudRunExecutor(
        Settings(kind="cloud_run", project=PROJECT, region=REGION, api_endpoint=fake.url),
        {"pgs": CloudRunJob(job=JOB, args_from=3)},
    )
    executor.poll = 0.1
    executor.log_poll = 0.1
    executor.log_poll_ended = 0.1
    executor.log_settle = 0.5
    executor.stall_slack = stall_slack
    return executor


def spec_for(
    tmp_path: Path,
    *,
    timeout: float | None = 7200,
    stall_timeout: float | None = None,
    remote_ref: str | None = None,
) -> AttemptSpec:
    return AttemptSpec(
        argv=(sys.executable, "-m", "jobs.pgs", "--start-date=2024-01-02", "--end-date=2024-01-03"),
        env={"PGS_MODE": "backfill"},
        cwd=tmp_path,
        log_path=tmp_path / "attempt.log",
        timeout=timeout,
        stall_timeout=stall_timeout,
        grace=1.0,
        tag="7@/srv/.backfill/journal.sqlite",
        processor="pgs",
        remote_ref=remote_ref,
    )


def row_for(spec: AttemptSpec) -> AttemptRow:
    return AttemptRow(
        7, 1, 1, spec.argv, spec.log_path, None, None, time.time(), None, None, None, None, None,
        (), executor="cloud_run", remote_ref=spec.remote_ref,
    )  # fmt: skip


async def test_an_attempt_runs_to_success_with_its_log_mirrored(tmp_path, fake):
    fake.add_job(JOB)
    lines = [(0.05 * i, f"processed 2024-01-0{2 + i % 2} batch {i}") for i in range(6)]
    fake.queue(JOB, Script(lines=lines, end_after=0.6))
    spec = spec_for(tmp_path)
    handle = await executor_for(fake).start(spec)
    with anyio.fail_after(20):
        outcome = await handle.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    log = spec.log_path.read_text()
    assert [x for x in log.splitlines() if x.startswith("processed")] == [t for _, t in lines]
    assert handle.launched.ref == f"{PARENT}/jobs/{JOB}/executions/{JOB}-00001"
    # The request: args from args_from on, env with the attempt's tag, one task, the timeout.
    [(_, path, body)] = [r for r in fake.requests if r[1].endswith(":run")]
    assert path == f"/v2/{PARENT}/jobs/{JOB}:run"
    [container] = body["overrides"]["containerOverrides"]
    assert container["args"] == ["--start-date=2024-01-02", "--end-date=2024-01-03"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"PGS_MODE": "backfill", "BACKFILL_ATTEMPT": spec.tag}
    assert (body["overrides"]["taskCount"], body["overrides"]["timeout"]) == (1, "7200s")
    await handle.forget()  # executions are kept: nothing is deleted
    assert not [r for r in fake.requests if r[0] == "DELETE"]


async def test_a_failed_execution_gives_its_tasks_exit_code_and_json_lines_read(tmp_path, fake):
    fake.add_job(JOB)
    fake.queue(JOB, Script(lines=[(0.0, "boom: table not found")], exit_code=3, json_lines=True))
    spec = spec_for(tmp_path)
    with anyio.fail_after(20):
        outcome = await (await executor_for(fake).start(spec)).wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 3)
    log = spec.log_path.read_text()
    assert "boom: table not found" in log
    assert "Completed: Task " in log and "failed with exit code 3" in log  # its own words


async def test_cancel_sends_cancel_execution_and_ends_cancelled(tmp_path, fake):
    fake.add_job(JOB)
    fake.queue(JOB, Script(lines=[(0.0, "working")], end_after=None))
    spec = spec_for(tmp_path)
    handle = await executor_for(fake).start(spec)
    results = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            results.append(await handle.wait())

        tg.start_soon(watch)
        await anyio.sleep(0.5)
        with anyio.fail_after(20):
            await handle.cancel()
    assert results[0].reason == "cancelled"
    assert fake.cancels == [handle.launched.ref]
    assert "cancelledCount" in fake.runs[handle.launched.ref].resource(time.time())


async def test_a_silent_execution_is_stopped_past_stall_timeout_plus_the_slack(tmp_path, fake):
    fake.add_job(JOB)
    fake.queue(JOB, Script(lines=[(0.0, "hello")], end_after=None))
    spec = spec_for(tmp_path, stall_timeout=0.5)
    executor = executor_for(fake, stall_slack=0.5)
    handle = await executor.start(spec)
    started = time.monotonic()
    with anyio.fail_after(20):
        outcome = await handle.wait()
    assert outcome.reason == "stall"
    assert time.monotonic() - started >= 1.0  # the slack is allowed for
    assert fake.cancels == [handle.launched.ref]
    assert "stalled: no output for 1s" in spec.log_path.read_text()


async def test_the_last_lines_reaching_cloud_logging_late_are_not_lost(tmp_path, fake):
    fake.add_job(JOB)
    lines = [(0.0, "start"), (0.3, "Traceback: the error that matters")]
    fake.queue(JOB, Script(lines=lines, end_after=0.3, exit_code=1, lag=1.0))
    spec = spec_for(tmp_path)
    executor = executor_for(fake)
    executor.log_settle = 1.5  # more than the lag
    with anyio.fail_after(20):
        outcome = await (await executor.start(spec)).wait()
    assert outcome.exit_code == 1
    assert "Traceback: the error that matters" in spec.log_path.read_text()
    assert "Traceback: the error that matters" in outcome.tail


async def test_a_long_pending_execution_is_no_stall(tmp_path, fake):
    fake.add_job(JOB)
    fake.queue(JOB, Script(lines=[(0.0, "at last")], start_after=2.0, end_after=0.3))
    spec = spec_for(tmp_path, stall_timeout=0.5)
    with anyio.fail_after(20):
        outcome = await (await executor_for(fake).start(spec)).wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    assert "at last" in spec.log_path.read_text()


async def test_a_refused_log_read_reconnects_and_is_no_stall(tmp_path, fake):
    fake.add_job(JOB)
    lines = [(0.1 * i, f"tick {i}") for i in range(25)]
    fake.queue(JOB, Script(lines=lines, end_after=2.6))
    spec = spec_for(tmp_path, stall_timeout=0.8)
    handle = await executor_for(fake).start(spec)
    fake.logs_refused_until = time.time() + 1.5  # longer than the stall limit
    with anyio.fail_after(30):
        outcome = await handle.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    log = spec.log_path.read_text()
    assert [x for x in log.splitlines() if x.startswith("tick")] == [t for _, t in lines]
    assert "Quota exceeded for ReadRequestsPerMinute" in log and "reconnecting" in log


async def test_adoption_by_execution_name_and_by_tag_when_none_was_journaled(tmp_path, fake):
    fake.add_job(JOB)
    lines = [(0.1 * i, f"n {i}") for i in range(8)]
    fake.queue(JOB, Script(lines=lines, end_after=1.0))
    executor = executor_for(fake)
    first = await executor.start(spec_for(tmp_path))  # the engine then dies: nobody watches
    ref = first.launched.ref

    # By the journaled execution name.
    spec = spec_for(tmp_path, remote_ref=ref)
    found = await executor_for(fake).recover([(row_for(spec), spec)])
    adopted = found[7]
    assert isinstance(adopted, Adopted) and adopted.handle.launched.ref == ref
    with anyio.fail_after(20):
        assert (await adopted.handle.wait()).exit_code == 0
    assert [x for x in spec.log_path.read_text().splitlines() if x.startswith("n ")] == [
        t for _, t in lines
    ]

    # With no name journaled (a crash between run_job and the journal): by the tag.
    (tmp_path / "attempt.log").unlink()
    other = spec_for(tmp_path)
    other = AttemptSpec(**{**other.__dict__, "tag": "8@/srv/.backfill/journal.sqlite"})
    await executor.start(other)  # a second execution, of another attempt
    spec = spec_for(tmp_path)  # tag 7, remote_ref None
    found = await executor_for(fake).recover([(row_for(spec), spec)])
    adopted = found[7]
    assert isinstance(adopted, Adopted) and adopted.handle.launched.ref == ref
    assert not adopted.alive  # it ended while no engine watched
    gone = AttemptSpec(**{**spec.__dict__, "tag": "9@/srv/.backfill/journal.sqlite"})
    assert await executor_for(fake).find(gone) is None


async def test_an_execution_cloud_run_no_longer_knows_is_not_adopted(tmp_path, fake):
    fake.add_job(JOB)
    spec = spec_for(tmp_path, remote_ref=f"{PARENT}/jobs/{JOB}/executions/{JOB}-99999")
    found = await executor_for(fake).recover([(row_for(spec), spec)])
    assert not isinstance(found[7], Adopted) and found[7].gone


async def test_a_start_whose_answer_was_lost_finds_its_execution_by_the_tag(tmp_path, fake):
    fake.add_job(JOB)
    fake.lose_run_answers = 1
    handle = await executor_for(fake).start(spec_for(tmp_path))
    assert list(fake.runs) == [handle.launched.ref]  # the one that ran, and no twin
    with anyio.fail_after(20):
        assert (await handle.wait()).exit_code == 0


async def test_a_missing_job_fails_the_start_in_words(tmp_path, fake):
    with pytest.raises(OSError, match=f"Cloud Run job {JOB} not found in {PROJECT}"):
        await executor_for(fake).start(spec_for(tmp_path))


# -- config and preflight ------------------------------------------------------------------------

#: the APIs' endpoint in CONFIG: a port nothing listens on, until `config_for` puts the fake's there
NOWHERE = "http://127.0.0.1:9"
CONFIG = f"""\
name: t
warehouse: {{kind: sqlite, path: wh}}
calendar: {{start: 2024-01-01, end: 2024-01-10}}
phases:
  - name: raw
    processors:
      - {{name: src, table: ds.src, date_column: d}}
  - name: analytics
    executor: {{kind: cloud_run, project: {PROJECT}, region: {REGION}, api_endpoint: {NOWHERE}}}
    processors:
      - name: pgs
        table: ds.pgs
        date_column: d
        depends_on: [src]
        command: ["{{python}}", "-m", "jobs.pgs", "--start-date={{start}}", "--end-date={{end}}"]
        cloud_run: {{job: {JOB}, args_from: 3}}
      - name: tdgs
        table: ds.tdgs
        date_column: d
        depends_on: [src]
        command: ["{{python}}", "-m", "jobs.tdgs", "--start-date={{start}}"]
        cloud_run: {{job: team-defense-game-summary-analytics-backfill}}
"""


def config_for(fake: FakeCloudRun) -> str:
    """CONFIG with the fake's URL as the APIs' endpoint (`api_endpoint`, as a test server or an
    emulator is configured)."""
    return CONFIG.replace(NOWHERE, fake.url)


def test_preflight_fails_on_max_retries_and_on_a_missing_job(tmp_path, fake, monkeypatch):
    config = load_config(write_config(tmp_path, config_for(fake)))
    monkeypatch.setattr(cloud_run, "last_commit_time", lambda root: None)
    fake.add_job(JOB, max_retries=3)
    status, detail = check_jobs(config)
    assert status == "fail"
    assert f"pgs: job {JOB} ({PROJECT}, {REGION}) has max_retries 3" in detail
    assert "team-defense-game-summary-analytics-backfill" in detail and "does not exist" in detail

    fake.add_job(JOB, max_retries=None)  # unset: Cloud Run's default of 3
    fake.add_job("team-defense-game-summary-analytics-backfill")
    status, detail = check_jobs(config)
    assert status == "fail" and "has max_retries 3" in detail

    fake.add_job(JOB, updated=time.time() - 86400)
    assert check_jobs(config) == ("pass", "2 Cloud Run jobs exist with max_retries 0")
    committed = datetime.now(UTC) - timedelta(hours=1)
    monkeypatch.setattr(cloud_run, "last_commit_time", lambda root: committed)
    status, detail = check_jobs(config)
    assert status == "warn" and f"pgs: job {JOB}" in detail and "its image may lack it" in detail


def test_the_builtin_preflight_checks_the_jobs_not_the_local_programs(tmp_path, fake, monkeypatch):
    from core.preflight import builtin_checks, run_checks

    monkeypatch.setattr(cloud_run, "last_commit_time", lambda root: None)
    # The job's image has the program; this machine need not.
    text = config_for(fake).replace(
        '["{python}", "-m", "jobs.pgs"', '["/opt/image-only/python", "-m", "jobs.pgs"'
    )
    config = load_config(write_config(tmp_path, text))
    fake.add_job(JOB)
    results = {r.name: (r.status, r.detail) for r in anyio.run(run_checks, builtin_checks(config))}
    assert results["commands resolve"][0] == "pass", results["commands resolve"]
    status, detail = results["Cloud Run jobs ready"]
    assert status == "fail" and "team-defense-game-summary-analytics-backfill" in detail
    assert "does not exist" in detail and JOB not in detail


def test_the_config_refuses_a_cloud_run_processor_without_its_job(tmp_path):
    from core.errors import ConfigError

    text = CONFIG.replace(
        "        cloud_run: {job: team-defense-game-summary-analytics-backfill}\n", ""
    )
    with pytest.raises(ConfigError) as refused:
        load_config(write_config(tmp_path, text))
    message = str(refused.value)
    assert "phases[1].processors[1]" in message and "names no Cloud Run Job" in message, message
    assert re.search(r"backfill\.yaml:\d+:", message), message


def test_the_config_refuses_two_cloud_run_settings(tmp_path):
    """The journal records an attempt's executor kind only: one project and region per file."""
    from core.errors import ConfigError

    text = CONFIG.replace(
        "  - name: raw\n",
        "  - name: raw\n    executor: {kind: cloud_run, project: other-proj-1, region: us-east1}\n",
    )
    with pytest.raises(ConfigError) as refused:
        load_config(write_config(tmp_path, text))
    assert "a second, different cloud_run executor setting" in str(refused.value), refused.value


def test_executors_for_builds_the_cloud_run_executor_from_the_config(tmp_path):
    config = load_config(write_config(tmp_path, CONFIG))
    executor = executors_for(config)["cloud_run"]
    assert isinstance(executor, CloudRunExecutor)
    assert executor.settings.project == PROJECT
    assert executor.settings.api_endpoint == NOWHERE  # and Cloud Logging's, as none is named
    assert executor.settings.logging_endpoint is None
    assert executor.jobs["pgs"] == CloudRunJob(job=JOB, args_from=3)


def test_without_the_extra_one_line_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from core.errors import UserError
    from core.preflight import builtin_checks, run_checks
    from tests.helpers import day, invoke, write_tables

    monkeypatch.setitem(sys.modules, "google.cloud.run_v2", None)  # import fails
    config = load_config(write_config(tmp_path, CONFIG))
    write_tables(tmp_path / "wh", {"ds.src": {day("2024-01-02"): 1}}, date_column="d")
    line = "executor kind cloud_run needs the cloud-run extra: uv sync --extra cloud-run"
    with pytest.raises(UserError, match=line):
        executors_for(config)
    results = {r.name: (r.status, r.detail) for r in anyio.run(run_checks, builtin_checks(config))}
    assert results["Cloud Run jobs ready"] == ("fail", line)
    code, out, err = invoke(
        ["run", "2024-01-02", "--headless", "--ignore-preflight", "--config", str(config.path)],
        capsys,
    )
    # The headless run prints its log and errors on stdout: the refusal is its last line.
    assert (code, (out + err).splitlines()[-1]) == (2, f"backfill: {line}"), (code, out, err)


# -- the real service ----------------------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("BACKFILL_CLOUD_RUN_PROJECT"),
    reason="BACKFILL_CLOUD_RUN_PROJECT is not set: no Cloud Run project to run a real job in",
)
async def test_smoke_a_real_cloud_run_job(tmp_path):
    """Runs `BACKFILL_CLOUD_RUN_JOB` (default `backfill-smoke`; any image whose entrypoint
    prints its args, e.g. busybox `echo`) in `BACKFILL_CLOUD_RUN_REGION` (default us-west2) of
    that project, with the ambient credentials, and expects its log line back."""
    settings = Settings(
        kind="cloud_run",
        project=os.environ["BACKFILL_CLOUD_RUN_PROJECT"],
        region=os.environ.get("BACKFILL_CLOUD_RUN_REGION", "us-west2"),
    )
    job = os.environ.get("BACKFILL_CLOUD_RUN_JOB", "backfill-smoke")
    executor = CloudRunExecutor(settings, {"smoke": CloudRunJob(job=job, args_from=1)})
    executor.stall_slack = 120
    spec = AttemptSpec(
        argv=("echo", "backfill-smoke-ok"),
        env={},
        cwd=tmp_path,
        log_path=tmp_path / "attempt.log",
        timeout=600,
        stall_timeout=None,
        tag=f"smoke@{time.time()}",
        processor="smoke",
    )
    handle = await executor.start(spec)
    with anyio.fail_after(900):
        outcome = await handle.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0), spec.log_path.read_text()
    found = await executor.find(AttemptSpec(**{**spec.__dict__, "remote_ref": None}))
    assert found is not None and found.ref == handle.launched.ref


# -- the engine, end to end ----------------------------------------------------------------------


def test_a_run_on_cloud_run_ends_complete_with_each_execution_journaled(
    tmp_path, fake, monkeypatch, capsys
):
    """`backfill run` on a cloud_run phase: each attempt an execution of the fake, which writes
    its dates' rows into the warehouse as the real job would; the engine verifies them."""
    import sqlite3

    from tests.helpers import day, invoke, write_tables

    monkeypatch.setattr(CloudRunExecutor, "poll", 0.2)
    monkeypatch.setattr(CloudRunExecutor, "log_poll", 0.2)
    monkeypatch.setattr(CloudRunExecutor, "log_poll_ended", 0.2)
    monkeypatch.setattr(CloudRunExecutor, "log_settle", 0.5)
    text = config_for(fake).replace(
        "        cloud_run: {job: team-defense-game-summary-analytics-backfill}\n", ""
    )
    text = text[: text.index("      - name: tdgs")]
    path = write_config(tmp_path, text)
    write_tables(
        tmp_path / "wh", {"ds.src": {day("2024-01-02"): 1, day("2024-01-03"): 1}}, date_column="d"
    )
    fake.add_job(JOB)

    def writes_rows(run: Run) -> None:
        args = run.overrides["containerOverrides"][0]["args"]
        first = day(args[0].split("=", 1)[1])
        write_tables(tmp_path / "wh", {"ds.pgs": {first: 3}}, date_column="d")

    fake.on_success = writes_rows
    fake.queue(JOB, Script(lines=[(0.0, "pgs: processing"), (0.1, "pgs: 3 rows")], end_after=0.3))
    code, out, err = invoke(
        ["run", "2024-01-02", "2024-01-03", "--headless", "--config", str(path)], capsys
    )
    assert code == 0, (out, err)
    runs = [r for r in fake.requests if r[1].endswith(":run")]
    assert len(runs) == 2  # one execution per date, none run twice
    logs = sorted((tmp_path / ".backfill" / "logs").glob("run-*/pgs/*.log"))
    assert len(logs) == 2 and all("pgs: 3 rows" in log.read_text() for log in logs)
    journal = tmp_path / ".backfill" / "journal.sqlite"
    with sqlite3.connect(journal) as db:
        refs = {ref for (ref,) in db.execute("SELECT remote_ref FROM attempts")}
    assert refs == set(fake.runs), refs
