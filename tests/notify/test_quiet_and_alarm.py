"""A channel's own failure-alarm thresholds and quiet hours, against a real HTTP receiver: in
quiet hours only urgent messages go out; the rest are held and folded into the first digest
after them (or into one last digest when the engine exits first)."""

from __future__ import annotations

import time
from datetime import datetime
from datetime import time as clock_time
from typing import Any

import anyio
import pytest

from core.config.model import NotifyChannel, QuietHours, parse_quiet_hours
from core.notify import Notice, Notifier, digest, run_finished
from core.notify.notifier import urgent
from tests.notify.test_notifier import Journal, deliver
from tests.receiver import receiving


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def channel(url: str, **more: Any) -> NotifyChannel:
    return NotifyChannel(name=more.pop("name", "hook"), webhook=url, **more)


async def arrived(rx: Any, count: int) -> None:
    """Wait (on the loop, not blocking it) for `count` bodies, 10 s at most."""
    with anyio.move_on_after(10):
        while len(rx.bodies) < count:
            await anyio.sleep(0.02)


class Clock:
    """Local wall-clock time the test sets."""

    def __init__(self, at: str) -> None:
        self.now = datetime.fromisoformat(at)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("at", "quiet"),
    [
        ("21:59", False),
        ("22:00", True),
        ("23:59", True),
        ("00:00", True),
        ("06:59", True),
        ("07:00", False),
        ("12:00", False),
    ],
)
def test_quiet_hours_may_wrap_midnight(at, quiet):
    hours = parse_quiet_hours("22:00-07:00")
    assert (clock_time.fromisoformat(at) in hours) is quiet


def test_quiet_hours_within_one_day():
    hours = parse_quiet_hours(" 12:30 - 13:00 ")
    assert clock_time(12, 30) in hours
    assert clock_time(12, 59) in hours
    assert clock_time(13, 0) not in hours
    assert clock_time(12, 29) not in hours
    assert datetime(2026, 3, 1, 12, 45, 30) in hours


def test_quiet_hours_know_when_they_end():
    hours = QuietHours(clock_time(22), clock_time(7))
    assert hours.until(datetime(2026, 3, 1, 23, 0)) == datetime(2026, 3, 2, 7, 0)
    assert hours.until(datetime(2026, 3, 2, 3, 0)) == datetime(2026, 3, 2, 7, 0)
    assert str(hours) == "22:00-07:00"


def test_what_is_urgent():
    assert urgent(run_finished(1, False, []))
    assert not urgent(run_finished(1, True, []))
    assert urgent(Notice("engine_resumed", "back", 1, "warn"))
    assert urgent(Notice("failure_recovered", "ok", 1))
    assert not urgent(Notice("cell_failed", "x", 1, "warn", "x: exit"))
    assert not urgent(Notice("milestone", "25%", 1))


@pytest.mark.anyio
async def test_a_channels_own_alarm_threshold_and_window_decide_when_it_fires():
    with receiving() as rx, receiving() as calm:
        notifier = Notifier(
            [
                channel(rx.url, failure_alarm={"failures": 3, "minutes": 1}),
                channel(calm.url, name="calm"),  # the default: more than 10 in 10 minutes
            ]
        )
        start = time.monotonic()
        for i in range(4):  # 4 > 3 within a minute: the alarm, once
            notifier.failed(9, now=start + i)
        notifier.failed(9, now=start + 5)
        notifier.tick(9, now=start + 30)  # still 5 in the last minute
        notifier.tick(9, now=start + 64)  # the first four aged out: 1 <= 3 // 2
        await deliver(notifier)
    assert rx.events() == ["failure_alarm", "failure_recovered"]
    alarm = rx.bodies[0]
    assert (alarm["failures"], alarm["window_s"], alarm["severity"]) == (4, 60.0, "critical")
    assert "4 attempts failed in the last 1 min" in alarm["message"]
    assert calm.bodies == []  # 5 failures are not more than 10


