"""The Notifier: takes notices from the engine's event loop and delivers them, never making the
loop wait.

`notify()` is synchronous and O(queue): it filters, merges and queues. One worker task per
channel sends, each send in a worker thread of the channel's own (one-token) limiter under a
deadline, so a receiver that hangs holds one thread of its own channel, never the engine's
threads (coverage reads, planning) nor another channel. The journal is written from the event
loop (the workers are tasks on it), as the engine writes it, never from a sending thread.

Each channel has its own failure alarm (its `failure_alarm` thresholds) and, optionally, quiet
hours: while they last, a notice that is not urgent (`urgent`) is held, not sent, and folded
into the first digest after they end (or, if the run ends first, into one last digest as the
engine exits: nothing would tell it later).

No storms: a notice identical (event and signature) to one still queued is merged into it; one
identical to a notice sent less than the channel's `dedupe_window` ago is held and sent, merged
with every repeat, once the window closes. A full queue drops its oldest notice and the next
message says how many were dropped.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread

from core.config.model import URGENT_EVENTS, NotifyChannel
from core.notify.channels import SendError, deliver_once
from core.notify.messages import SEVERITY_RANK, FailureAlarm, Notice

#: notices waiting per channel; past it the oldest is dropped (and counted)
QUEUE_SIZE = 100
#: failed deliveries in a row (retries spent) after which a channel is unhealthy: it then gets
#: one try per message, no retries, until a delivery succeeds again
UNHEALTHY_AFTER = 3
#: the first retry waits this long, then twice as long each time, up to BACKOFF_MAX_S
BACKOFF_S = 1.0
BACKOFF_MAX_S = 60.0
#: beyond a channel's timeout, how long a send's thread is waited for before it is abandoned
#: (urllib's own timeout ends it soon after)
DEADLINE_GRACE_S = 1.0
#: notices a digest lists one by one (the rest are counted)
HELD_SHOWN = 50

JournalEvent = Callable[..., None]
Clock = Callable[[], datetime]


def urgent(notice: Notice) -> bool:
    """Sent even in quiet hours: every critical notice (a run ending incomplete, a failure
    alarm, a test), an engine that died and was resumed, and the recovery of an alarm."""
    return notice.severity == "critical" or notice.event in URGENT_EVENTS


@dataclass
class ChannelHealth:
    name: str
    healthy: bool = True
    failures_in_a_row: int = 0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None


@dataclass
class _Channel:
    spec: NotifyChannel
    health: ChannelHealth
    queue: deque[Notice] = field(default_factory=deque)
    #: key -> when a notice with it was last sent
    recent: dict[tuple[str, str], float] = field(default_factory=dict)
    #: key -> repeats of a notice sent within the window, released when it closes
    held: dict[tuple[str, str], Notice] = field(default_factory=dict)
    wake: anyio.Event = field(default_factory=anyio.Event)
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    #: dropped since the last message (the next body says so)
    dropped: int = 0
    sending: bool = False
    #: cells failed for good since this channel's last digest, by signature
    failures: Counter[str] = field(default_factory=Counter)
    next_digest: float = 0.0
    alarm: FailureAlarm = field(init=False)
    #: key -> notice held by quiet hours, for the next digest (oldest first)
    quiet: dict[tuple[str, str], Notice] = field(default_factory=dict)
    #: held notices dropped past the queue's size
    quiet_dropped: int = 0

    def __post_init__(self) -> None:
        self.next_digest = time.monotonic() + self.spec.digest_every
        self.alarm = FailureAlarm(self.spec.failure_alarm.failures, self.spec.failure_alarm.window)

    def is_quiet(self, now: datetime) -> bool:
        hours = self.spec.quiet_hours
        return hours is not None and now in hours

    @property
    def digests(self) -> bool:
        return self.spec.events is None or "digest" in self.spec.events

    def wants(self, notice: Notice) -> bool:
        if notice.event == "test":
            return True
        events = self.spec.events
        if events is not None and notice.event not in events:
            return False
        floor = self.spec.min_severity
        return floor is None or SEVERITY_RANK[notice.severity] >= SEVERITY_RANK[floor]

    @property
    def idle(self) -> bool:
        return not (self.queue or self.held or self.sending)


class Notifier:
    def __init__(
        self,
        channels: Sequence[NotifyChannel],
        *,
        journal_event: JournalEvent | None = None,
        env: Mapping[str, str] | None = None,
        queue_size: int = QUEUE_SIZE,
        unhealthy_after: int = UNHEALTHY_AFTER,
        backoff: float = BACKOFF_S,
        clock: Clock = datetime.now,
    ) -> None:
        """`clock`: local wall-clock time, for quiet hours."""
        self._channels = [_Channel(spec, ChannelHealth(spec.name)) for spec in channels]
        self._journal = journal_event or (lambda kind, **detail: None)
        self._env = os.environ if env is None else env
        self._queue_size = queue_size
        self._unhealthy_after = unhealthy_after
        self._backoff = backoff
        self._clock = clock
        #: once closing, held repeats go out at once: the process is about to end
        self._closing = False

    @property
    def health(self) -> list[ChannelHealth]:
        return [ch.health for ch in self._channels]

    def __bool__(self) -> bool:
        return bool(self._channels)

    # -- from the engine's loop: never waits -----------------------------------------------

    def notify(self, notice: Notice) -> None:
        for ch in self._channels:
            if notice.event == "cell_failed" and ch.digests:
                ch.failures[notice.signature] += notice.count
            self._offer(ch, notice)

    def failed(self, run_id: int | None, now: float | None = None) -> None:
        """An attempt failed (retried or not): each channel's alarm counts it."""
        for ch in self._channels:
            alarm = ch.alarm.failed(run_id, now)
            if alarm is not None:
                self._offer(ch, alarm)

    def tick(self, run_id: int | None, now: float | None = None) -> None:
        """Time went by: an alarm whose failures aged out of its window sends its recovery."""
        for ch in self._channels:
            cleared = ch.alarm.tick(run_id, now)
            if cleared is not None:
                self._offer(ch, cleared)

    def _offer(self, ch: _Channel, notice: Notice) -> None:
        if not ch.wants(notice):
            return
        key = notice.key
        if not urgent(notice) and ch.is_quiet(self._clock()):
            if key in ch.quiet:
                ch.quiet[key] = ch.quiet[key].merged(notice.count)
                return
            if len(ch.quiet) >= self._queue_size:
                del ch.quiet[next(iter(ch.quiet))]
                ch.quiet_dropped += 1
            ch.quiet[key] = notice
            return
        now = time.monotonic()
        queued = next((i for i, n in enumerate(ch.queue) if n.key == key), None)
        if queued is not None:
            ch.queue[queued] = ch.queue[queued].merged(notice.count)
        elif key in ch.held:
            ch.held[key] = ch.held[key].merged(notice.count)
        elif now - ch.recent.get(key, -math.inf) < ch.spec.dedupe_window:
            ch.held[key] = notice
        else:
            self._enqueue(ch, notice)
        ch.wake.set()

    def _enqueue(self, ch: _Channel, notice: Notice) -> None:
        if len(ch.queue) >= self._queue_size:
            ch.queue.popleft()
            ch.dropped += 1
            ch.health.dropped += 1
        ch.queue.append(notice)

    def digest(self, make: Callable[[], Notice], now: float | None = None) -> None:
        """Queue a digest (made by `make`: progress, rate, ETA) on each channel whose
        `digest_every` has passed, with the failures since its last one grouped by signature
        and what quiet hours held. In quiet hours a digest waits for their end; right after
        them, one comes at once if anything was held."""
        now = time.monotonic() if now is None else now
        wall = self._clock()
        for ch in self._channels:
            if ch.is_quiet(wall):
                continue
            due = ch.digests and now >= ch.next_digest
            if not (due or ch.quiet):
                continue
            ch.next_digest = now + ch.spec.digest_every
            self._enqueue(ch, self._folded(ch, make()))
            ch.wake.set()

    def _folded(self, ch: _Channel, base: Notice) -> Notice:
        """`base` with the failures since the channel's last digest and the held notices."""
        groups = ch.failures.most_common()
        ch.failures.clear()
        text, extra = base.message, dict(base.extra)
        if ch.digests:
            total = sum(n for _, n in groups)
            text += f"; {total} cells failed since the last digest"
            if groups:
                text += ": " + "; ".join(f"{sig} ×{n}" for sig, n in groups[:10])  # noqa: RUF001
            extra["failures"] = [{"signature": s, "count": n} for s, n in groups]
        held, dropped = list(ch.quiet.values()), ch.quiet_dropped
        ch.quiet.clear()
        ch.quiet_dropped = 0
        if held or dropped:
            kinds = Counter[str]()
            for notice in held:
                kinds[notice.event] += notice.count
            count = sum(kinds.values()) + dropped
            text += f"; {count} messages held by quiet hours: " + ", ".join(
                f"{event} ×{n}"  # noqa: RUF001
                for event, n in kinds.most_common()
            )
            extra["held"] = [
                {"event": n.event, "message": n.message, "count": n.count, "at": n.body()["at"]}
                for n in held[:HELD_SHOWN]
            ]
            extra["held_count"] = count
        return replace(base, message=text, extra=extra)

    # -- the workers -----------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver until cancelled (after `close`)."""
        async with anyio.create_task_group() as tg:
            for ch in self._channels:
                tg.start_soon(self._work, ch)
            task_status.started()

    async def close(self, deadline: float) -> None:
        """Give what is queued (and held) at most `deadline` seconds to go out; the caller
        cancels `run` after. Shielded: it runs while the process is winding down."""
        self._closing = True
        for ch in self._channels:
            if ch.quiet or ch.quiet_dropped:
                # The engine exits: nothing would send a digest after quiet hours. One last
                # message, whatever the hour, says what they held.
                run_id = next(iter(ch.quiet.values())).run_id if ch.quiet else None
                base = Notice("digest", f"Run #{run_id} ended during quiet hours", run_id)
                self._enqueue(ch, self._folded(ch, base))
            ch.wake.set()
        with anyio.CancelScope(shield=True), anyio.move_on_after(deadline):
            while not all(ch.idle for ch in self._channels):
                await anyio.sleep(0.02)
        for ch in self._channels:
            left = len(ch.queue) + len(ch.held) + ch.sending
            if left:
                self._journal("notify_unsent", channel=ch.spec.name, count=left)

    async def _work(self, ch: _Channel) -> None:
        while True:
            now = time.monotonic()
            window = ch.spec.dedupe_window
            if self._closing:
                # The end of the run is queued: what was held is older, so it goes first.
                ch.queue.extendleft(sorted(ch.held.values(), key=lambda n: n.at, reverse=True))
                ch.held.clear()
            for key, notice in list(ch.held.items()):
                if now - ch.recent.get(key, -math.inf) >= window:
                    del ch.held[key]
                    ch.queue.append(notice)
            if ch.queue:
                notice = ch.queue.popleft()
                ch.sending = True
                try:
                    await self._deliver(ch, notice)
                finally:
                    ch.recent[notice.key] = time.monotonic()
                    ch.sending = False
                continue
            ch.wake = anyio.Event()
            releases = [ch.recent[key] + window - now for key in ch.held]
            with anyio.move_on_after(max(0.0, min(releases, default=math.inf))):
                await ch.wake.wait()

    async def _deliver(self, ch: _Channel, notice: Notice) -> None:
        spec, health = ch.spec, ch.health
        body = notice.body(ch.dropped)
        ch.dropped = 0
        tries = 1 + (spec.retries if health.healthy else 0)
        error = ""
        for attempt in range(tries):
            if attempt:
                await anyio.sleep(min(self._backoff * 2 ** (attempt - 1), BACKOFF_MAX_S))
            try:
                await _send(spec, body, self._env, ch.limiter)
            except SendError as exc:
                error = str(exc)
                continue
            health.sent += 1
            health.failures_in_a_row = 0
            detail: dict[str, Any] = {"channel": spec.name, "event": notice.event}
            self._journal("notify_sent", **detail, count=notice.count, tries=attempt + 1)
            if not health.healthy:
                health.healthy = True
                self._journal("notify_healthy", channel=spec.name)
            return
        health.failed += 1
        health.failures_in_a_row += 1
        health.last_error = error
        self._journal(
            "notify_failed", channel=spec.name, event=notice.event, error=error, tries=tries
        )
        if health.healthy and health.failures_in_a_row >= self._unhealthy_after:
            health.healthy = False
            self._journal("notify_unhealthy", channel=spec.name, failures=health.failures_in_a_row)


