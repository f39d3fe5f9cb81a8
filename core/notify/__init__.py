"""Notifications: the engine process tells the operator what matters on their channels
(webhooks built in, Apprise URLs with the `notify` extra) without ever waiting for them."""

from core.notify.channels import SendError, deliver_once
from core.notify.messages import (
    FailureAlarm,
    Milestones,
    Notice,
    digest,
    from_engine,
    run_finished,
    test_notice,
)
from core.notify.notifier import ChannelHealth, Notifier, send_now, send_tests

__all__ = [
    "ChannelHealth",
    "FailureAlarm",
    "Milestones",
    "Notice",
    "Notifier",
    "SendError",
    "deliver_once",
    "digest",
    "from_engine",
    "run_finished",
    "send_now",
    "send_tests",
    "test_notice",
]
