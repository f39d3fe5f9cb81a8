"""The Notifier: takes notices from the engine's event loop and delivers them, never making the
loop wait.

`notify()` is synchronous and O(queue): it filters, merges and queues. One worker task per
channel sends, each send in a worker thread of the channel's own (one-token) limiter under a
deadline, so a receiver that hangs holds one thread of its own channel, never the engine's
threads (coverage reads, planning) nor another channel. The journal is written from the event
loop (the workers are tasks on it), as the engine writes it, never from a sending thread.

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
from typing import Any

import anyio
import anyio.to_thread

from core.config.model import NotifyChannel
from core.notify.channels import SendError, deliver_once
from core.notify.messages import SEVERITY_RANK, Notice

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

JournalEvent = Callable[..., None]


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

    def __post_init__(self) -> None:
        self.next_digest = time.monotonic() + self.spec.digest_every

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
    ) -> None:
        self._channels = [_Channel(spec, ChannelHealth(spec.name)) for spec in channels]
        self._journal = journal_event or (lambda kind, **detail: None)
        self._env = os.environ if env is None else env
        self._queue_size = queue_size
        self._unhealthy_after = unhealthy_after
        self._backoff = backoff
        #: once closing, held repeats go out at once: the process is about to end
        self._closing = False

    @property
    def health(self) -> list[ChannelHealth]:
        return [ch.health for ch in self._channels]

    def __bool__(self) -> bool:
        return bool(self._channels)

    # -- from the engine's loop: never waits -----------------------------------------------

    def notify(self, notice: Notice) -> None:
        now = time.monotonic()
        for ch in self._channels:
            if notice.event == "cell_failed" and ch.digests:
                ch.failures[notice.signature] += notice.count
            if not ch.wants(notice):
                continue
            key = notice.key
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
        `digest_every` has passed, with the failures since its last one grouped by signature."""
        now = time.monotonic() if now is None else now
        for ch in self._channels:
            if not ch.digests or now < ch.next_digest:
                continue
            ch.next_digest = now + ch.spec.digest_every
            base = make()
            groups = ch.failures.most_common()
            ch.failures.clear()
            total = sum(n for _, n in groups)
            text = base.message + f"; {total} cells failed since the last digest"
            if groups:
                text += ": " + "; ".join(f"{sig} ×{n}" for sig, n in groups[:10])  # noqa: RUF001
            extra = {**base.extra, "failures": [{"signature": s, "count": n} for s, n in groups]}
            self._enqueue(ch, replace(base, message=text, extra=extra))
            ch.wake.set()

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