async def _send(
    spec: NotifyChannel,
    body: dict[str, Any],
    env: Mapping[str, str],
    limiter: anyio.CapacityLimiter,
) -> None:
    """One send in a worker thread; past the channel's timeout (and a grace) the thread is
    abandoned to end on its own and the send counts as failed."""
    with anyio.move_on_after(spec.timeout + DEADLINE_GRACE_S) as scope:
        await anyio.to_thread.run_sync(
            deliver_once, spec, body, env, limiter=limiter, abandon_on_cancel=True
        )
    if scope.cancelled_caught:
        raise SendError(f"no answer within {spec.timeout:g}s")


async def send_now(
    spec: NotifyChannel, notice: Notice, env: Mapping[str, str] | None = None
) -> str | None:
    """One delivery, no queue, no retries (`backfill notify --test`): None, or the error."""
    try:
        await _send(
            spec, notice.body(), os.environ if env is None else env, anyio.CapacityLimiter(1)
        )
    except SendError as exc:
        return str(exc)
    return None


async def send_tests(
    channels: Sequence[NotifyChannel],
    env: Mapping[str, str] | None = None,
    each: Callable[[str, str | None], None] | None = None,
) -> dict[str, str | None]:
    """A test message on each channel, all at once (one that times out holds no other's
    answer back): channel name -> None (delivered) or the error, each also passed to `each`
    as it comes. `backfill notify --test` and the dashboard's test."""
    from core.notify.messages import test_notice

    errors: dict[str, str | None] = {}

    async def one(spec: NotifyChannel) -> None:
        errors[spec.name] = error = await send_now(spec, test_notice(spec.name), env)
        if each is not None:
            each(spec.name, error)

    async with anyio.create_task_group() as tg:
        for spec in channels:
            tg.start_soon(one, spec)
    return {spec.name: errors[spec.name] for spec in channels}
