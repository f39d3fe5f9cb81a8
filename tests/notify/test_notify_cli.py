"""`backfill notify --test [--channel NAME]` against real receivers on 127.0.0.1."""

from __future__ import annotations

from tests.core.test_config_errors import BASE
from tests.helpers import invoke, write_config
from tests.receiver import receiving


def config_with(tmp_path, *channels: tuple[str, str]):
    lines = ["notify:"] + [f"  - {{name: {name}, webhook: '{url}'}}" for name, url in channels]
    return write_config(tmp_path, "\n".join(lines) + "\n" + BASE)


def test_every_channel_gets_the_test_message_and_each_is_reported(tmp_path, capsys):
    with receiving() as a, receiving() as b:
        path = config_with(tmp_path, ("team", a.url), ("ops", b.url))
        code, out, err = invoke(["notify", "--test", "--config", str(path)], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == ["team: delivered", "ops: delivered"]
    for rx in (a, b):
        (body,) = rx.bodies
        assert body["event"] == "test"
        assert set(body) >= {"event", "run_id", "message", "at"}


def test_one_failing_channel_is_named_with_its_error_and_the_exit_is_1(tmp_path, capsys):
    with receiving() as good, receiving(status=404) as bad:
        path = config_with(tmp_path, ("team", good.url), ("ops", bad.url))
        code, out, _ = invoke(["notify", "--test", "--config", str(path)], capsys)
    assert code == 1
    assert out.splitlines() == ["team: delivered", "ops: failed: HTTP 404 Not Found: nope"]


def test_channel_picks_one(tmp_path, capsys):
    with receiving() as a, receiving() as b:
        path = config_with(tmp_path, ("team", a.url), ("ops", b.url))
        code, out, _ = invoke(
            ["notify", "--test", "--channel", "ops", "--config", str(path)], capsys
        )
    assert (code, out) == (0, "ops: delivered\n")
    assert (len(a.bodies), len(b.bodies)) == (0, 1)


def test_an_unknown_channel_is_one_line_and_exit_2(tmp_path, capsys):
    path = config_with(tmp_path, ("team", "http://127.0.0.1:9/x"))
    code, out, err = invoke(
        ["notify", "--test", "--channel", "nope", "--config", str(path)], capsys
    )
    assert (code, out) == (2, "")
    assert err == f"backfill: {path}: notify: no channel 'nope' (channels: team)\n"


def test_no_channels_or_no_action_is_bad_input(tmp_path, capsys):
    path = write_config(tmp_path, BASE)
    code, _, err = invoke(["notify", "--test", "--config", str(path)], capsys)
    assert code == 2 and "no notify: channels" in err and err.count("\n") == 1
    code, _, err = invoke(["notify", "--config", str(path)], capsys)
    assert code == 2 and "--test" in err


def test_an_unset_variable_is_the_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NO_SUCH_HOOK", raising=False)
    path = config_with(tmp_path, ("team", "${NO_SUCH_HOOK}"))
    code, out, _ = invoke(["notify", "--test", "--config", str(path)], capsys)
    assert code == 1
    assert out == "team: failed: the environment variable NO_SUCH_HOOK is not set\n"
