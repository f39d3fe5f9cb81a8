"""`executor: {kind: cloud_run, project, region}`: each attempt an execution of its processor's
existing Cloud Run Job (`cloud_run: {job, args_from}`), with per-execution overrides.

- Submit: `run_job` with the argv from `args_from` on as the container's args, the processor's
  env and `BACKFILL_ATTEMPT` (the attempt's tag) as env, one task, and the processor's timeout.
  The returned operation's metadata is the execution: its name is the attempt's reference
  (journaled at once by the engine); the operation itself is not waited for.
- Status: from the execution (completion time, task counts, conditions), and the exit code from
  its task where the task reports one (else 0 succeeded, 1 failed).
- Log: the execution's entries in Cloud Logging, oldest first, one line each, polled. Cloud
  Logging delivers them late (ingestion lag), hence `stall_slack`; its read quota is per
  project (60 requests a minute by default), hence a slower `log_poll` than `poll`.
- Stop: `cancel_execution`. Delete: nothing. A job's executions are its history (the console's
  list, each one's logs link), which is what an operator looks at when an attempt is
  questioned; they cost nothing while kept, and Cloud Run itself drops the details of all but
  the latest 1,000 (and those of the last seven days). Deleting them would also remove what
  finds an attempt whose name was never journaled.
- Find: by the journaled execution name; an attempt whose name the engine could not journal (it
  died between `run_job` and the journal) by listing the job's newest executions and matching
  the `BACKFILL_ATTEMPT` of their overrides.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio

from core.cloud_run import CALL_TIMEOUT_S, Clients
from core.config.model import CloudRunExecutor as Settings
from core.config.model import CloudRunJob
from core.executors.remote import JobStatus, RemoteExecutor, RemoteJob
from core.process import AttemptSpec

T = TypeVar("T")
#: executions of the job looked at, newest first, to find an attempt by its tag
FIND_SCAN = 200
#: entries already read are asked for again this far back: Cloud Logging may deliver an entry
#: after later ones (ingestion lag), with its own, earlier timestamp
LATE_ENTRIES = timedelta(minutes=2)


class CloudRunError(OSError):
    """A Cloud Run or Cloud Logging call that failed (or got no answer in time)."""


class _NotFound(Exception):
    pass


class CloudRunExecutor(RemoteExecutor):
    kind = "cloud_run"
    poll = 5.0
    #: Cloud Logging's ingestion lag: silence this long is not yet the job's
    stall_slack = 60.0
    #: seconds between two reads of an execution's log
    log_poll = 10.0
    #: once the execution has ended, its log is read every `log_poll_ended` s, and is over
    #: when a read brings nothing new at least `log_settle` s after the end was seen: its last
    #: lines, often the ones saying why it failed, reach Cloud Logging last (the remote
    #: machinery waits 10 s for them)
    log_poll_ended = 2.0
    log_settle = 6.0
    #: one API request unanswered this long is abandoned
    call_timeout = CALL_TIMEOUT_S

    def __init__(
        self,
        settings: Settings,
        jobs: Mapping[str, CloudRunJob],
    ) -> None:
        self.settings = settings
        #: processor -> its Cloud Run Job
        self.jobs = dict(jobs)
        self.clients = Clients(settings)  # UserError where the extra is missing

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn` in a worker thread under a timeout; its failures as `CloudRunError`, a missing
        resource as `_NotFound`. The clients are reached inside `fn`: making one looks for
        credentials, which may fail, and must neither block the loop nor escape as a crash."""
        from google.api_core import exceptions
        from google.auth.exceptions import GoogleAuthError

        try:
            with anyio.fail_after(self.call_timeout + 5):
                return await anyio.to_thread.run_sync(
                    functools.partial(fn, *args, **kwargs), abandon_on_cancel=True
                )
        except TimeoutError:
            raise CloudRunError(f"no answer within {self.call_timeout:.0f}s") from None
        except exceptions.NotFound as exc:
            raise _NotFound(str(exc)) from exc
        except exceptions.GoogleAPIError as exc:
            message = getattr(exc, "message", "") or str(exc)
            raise CloudRunError(f"{type(exc).__name__}: {message}") from exc
        except GoogleAuthError as exc:
            raise CloudRunError(f"credentials: {exc}") from exc

    async def _get(self, name: str) -> Any:
        """The execution named `name` (`_NotFound`: Cloud Run has none)."""
        return await self.call(
            lambda: self.clients.executions.get_execution(name=name, timeout=self.call_timeout)
        )

    def _mapping(self, spec: AttemptSpec) -> CloudRunJob:
        mapping = self.jobs.get(spec.processor)
        if mapping is None:  # the config's checks refuse this: a journal of another config
            raise CloudRunError(f"processor {spec.processor} has no cloud_run: job")
        return mapping

    async def submit(self, spec: AttemptSpec) -> RemoteJob:
        from google.cloud import run_v2

        mapping = self._mapping(spec)
        env = {**spec.env, "BACKFILL_ATTEMPT": spec.tag}
        args = list(spec.argv[mapping.args_from :])
        override = run_v2.RunJobRequest.Overrides.ContainerOverride(
            args=args,
            env=[run_v2.EnvVar(name=k, value=v) for k, v in env.items()],
            clear_args=not args,
        )
        overrides = run_v2.RunJobRequest.Overrides(container_overrides=[override], task_count=1)
        if spec.timeout is not None:
            overrides.timeout = timedelta(seconds=max(1, math.ceil(spec.timeout)))
        request = run_v2.RunJobRequest(name=self.clients.job_path(mapping.job), overrides=overrides)
        try:
            operation = await self.call(
                lambda: self.clients.jobs.run_job(request=request, timeout=self.call_timeout)
            )
        except _NotFound as exc:
            raise CloudRunError(
                f"Cloud Run job {mapping.job} not found in {self.settings.project} "
                f"({self.settings.region})"
            ) from exc
        except OSError as exc:
            # The answer may be what was lost, not the execution: one that runs with this
            # attempt's tag is the attempt's, and must not get a twin from a retry.
            with contextlib.suppress(OSError, _NotFound):
                found = await self.call(self._find_tagged, request.name, spec.tag)
                if found is not None:
                    return Execution(self, found)
            raise exc
        execution = operation.metadata
        name = getattr(execution, "name", "")
        if not name:
            raise CloudRunError(f"run_job of {mapping.job} answered without an execution")
        return Execution(self, name)

    async def find(self, spec: AttemptSpec) -> RemoteJob | None:
        if spec.remote_ref:
            try:
                await self._get(spec.remote_ref)
            except _NotFound:
                return None
            return Execution(self, spec.remote_ref)
        mapping = self.jobs.get(spec.processor)
        if mapping is None:
            return None
        try:
            name = await self.call(self._find_tagged, self.clients.job_path(mapping.job), spec.tag)
        except _NotFound:
            return None
        return None if name is None else Execution(self, name)

    def _find_tagged(self, job: str, tag: str) -> str | None:
        """The newest execution of `job` whose overrides carry `BACKFILL_ATTEMPT=tag`."""
        from google.cloud import run_v2

        pager = self.clients.executions.list_executions(
            request=run_v2.ListExecutionsRequest(parent=job, page_size=100),
            timeout=self.call_timeout,
        )
        for scanned, execution in enumerate(pager):
            if scanned >= FIND_SCAN:
                break
            for container in execution.template.containers:
                if any(e.name == "BACKFILL_ATTEMPT" and e.value == tag for e in container.env):
                    return str(execution.name)
        return None


