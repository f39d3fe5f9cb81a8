"""The `ray` executor: each attempt a job on a Ray cluster, through Ray's Job Submission API.

The shared remote machinery (`core.executors.remote`) mirrors the log, enforces the limits and
adopts after a crash; this is the Ray backend under it:

- A job's submission id is derived from the attempt's tag (`reference`), so the engine journals
  it before submitting; Ray refuses a reused id, and a "job already exists" for our own id
  means an engine that died had submitted it: it is that job, found again, not a failure.
- The job runs `core.executors.ray_entrypoint` (sent as entrypoint text: standard library only),
  which runs the attempt's command in a process group of its own and ends the whole group on
  stop. Ray's stop waits `RAY_JOB_STOP_WAIT_TIME_S` (set from the attempt's grace) before it
  SIGKILLs the entrypoint, so the group gets its grace.
- Its runtime env has the processor's env and `BACKFILL_ATTEMPT`; its `working_dir` is the
  setting's `cwd` when one is given (a local folder is uploaded by Ray, a URI fetched), else the
  command runs in the processor's folder on the node (the config's folder: a head on this
  machine, or nodes that share the path).
- The log is read with `get_job_logs` once a poll while it is small (up to 4 MiB), then
  followed with `tail_job_logs` (a websocket the job server pushes output on). The websocket
  alone was slower on a local head: its first output came seconds after the job had ended and
  it closed seconds later still, which the attempt waits for; `get_job_logs` sends the whole log
  every time, so a large log is not polled. A broken stream is opened again and what the
  attempt's log already has is skipped.

The SDK is synchronous (`requests`): every call runs in a worker thread. `ray` is an extra
(`uv sync --extra ray`); without it the executor refuses to be built, in one line.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import functools
import hashlib
import math
import os
import shlex
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from core.config.model import RayExecutor as RaySettings
from core.errors import UserError
from core.executors.remote import JobStatus, RemoteExecutor, RemoteJob
from core.process import TAG_VAR, AttemptSpec

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

NEEDS_EXTRA = (
    "executor kind ray needs the ray extra: uv sync --extra ray (or pip install 'backfill[ray]')"
)
#: Ray's error types of a job whose entrypoint never ran for want of room on the cluster
UNSTARTED_ERRORS = {
    "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
    "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
}
#: a job's log is read whole once a poll up to this size, then followed over Ray's websocket
POLL_LOGS_UP_TO = 4 * 1024 * 1024
#: a finished job is deleted this long after its verdict (and checked as long after that)
DELETE_AFTER_S = 2.0
#: Ray's SIGKILL after a stop comes this long after the attempt's grace has run out
STOP_SLACK_S = 5

T = TypeVar("T")


def _import_client() -> type[JobSubmissionClient]:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise UserError(NEEDS_EXTRA) from None
    return JobSubmissionClient


def submission_id(tag: str) -> str:
    """The job's id on the cluster: the same for the same attempt of the same journal."""
    return "backfill-" + hashlib.sha256(tag.encode()).hexdigest()[:16]


