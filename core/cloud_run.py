"""Cloud Run Jobs and Cloud Logging, as the `cloud_run` executor and preflight use them.

The official clients (`google-cloud-run`, `google-cloud-logging`: the `cloud-run` extra) are
imported only here and only when a config selects `executor: {kind: cloud_run}`. Both speak
REST (`transport="rest"`, `_use_grpc=False`): one protocol to reason about, and one a test can
serve from 127.0.0.1 (`Endpoints`: an `http://` endpoint and anonymous credentials).

The client calls are synchronous; callers run them in a worker thread, each under a timeout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.config import Config
from core.config.model import CloudRunExecutor, CloudRunJob
from core.errors import UserError

if TYPE_CHECKING:
    from google.cloud import run_v2
    from google.cloud.logging import Client as LoggingClient

MISSING_EXTRA = "executor kind cloud_run needs the cloud-run extra: uv sync --extra cloud-run"
#: one API request unanswered this long is abandoned
CALL_TIMEOUT_S = 30.0


def require_extra() -> None:
    """Raises `UserError` with one line saying how to install the clients when they are not."""
    try:
        import google.cloud.logging
        import google.cloud.run_v2  # noqa: F401
    except ImportError:
        raise UserError(MISSING_EXTRA) from None


class Clients:
    """The Cloud Run and Cloud Logging clients of one project, made on first use (making them
    looks for credentials, which may fail: that is an error of the first call, not of start-up).
    """

    def __init__(self, settings: CloudRunExecutor) -> None:
        require_extra()
        self.settings = settings
        self._run: dict[str, Any] = {}
        self._logging: LoggingClient | None = None

    def _options(self) -> dict[str, Any]:
        endpoint = self.settings.api_endpoint
        if endpoint is None:
            return {"transport": "rest"}
        from google.auth.credentials import AnonymousCredentials

        return {
            "transport": "rest",
            "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
            "client_options": {"api_endpoint": endpoint},
        }

    @property
    def jobs(self) -> run_v2.JobsClient:
        from google.cloud import run_v2

        if "jobs" not in self._run:
            self._run["jobs"] = run_v2.JobsClient(**self._options())
        client: run_v2.JobsClient = self._run["jobs"]
        return client

    @property
    def executions(self) -> run_v2.ExecutionsClient:
        from google.cloud import run_v2

        if "executions" not in self._run:
            self._run["executions"] = run_v2.ExecutionsClient(**self._options())
        client: run_v2.ExecutionsClient = self._run["executions"]
        return client

    @property
    def tasks(self) -> run_v2.TasksClient:
        from google.cloud import run_v2

        if "tasks" not in self._run:
            self._run["tasks"] = run_v2.TasksClient(**self._options())
        client: run_v2.TasksClient = self._run["tasks"]
        return client

    @property
    def logging(self) -> LoggingClient:
        if self._logging is None:
            from google.cloud.logging import Client

            settings = self.settings
            endpoint = settings.logging_endpoint or settings.api_endpoint
            if endpoint is None:
                self._logging = Client(  # type: ignore[no-untyped-call]
                    project=settings.project, _use_grpc=False
                )
            else:
                from google.auth.credentials import AnonymousCredentials

                self._logging = Client(  # type: ignore[no-untyped-call]
                    project=self.settings.project,
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    _use_grpc=False,
                    client_options={"api_endpoint": endpoint},
                )
        return self._logging

    def job_path(self, job: str) -> str:
        return f"projects/{self.settings.project}/locations/{self.settings.region}/jobs/{job}"

    def log_entries(self, filter_: str) -> Iterator[Any]:
        """The project's log entries matching `filter_`, oldest first."""
        from google.cloud.logging import ASCENDING

        return iter(
            self.logging.list_entries(  # type: ignore[no-untyped-call]
                resource_names=[f"projects/{self.settings.project}"],
                filter_=filter_,
                order_by=ASCENDING,
                page_size=1000,
            )
        )


# -- preflight --------------------------------------------------------------------------------

Status = Literal["pass", "warn", "fail"]


def cloud_run_jobs(config: Config) -> list[tuple[CloudRunExecutor, str, CloudRunJob]]:
    """(executor settings, processor, its job) for every runnable processor on a cloud_run
    phase (the config's checks guarantee each has its `cloud_run:` mapping)."""
    found = []
    for phase in config.phases:
        settings = config.executor_of(phase)
        if not isinstance(settings, CloudRunExecutor):
            continue
        for proc in phase.processors:
            if proc.command is not None and proc.cloud_run is not None:
                found.append((settings, proc.name, proc.cloud_run))
    return found


def last_commit_time(root: Path) -> datetime | None:
    """When the local code's last commit was made, if `root` is in a git work tree."""
    try:
        done = subprocess.run(
            ["git", "log", "-1", "--format=%ct"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        return None
    return datetime.fromtimestamp(int(done.stdout.strip()), UTC)


def check_jobs(config: Config) -> tuple[Status, str]:
    """Each job exists and never retries by itself (`max_retries: 0`); a warning where its last
    deploy is older than the local code's last commit (its image may lack the latest code)."""
    from google.api_core import exceptions

    wanted = cloud_run_jobs(config)
    committed = last_commit_time(config.root)
    failures: list[str] = []
    warnings: list[str] = []
    clients: dict[CloudRunExecutor, Clients] = {}
    seen: set[tuple[CloudRunExecutor, str]] = set()
    for settings, processor, mapping in wanted:
        if (settings, mapping.job) in seen:
            continue
        seen.add((settings, mapping.job))
        client = clients.setdefault(settings, Clients(settings))
        name = client.job_path(mapping.job)
        where = f"{processor}: job {mapping.job} ({settings.project}, {settings.region})"
        try:
            job = client.jobs.get_job(name=name, timeout=CALL_TIMEOUT_S)
        except exceptions.NotFound:
            failures.append(f"{where} does not exist")
            continue
        except exceptions.GoogleAPICallError as exc:
            failures.append(f"{where}: {exc.message or exc}")
            continue
        task = job.template.template
        retries = task.max_retries if "max_retries" in task else 3  # Cloud Run's default
        if retries != 0:
            failures.append(
                f"{where} has max_retries {retries}: Cloud Run would run a failed attempt again "
                "by itself and overrides cannot change that; set it to 0 (gcloud run jobs "
                f"update {mapping.job} --max-retries=0)"
            )
        deployed = job.update_time if "update_time" in job else None
        if committed is not None and deployed is not None and deployed < committed:
            warnings.append(
                f"{where} was last deployed {deployed:%Y-%m-%d %H:%M} UTC, before the local "
                f"code's last commit ({committed:%Y-%m-%d %H:%M} UTC): its image may lack it"
            )
    if failures:
        return "fail", "; ".join(failures + warnings)
    if warnings:
        return "warn", "; ".join(warnings)
    return "pass", f"{len(seen)} Cloud Run jobs exist with max_retries 0"
