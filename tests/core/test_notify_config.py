"""The `notify:` list: channels are checked like every other key (file:line, one line), and a
`${VAR}` is kept as written (it is expanded only when a message is sent)."""

from __future__ import annotations

import pytest

from core.config import load_config
from tests.core.test_config_errors import BASE
from tests.helpers import invoke, write_config

NOTIFY = """\
notify:
  - name: hook
    webhook: http://127.0.0.1:8099/hook
    events: [run_started, run_finished]
"""

CASES = [
    # (id, old, new, line, key path, fragment)
    (
        "unknown event",
        "run_finished]",
        "run_finishd]",
        4,
        "notify[0].events[1]",
        "unknown event 'run_finishd'; did you mean 'run_finished'?",
    ),
    (
        "both url and webhook",
        "    webhook: http://127.0.0.1:8099/hook",
        "    webhook: http://127.0.0.1:8099/hook\n    url: json://x",
        2,
        "notify[0]",
        "exactly one of url, webhook",
    ),
    (
        "neither",
        "    webhook: http://127.0.0.1:8099/hook\n",
        "",
        2,
        "notify[0]",
        "exactly one of url, webhook",
    ),
    ("not http", "http://127.0.0.1", "ftp://127.0.0.1", 3, "notify[0].webhook", "http://"),
    (
        "twice",
        "    events: [run_started, run_finished]",
        "  - {name: hook, webhook: 'http://h'}",
        4,
        "notify[1].name",
        "channel 'hook' is given twice",
    ),
    (
        "bad severity",
        "    events: [run_started, run_finished]",
        "    min_severity: loud",
        4,
        "notify[0].min_severity",
        "info",
    ),
    (
        "quiet hours not times",
        "    events: [run_started, run_finished]",
        '    quiet_hours: "22:00-7"',
        4,
        "notify[0].quiet_hours",
        "expected local times HH:MM-HH:MM like \"22:00-07:00\" (in quotes), got '22:00-7'",
    ),
    (
        "quiet hours unquoted",
        "    events: [run_started, run_finished]",
        "    quiet_hours: 22:00",  # YAML 1.1: 1320 minutes
        4,
        "notify[0].quiet_hours",
        "got the number 1320",
    ),
    (
        "quiet hours empty",
        "    events: [run_started, run_finished]",
        '    quiet_hours: "07:00-07:00"',
        4,
        "notify[0].quiet_hours",
        "start and end at the same time",
    ),
    (
        "alarm not a mapping",
        "    events: [run_started, run_finished]",
        "    failure_alarm: 5",
        4,
        "notify[0].failure_alarm",
        "expected a mapping, got 5",
    ),
    (
        "alarm zero failures",
        "    events: [run_started, run_finished]",
        "    failure_alarm:\n      failures: 0\n      minutes: 10",
        5,
        "notify[0].failure_alarm.failures",
        "greater than or equal to 1",
    ),
    (
        "alarm minutes as text",
        "    events: [run_started, run_finished]",
        '    failure_alarm:\n      failures: 5\n      minutes: "10"',
        6,
        "notify[0].failure_alarm.minutes",
        "expected a number, got '10'",
    ),
    (
        "alarm unknown key",
        "    events: [run_started, run_finished]",
        "    failure_alarm: {failures: 5, window: 10}",
        4,
        "notify[0].failure_alarm.window",
        "unknown key (expected one of: failures, minutes)",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_bad_channel_is_named_by_file_line_and_key(
    tmp_path, capsys, old, new, line, key, fragment
):
    assert old in NOTIFY
    path = write_config(tmp_path, NOTIFY.replace(old, new, 1) + BASE)
    code, out, err = invoke(["status", "--config", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith(f"backfill: {path}:{line}: {key}: "), err
    assert fragment in err
    assert err.count("\n") == 1


def test_channels_load_with_their_defaults_and_the_variable_unexpanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    text = NOTIFY.replace("/hook", "/hook?t=${HOOK_TOKEN}") + BASE
    config = load_config(write_config(tmp_path, text))
    (channel,) = config.notify
    assert channel.webhook == "http://127.0.0.1:8099/hook?t=${HOOK_TOKEN}"
    assert channel.events == ("run_started", "run_finished")
    assert channel.min_severity is None
    assert channel.timeout == 10
    assert (channel.failure_alarm.failures, channel.failure_alarm.window) == (10, 600)
    assert channel.quiet_hours is None


def test_alarm_thresholds_and_quiet_hours_load(tmp_path):
    more = '    failure_alarm: {failures: 5, minutes: 2.5}\n    quiet_hours: "22:00-07:00"\n'
    config = load_config(write_config(tmp_path, NOTIFY + more + BASE))
    (channel,) = config.notify
    assert (channel.failure_alarm.failures, channel.failure_alarm.window) == (5, 150)
    assert str(channel.quiet_hours) == "22:00-07:00"
    assert load_config(write_config(tmp_path, BASE)).notify == ()