@functools.cache
def _wrapper() -> str:
    """The wrapper's code (no docstrings, no comments), compressed into one short line: Ray
    writes the entrypoint at the head of the job's log, which is the attempt's log."""
    tree = ast.parse(Path(__file__).with_name("ray_entrypoint.py").read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            del body[0]
    packed = base64.b64encode(zlib.compress(ast.unparse(tree).encode(), 9)).decode()
    return f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{packed}')))"


def entrypoint(spec: AttemptSpec, *, chdir: bool) -> str:
    """The job's shell command: the wrapper run by the node's python3 (standard library only,
    so any python3 does), then the attempt's argv."""
    args = ["python3", "-c", _wrapper(), "--grace", str(spec.grace)]
    if chdir:
        args += ["--cwd", str(spec.cwd)]
    return shlex.join([*args, "--", *spec.argv])


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class RayJob:
    def __init__(self, executor: RayExecutor, ref: str) -> None:
        self._executor = executor
        self._ref = ref

    @property
    def ref(self) -> str:
        return self._ref

    async def status(self) -> JobStatus:
        try:
            info = await self._executor.call(lambda c: c.get_job_info(self._ref))
        except _NoSuchJob:
            return JobStatus("unknown")
        state = str(info.status)
        # Ray's message on a failed entrypoint carries the end of its log, which the attempt's
        # log has already: its first words are what is news.
        message = (info.message or "").split("\n")[0].split(", last available logs")[0]
        if state == "PENDING":
            return JobStatus("pending", message=message)
        if state == "RUNNING":
            return JobStatus("running", message=message)
        code = info.driver_exit_code
        if state == "SUCCEEDED" and code is None:
            code = 0
        unstarted = state == "FAILED" and (
            (info.error_type or "") in UNSTARTED_ERRORS or "failed to start within" in message
        )
        return JobStatus("ended", exit_code=code, message=message, unstarted=unstarted)

    async def follow(self, offset: int) -> AsyncIterator[bytes]:
        sent = offset
        # While the log is small: the whole log once a poll, the status asked first, so the
        # log read after the job's end is all of it. The websocket tail is no faster at the
        # start (its first output came 2 s after the job had ended, on a local head) and
        # closes seconds after the end, which the attempt would wait for.
        while sent < POLL_LOGS_UP_TO:
            ended = (await self.status()).state in ("ended", "unknown")
            text = await self._executor.call(lambda c: c.get_job_logs(self._ref))
            data = text.encode("utf-8", "surrogateescape")
            yield data[sent:]  # an empty chunk says the stream is up
            sent = max(sent, len(data))
            if ended:
                return
            await anyio.sleep(self._executor.poll)
        # A large log is not sent again every poll: it is streamed from here on.
        client = await self._executor.client()
        skip = sent
        try:
            async for text in client.tail_job_logs(self._ref):
                chunk = text.encode("utf-8", "surrogateescape")
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                yield chunk
        except OSError:
            raise
        except Exception as exc:  # aiohttp's errors, and the SDK's RuntimeError on a bad close
            raise ConnectionError(f"the log stream of {self._ref} broke: {_text(exc)}") from exc

    async def stop(self) -> None:
        try:
            await self._executor.call(lambda c: c.stop_job(self._ref))
        except _NoSuchJob:
            return  # nothing left to stop

    async def delete(self) -> None:
        """Deleted a little later, in a thread of its own that the process waits for at exit:
        Ray's job manager, when a job is deleted while its supervisor actor is still on its
        way out (just after the end), writes the job back as FAILED ("supervisor actor
        died"). Deleting a few seconds after the end, and again if it came back, leaves
        nothing; the engine's next dispatch does not wait for it."""
        client = await self._executor.client()
        threading.Thread(
            target=_delete_later, args=(client, self._ref), name=f"delete {self._ref}"
        ).start()


def _delete_later(client: JobSubmissionClient, ref: str) -> None:
    for _ in range(3):
        time.sleep(DELETE_AFTER_S)
        # gone already, or not deletable yet: asked again, then left
        with contextlib.suppress(Exception):
            client.delete_job(ref)
        time.sleep(DELETE_AFTER_S)
        try:
            client.get_job_info(ref)
        except Exception:
            return  # gone for good


class _NoSuchJob(OSError):
    pass


class _AlreadyExists(OSError):
    pass


class RayExecutor(RemoteExecutor):
    kind = "ray"
    poll = 1.0

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings
        self._client_class = _import_client()
        self._headers: dict[str, str] = {}
        if settings.token_env:
            token = os.environ.get(settings.token_env)
            if not token:
                raise UserError(
                    f"executor kind ray: the environment variable {settings.token_env} "
                    "(token_env) holding the cluster's token is not set"
                )
            self._headers = {"Authorization": f"Bearer {token}"}
        self._client: JobSubmissionClient | None = None
        self._connecting = anyio.Lock()

    def reference(self, tag: str) -> str:
        return submission_id(tag)

    async def client(self) -> JobSubmissionClient:
        """The SDK's client, made once (making it asks the cluster for its version)."""
        async with self._connecting:
            if self._client is None:
                address = self.settings.address

                def connect() -> JobSubmissionClient:
                    return self._client_class(address, headers=self._headers or None)

                try:
                    self._client = await anyio.to_thread.run_sync(connect)
                except Exception as exc:
                    raise ConnectionError(
                        f"the Ray Jobs API at {address} did not answer: {_text(exc)}"
                    ) from exc
            return self._client

    async def call(self, fn: Callable[[JobSubmissionClient], T]) -> T:
        """One SDK call, in a worker thread; its failures as `OSError`."""
        client = await self.client()
        try:
            return await anyio.to_thread.run_sync(fn, client)
        except Exception as exc:
            text = _text(exc)
            if "does not exist" in text or "status code 404" in text:
                raise _NoSuchJob(text) from exc
            if "already exists" in text:
                raise _AlreadyExists(text) from exc
            raise OSError(text) from exc

    async def submit(self, spec: AttemptSpec) -> RemoteJob:
        ref = spec.remote_ref or submission_id(spec.tag)
        settings = self.settings
        env = {**spec.env, TAG_VAR: spec.tag}
        # Ray's stop SIGKILLs the entrypoint this long after its SIGTERM: past the grace the
        # entrypoint gives the command's group.
        env["RAY_JOB_STOP_WAIT_TIME_S"] = str(math.ceil(spec.grace) + STOP_SLACK_S)
        runtime_env: dict[str, Any] = {"env_vars": env}
        if settings.cwd is not None:
            runtime_env["working_dir"] = settings.cwd
        resources = dict(settings.resources)
        cpus = resources.pop("CPU", None)
        gpus = resources.pop("GPU", None)
        memory = resources.pop("memory", None)
        metadata = {
            "backfill_processor": spec.processor,
            "backfill_dates": ",".join(d.isoformat() for d in spec.dates),
            "backfill_attempt": spec.tag,
        }
        command = entrypoint(spec, chdir=settings.cwd is None)

        def submit(client: JobSubmissionClient) -> str:
            return client.submit_job(
                entrypoint=command,
                submission_id=ref,
                runtime_env=runtime_env,
                metadata=metadata,
                entrypoint_num_cpus=cpus,
                entrypoint_num_gpus=gpus,
                entrypoint_memory=None if memory is None else int(memory),
                entrypoint_resources=resources or None,
            )

        try:
            await self.call(submit)
        except _AlreadyExists:
            pass  # an engine that died submitted it: this attempt's job all the same
        except OSError as exc:
            raise OSError(f"Ray refused job {ref}: {exc}") from exc
        return RayJob(self, ref)

    async def find(self, spec: AttemptSpec) -> RemoteJob | None:
        ref = spec.remote_ref or submission_id(spec.tag)
        job = RayJob(self, ref)
        if (await job.status()).state == "unknown":
            return None
        return job
