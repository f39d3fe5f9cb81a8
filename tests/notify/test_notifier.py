"""The Notifier against a real HTTP receiver on 127.0.0.1: bodies, merging, retries, health,
secrets, and a receiver that hangs."""

from __future__ import annotations

import sys
import time
from typing import Any

import anyio
import pytest

from core.config.model import NotifyChannel
from core.notify import (
    FailureAlarm,
    Milestones,
    Notice,
    Notifier,
    deliver_once,
    digest,
    run_finished,
)
from core.notify.channels import INSTALL_APPRISE, SendError
from tests.helpers import day
from tests.receiver import receiving


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def channel(url: str, **more: Any) -> NotifyChannel:
    return NotifyChannel(name=more.pop("name", "hook"), webhook=url, **more)


class Journal:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, **detail: Any) -> None:
        self.events.append((kind, detail))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


async def deliver(notifier: Notifier, *notices: Notice, deadline: float = 10.0) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(notifier.run)
        for notice in notices:
            notifier.notify(notice)
        await notifier.close(deadline)
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_webhook_gets_the_json_body_and_the_send_is_journaled():
    journal = Journal()
    with receiving() as rx:
        finished = run_finished(7, False, [("x", day("2024-01-04"))])
        await deliver(Notifier([channel(rx.url)], journal_event=journal), finished)
    (body,) = rx.bodies
    assert body["event"] == "run_finished"
    assert body["run_id"] == 7
    assert body["complete"] is False
    assert body["cells_left"] == 1
    assert body["cells"] == [["x", "2024-01-04"]]
    assert "x 2024-01-04" in body["message"]
    assert body["at"].endswith("+00:00")
    assert journal.events == [
        ("notify_sent", {"channel": "hook", "event": "run_finished", "count": 1, "tries": 1})
    ]


@pytest.mark.anyio
async def test_events_and_min_severity_choose_what_a_channel_gets():
    with receiving() as rx, receiving() as loud:
        notifier = Notifier(
            [
                channel(rx.url, events=("run_started",)),
                channel(loud.url, name="pager", min_severity="critical"),
            ]
        )
        await deliver(
            notifier,
            Notice("run_started", "go", 1),
            Notice("cell_failed", "x failed", 1, "warn"),
            run_finished(1, False, []),
        )
    assert rx.events() == ["run_started"]
    assert loud.events() == ["run_finished"]


@pytest.mark.anyio
async def test_a_burst_of_50_identical_failures_is_one_message_with_a_count():
    with receiving() as rx:
        failures = [
            Notice("cell_failed", f"FAILED x 2024-01-{i:02}", 1, "warn", "x: exit N")
            for i in range(1, 51)
        ]
        other = Notice("cell_failed", "FAILED y", 1, "warn", "y: exit N")
        await deliver(Notifier([channel(rx.url)]), *failures, other)
    assert [(b["event"], b["count"]) for b in rx.bodies] == [
        ("cell_failed", 50),
        ("cell_failed", 1),
    ]
    assert "50 identical events merged" in rx.bodies[0]["message"]


@pytest.mark.anyio
async def test_repeats_after_a_send_wait_for_the_window_and_go_out_as_one():
    with receiving() as rx:
        notifier = Notifier([channel(rx.url, dedupe_window=0.5)])
        same = Notice("stalled", "x stalled", 1, "warn", "x")
        async with anyio.create_task_group() as tg:
            await tg.start(notifier.run)
            notifier.notify(same)
            await anyio.to_thread.run_sync(rx.wait_for, 1)
            for _ in range(9):
                notifier.notify(same)
            await anyio.sleep(0.2)
            assert len(rx.bodies) == 1  # held: the window is still open
            await anyio.to_thread.run_sync(rx.wait_for, 2)
            await notifier.close(5)
            tg.cancel_scope.cancel()
    assert [b["count"] for b in rx.bodies] == [1, 9]


@pytest.mark.anyio
async def test_a_failing_receiver_is_retried_then_the_channel_is_unhealthy():
    journal = Journal()
    with receiving(status=500) as rx:
        notifier = Notifier(
            [channel(rx.url, retries=1)], journal_event=journal, backoff=0.01, unhealthy_after=2
        )
        notices = [Notice("cell_failed", f"x{i}", 1, "warn", f"sig{i}") for i in range(3)]
        await deliver(notifier, *notices)
        # two tries each while healthy, then one
        assert len(rx.paths) == 2 + 2 + 1
    assert journal.kinds() == [
        "notify_failed",
        "notify_failed",
        "notify_unhealthy",
        "notify_failed",
    ]
    assert journal.events[0][1]["error"] == "HTTP 500 Internal Server Error: nope"
    (health,) = notifier.health
    assert not health.healthy and health.failed == 3


@pytest.mark.anyio
async def test_a_full_queue_drops_the_oldest_and_the_next_message_says_so():
    with receiving() as rx:
        notifier = Notifier([channel(rx.url)], queue_size=3)
        notices = [Notice("cell_failed", f"x{i}", 1, "warn", f"sig{i}") for i in range(5)]
        await deliver(notifier, *notices)
    assert [b["message"] for b in rx.bodies] == ["x2", "x3", "x4"]
    assert rx.bodies[0]["dropped"] == 2
    assert notifier.health[0].dropped == 2


