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
    assert load_config(write_config(tmp_path, BASE)).notify == ()