def _render(entry: Any) -> bytes:
    """One log entry as one line: its text, or its JSON payload's message (else the JSON)."""
    payload = entry.payload
    if isinstance(payload, dict):
        text = payload.get("message")
        if not isinstance(text, str):
            text = json.dumps(payload, sort_keys=True)
    elif payload is None:
        text = ""
    else:
        text = str(payload)
    return (text.rstrip("\n") + "\n").encode("utf-8", "replace")


class Execution:
    """One execution of a Cloud Run Job (`RemoteJob`)."""

    def __init__(self, executor: CloudRunExecutor, name: str) -> None:
        self._executor = executor
        self._name = name

    @property
    def ref(self) -> str:
        return self._name

    @property
    def _clients(self) -> Clients:
        return self._executor.clients

    async def status(self) -> JobStatus:
        try:
            ex = await self._executor._get(self._name)
        except _NotFound:
            return JobStatus("unknown")
        started = "start_time" in ex
        if "completion_time" not in ex:
            return JobStatus("running" if started or ex.running_count else "pending")
        message = _conditions(ex)
        exit_code: int | None = None
        if ex.succeeded_count or ex.failed_count:
            exit_code = await self._task_exit_code()
            if exit_code is None:
                exit_code = 0 if ex.succeeded_count and not ex.failed_count else 1
        unstarted = not started and not (ex.succeeded_count or ex.failed_count)
        return JobStatus("ended", exit_code=exit_code, message=message, unstarted=unstarted)

    async def _task_exit_code(self) -> int | None:
        def first_task() -> int | None:
            for task in self._clients.tasks.list_tasks(
                parent=self._name, timeout=self._executor.call_timeout
            ):
                if "last_attempt_result" in task and "exit_code" in task.last_attempt_result:
                    return int(task.last_attempt_result.exit_code)
                return None
            return None

        try:
            return await self._executor.call(first_task)
        except (_NotFound, CloudRunError):
            return None  # the execution's counts still tell success from failure

    async def follow(self, offset: int) -> AsyncIterator[bytes]:
        execution = self._name.rsplit("/", 1)[-1]
        job = self._name.split("/jobs/", 1)[-1].split("/", 1)[0]
        base = (
            'resource.type="cloud_run_job" '
            f'resource.labels.job_name="{job}" '
            f'labels."run.googleapis.com/execution_name"="{execution}"'
        )
        skip = offset
        seen: set[str] = set()
        newest: datetime | None = None
        ended_at: float | None = None
        while True:
            state = (await self.status()).state
            if state == "pending" and newest is None:
                # Nothing to hear before its task runs (a cold start, an image pull, a quota
                # queue): no stream yet, so this silence is not counted as a stall.
                await anyio.sleep(self._executor.log_poll)
                continue
            ended = state in ("ended", "unknown")
            if ended and ended_at is None:
                ended_at = time.monotonic()
            since = "" if newest is None else f' timestamp>="{(newest - LATE_ENTRIES).isoformat()}"'
            try:
                entries = await self._executor.call(self._read, base + since)
            except _NotFound as exc:
                raise CloudRunError(f"Cloud Logging: {exc}") from exc
            out: list[bytes] = []
            for entry in entries:
                key = entry.insert_id or f"{entry.timestamp}|{entry.payload!r}"
                if key in seen:
                    continue
                seen.add(key)
                if entry.timestamp is not None and (newest is None or entry.timestamp > newest):
                    newest = entry.timestamp
                line = _render(entry)
                if skip >= len(line):
                    skip -= len(line)
                    continue
                out.append(line[skip:])
                skip = 0
            chunk = b"".join(out)
            yield chunk  # even empty: the stream is up, so its silence is the job's
            settled = (
                ended_at is not None and time.monotonic() - ended_at >= self._executor.log_settle
            )
            if settled and not chunk:
                return
            executor = self._executor
            await anyio.sleep(executor.log_poll if ended_at is None else executor.log_poll_ended)

    def _read(self, filter_: str) -> list[Any]:
        return list(self._clients.log_entries(filter_))

    async def stop(self) -> None:
        from google.api_core import exceptions as api

        def cancel() -> None:
            with contextlib.suppress(api.FailedPrecondition):  # it has ended already
                self._clients.executions.cancel_execution(
                    name=self._name, timeout=self._executor.call_timeout
                )

        with contextlib.suppress(_NotFound):  # nothing left to stop
            await self._executor.call(cancel)

    async def delete(self) -> None:
        """Executions are kept as the job's history (see the module's docstring)."""


def _conditions(ex: Any) -> str:
    """The execution's own words on its end: the conditions that say something."""
    words = []
    for condition in ex.conditions:
        text = condition.message
        if text and (condition.type_ == "Completed" or "FAILED" in condition.state.name):
            words.append(f"{condition.type_}: {text}")
    return "; ".join(words)