@pytest.mark.anyio
async def test_quiet_hours_hold_what_is_not_urgent_and_the_next_digest_tells_it():
    clock = Clock("2026-03-01T23:30:00")
    journal = Journal()
    with receiving() as rx:
        notifier = Notifier(
            [channel(rx.url, quiet_hours="22:00-07:00", digest_every=3600)],
            journal_event=journal,
            clock=clock,
        )
        made = lambda: digest(4, 40, 100, 12.0, 5400.0)  # noqa: E731
        async with anyio.create_task_group() as tg:
            await tg.start(notifier.run)
            notifier.notify(Notice("run_started", "Run #4 started", 4))
            for i in range(3):
                notifier.notify(Notice("cell_failed", f"x 2024-01-0{i + 1}", 4, "warn", "x: exit"))
            notifier.notify(Notice("milestone", "Run #4: 25%", 4, signature="25"))
            notifier.notify(Notice("engine_resumed", "Run #4 resumed", 4, "warn"))  # urgent
            for i in range(4):
                notifier.failed(4, now=time.monotonic() + i)
            for i in range(8):
                notifier.failed(4, now=time.monotonic() + 4 + i)  # 12 > 10: the alarm, urgent
            # A digest falls due in quiet hours: it waits.
            notifier.digest(made, now=time.monotonic() + 3601)
            await arrived(rx, 2)
            await anyio.sleep(0.3)
            assert sorted(rx.events()) == ["engine_resumed", "failure_alarm"]
            # 07:00: quiet hours are over; the next tick sends the digest at once.
            clock.now = datetime.fromisoformat("2026-03-02T07:00:00")
            notifier.digest(made, now=time.monotonic() + 3602)
            notifier.digest(made, now=time.monotonic() + 3603)  # just sent: not again
            await arrived(rx, 3)
            await notifier.close(10)
            tg.cancel_scope.cancel()
    assert sorted(rx.events()) == ["digest", "engine_resumed", "failure_alarm"]
    (body,) = [b for b in rx.bodies if b["event"] == "digest"]
    assert body["held_count"] == 5  # run_started, 3 cell_failed merged into one, milestone
    assert [(h["event"], h["count"]) for h in body["held"]] == [
        ("run_started", 1),
        ("cell_failed", 3),
        ("milestone", 1),
    ]
    assert "5 messages held by quiet hours: cell_failed ×3" in body["message"]  # noqa: RUF001
    assert body["failures"] == [{"signature": "x: exit", "count": 3}]
    assert [k for k in journal.kinds() if k != "notify_sent"] == []


@pytest.mark.anyio
async def test_outside_quiet_hours_nothing_is_held():
    clock = Clock("2026-03-01T12:00:00")
    with receiving() as rx:
        notifier = Notifier([channel(rx.url, quiet_hours="22:00-07:00")], clock=clock)
        await deliver(notifier, Notice("run_started", "Run #4 started", 4))
    assert rx.events() == ["run_started"]


@pytest.mark.anyio
async def test_a_run_ending_in_quiet_hours_sends_one_last_digest_of_what_was_held():
    clock = Clock("2026-03-01T02:00:00")
    with receiving() as rx:
        notifier = Notifier(
            [channel(rx.url, quiet_hours="22:00-07:00", events=("run_started", "run_finished"))],
            clock=clock,
        )
        await deliver(
            notifier,
            Notice("run_started", "Run #5 started", 5),
            Notice("milestone", "not wanted here", 5),
            run_finished(5, True, []),  # complete: not urgent, held
        )
    (body,) = rx.bodies
    assert body["event"] == "digest"
    assert body["message"].startswith("Run #5 ended during quiet hours; 2 messages held")
    assert [h["event"] for h in body["held"]] == ["run_started", "run_finished"]
    assert "failures" not in body  # the channel does not take digests: no failure summary