@pytest.mark.anyio
async def test_a_hanging_receiver_never_makes_notify_wait():
    journal = Journal()
    with receiving(hang=True) as rx:
        notifier = Notifier([channel(rx.url, timeout=0.5, retries=0)], journal_event=journal)
        async with anyio.create_task_group() as tg:
            await tg.start(notifier.run)
            began = time.monotonic()
            for i in range(200):
                notifier.notify(Notice("cell_failed", f"x{i}", 1, "warn", f"sig{i}"))
                await anyio.sleep(0)  # the loop turns: the worker starts its (hanging) send
            assert time.monotonic() - began < 0.5
            await notifier.close(3)
            tg.cancel_scope.cancel()
    assert journal.events[0][0] == "notify_failed"
    assert "did not answer within 0.5s" in journal.events[0][1]["error"] or (
        "no answer within 0.5s" in journal.events[0][1]["error"]
    )
    assert journal.kinds()[-1] == "notify_unsent"


def test_a_secret_is_expanded_at_send_time_and_masked_in_errors():
    with receiving(status=403) as rx:
        spec = channel(rx.url + "?token=${HOOK_TOKEN}")
        with pytest.raises(SendError) as caught:
            deliver_once(spec, Notice("test", "t", None).body(), {"HOOK_TOKEN": "s3cret"})
    assert rx.paths == ["/hook?token=s3cret"]
    assert "s3cret" not in str(caught.value)
    with pytest.raises(SendError, match="the environment variable HOOK_TOKEN is not set"):
        deliver_once(spec, Notice("test", "t", None).body(), {})


def test_an_unreachable_receiver_names_its_host_never_its_path():
    spec = channel("http://127.0.0.1:9/hook/${HOOK_TOKEN}", timeout=2)
    with pytest.raises(SendError) as caught:
        deliver_once(spec, Notice("test", "t", None).body(), {"HOOK_TOKEN": "s3cret"})
    assert str(caught.value).startswith("cannot reach http://127.0.0.1:9: ")
    assert "s3cret" not in str(caught.value)


def test_an_apprise_url_without_apprise_says_what_to_install(monkeypatch):
    # The notify extra not installed: the import fails as it would then.
    monkeypatch.setitem(sys.modules, "apprise", None)
    spec = NotifyChannel(name="slack", url="slack://${SLACK_TOKEN}")
    with pytest.raises(SendError, match="install the notify extra"):
        deliver_once(spec, Notice("test", "t", None).body(), {"SLACK_TOKEN": "xoxb-123"})
    assert "notify extra" in INSTALL_APPRISE


def test_an_apprise_json_url_reaches_the_receiver_end_to_end():
    pytest.importorskip("apprise")
    with receiving() as rx:
        url = rx.url.replace("http://", "json://")
        deliver_once(NotifyChannel(name="ap", url=url), run_finished(3, True, []).body())
    (body,) = rx.bodies
    assert body["title"] == "backfill: run_finished"
    assert body["message"].startswith("Run #3 complete")


def test_an_apprise_failure_is_its_own_words():
    pytest.importorskip("apprise")
    spec = NotifyChannel(name="ap", url="json://127.0.0.1:9/${HOOK_TOKEN}")
    with pytest.raises(SendError) as caught:
        deliver_once(spec, Notice("test", "t", None).body(), {"HOOK_TOKEN": "s3cret-tok"})
    assert "Connection error" in str(caught.value)
    assert "s3cret-tok" not in str(caught.value)


def test_milestones_are_told_once_and_a_resumed_run_tells_only_the_highest_passed():
    marks = Milestones()
    assert marks(1, 60, 100).extra["percent"] == 50  # resumed at 60 %: 25 is not told
    assert marks(1, 61, 100) is None
    assert marks(1, 75, 100).extra["percent"] == 75
    assert marks(1, 100, 100) is None
    assert Milestones()(1, 0, 0) is None


def test_a_failure_alarm_fires_once_and_one_recovery_follows_when_it_clears():
    alarm = FailureAlarm(failures=10, window=60)
    told = [alarm.failed(1, now=float(i)) for i in range(50)]  # a burst of 50 failures
    alarms = [n for n in told if n is not None]
    assert [(n.event, n.extra["failures"], n.severity) for n in alarms] == [
        ("failure_alarm", 11, "critical")
    ]
    assert alarm.tick(1, now=60.0) is None  # still 50 in the window... minus the first
    assert alarm.tick(1, now=103.0) is None  # 6 left: above half the threshold
    recovered = alarm.tick(1, now=104.0)
    assert recovered is not None and recovered.event == "failure_recovered"
    assert recovered.extra["failures"] == 5
    assert alarm.tick(1, now=200.0) is None  # one recovery, not one per tick
    assert alarm.failed(1, now=201.0) is None


@pytest.mark.anyio
async def test_a_digest_when_due_tells_progress_and_the_failures_since_the_last_grouped():
    with receiving() as rx:
        notifier = Notifier(
            [
                channel(rx.url, digest_every=3600, events=("digest",)),
                channel(rx.url, name="other", events=("run_started",)),
            ]
        )
        for i in range(7):
            notifier.notify(Notice("cell_failed", f"x {i}", 1, "warn", "x: exit N"))
        notifier.notify(Notice("cell_failed", "y", 1, "warn", "y: killed: stall"))
        made = lambda: digest(1, 40, 100, 12.0, 5400.0)  # noqa: E731
        notifier.digest(made)  # not due yet: nothing
        notifier.digest(made, now=time.monotonic() + 3601)
        notifier.digest(made, now=time.monotonic() + 3602)  # just sent: not due again
        await deliver(notifier)
    (body,) = rx.bodies  # the cell_failed notices were not this channel's, the digest is
    assert body["event"] == "digest"
    assert (body["done"], body["total"], body["rate_per_hour"]) == (40, 100, 12.0)
    assert body["failures"] == [
        {"signature": "x: exit N", "count": 7},
        {"signature": "y: killed: stall", "count": 1},
    ]
    assert "40/100 items done, 12 items/h, ETA 1.5 h; 8 cells failed" in body["message"]
