"""Channel health as the journal tells it, for `backfill status` (the engine journals every
send's outcome, so a reader needs no engine to know a channel keeps failing)."""

from __future__ import annotations

from core.notify.notifier import ChannelHealth
from core.state.journal import Journal

KINDS = ("notify_sent", "notify_failed", "notify_unhealthy", "notify_healthy")


def journaled_health(journal: Journal, run_id: int) -> list[ChannelHealth]:
    channels: dict[str, ChannelHealth] = {}
    for kind, detail in journal.events_of(run_id, KINDS):
        name = str(detail.get("channel", "?"))
        health = channels.setdefault(name, ChannelHealth(name))
        if kind == "notify_sent":
            health.sent += 1
            health.failures_in_a_row = 0
        elif kind == "notify_failed":
            health.failed += 1
            health.failures_in_a_row += 1
            health.last_error = detail.get("error")
        else:
            health.healthy = kind == "notify_healthy"
    return list(channels.values())


def describe(health: ChannelHealth) -> str:
    if health.healthy:
        return f"{health.name}: healthy ({health.sent} sent, {health.failed} failed)"
    return (
        f"{health.name}: UNHEALTHY, {health.failures_in_a_row} failed in a row "
        f"(last: {health.last_error})"
    )
