"""Hostile configs (issue 12): whatever --config names and whatever the file holds, `status` and
`plan` answer at once with one line naming the file, the line where there is one, and the cause,
and exit 2. Each case is one the fuzz run found as a traceback, a hang or a message without a
cause; the seeded fuzz at the end keeps looking."""

from __future__ import annotations

import os
import random
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.config.source import MAX_BYTES
from core.report_text import shell_line
from tests.helpers import day, invoke, write_config, write_tables

ROOT = Path(__file__).parents[2]

GOOD = """\
name: t
warehouse: {kind: sqlite, path: wh}
calendar:
  start: 2024-01-01
  end: 2024-01-10
phases:
  - name: raw
    processors:
      - name: src
        table: ds.src
        date_column: d
  - name: work
    processors:
      - name: job
        table: ds.job
        date_column: d
        depends_on: [src]
        command: ["true", "{start}"]
"""

COMMANDS = {"status": ["status"], "plan": ["plan", "2024-01-02"]}


def run(command: str, config: Path, capsys) -> tuple[int, str, str]:
    return invoke([*COMMANDS[command], "--config", str(config)], capsys)


def assert_refused(result: tuple[int, str, str], config: Path, where: str, cause: str) -> None:
    """Exit 2 and one line: `backfill: FILE:WHERE: ... CAUSE ...` (no WHERE when the file has no
    line at fault: it is missing, a FIFO, too large, ...)."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"backfill: {config}:{where}: " if where else f"backfill: {config}: "), (
        err
    )
    assert cause in err, err


def good_folder(folder: Path) -> Path:
    """A warehouse with the source filled, so `plan` on GOOD prints commands."""
    write_tables(folder / "wh", {"ds.src": {day("2024-01-02"): 1}}, date_column="d")
    return folder


# -- what the file holds -----------------------------------------------------------------------


def nine_level_alias_bomb() -> str:
    lines = ["a: &a [" + ", ".join(["x"] * 9) + "]"]
    for level in range(1, 9):
        name, below = "abcdefghi"[level], "abcdefghi"[level - 1]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{below}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def env(entries: str) -> bytes:
    return GOOD.replace(
        'command: ["true", "{start}"]', f"command: [echo]\n        env: {entries}"
    ).encode()


@dataclass(frozen=True)
class Content:
    id: str
    data: bytes
    where: str  # line, or line:column, of the message
    cause: str


CONTENTS = [
    # text: UTF-8, and none of the control characters YAML refuses
    Content("NUL byte", b"name: t\nx: a\x00b\n", "2:5", "control character U+0000 (NUL)"),
    Content("escape character", b"name: t\x1b[2J\n", "1:8", "control character U+001B"),
    Content(
        "latin-1 text",
        "name: t\ncalendar:\n  title: café\n".encode("latin-1"),
        "3:13",
        "byte 0xe9 is not UTF-8: a config file must be UTF-8 text",
    ),
    Content("UTF-16 text", "name: t\n".encode("utf-16"), "1:1", "byte 0xff is not UTF-8"),
    # structure: nesting, aliases and size within budgets
    Content(
        "flow nesting 1,000 deep",
        b"name: t\nx: " + b"[" * 1000 + b"]" * 1000 + b"\n",
        "2",
        "x[0][0][0][0][0]...: nested more than 50 levels deep",
    ),
    Content(
        "block nesting 1,000 deep",
        b"".join(b" " * i + b"k:\n" for i in range(1000)),
        "51",
        "k.k.k.k.k.k...: nested more than 50 levels deep",
    ),
    Content(
        "block sequences 1,000 deep",
        b"".join(b" " * (2 * i) + b"-\n" for i in range(1000)),
        "51",
        "nested more than 50 levels deep",
    ),
    Content(
        "nine-level alias bomb",
        nine_level_alias_bomb().encode(),
        "6",
        "f[0]: alias *e repeats 66,430 values, past the 100,000",
    ),
    Content("alias of itself", b"a: &a [x, *a]\n", "1", "a[1]: alias *a is inside the value"),
    Content(
        "200,000 list items",
        b"name: t\nx:\n" + b"".join(b"  - item\n" for _ in range(200_000)),
        "99998",
        "more than 100,000 values: a config this large is not supported",
    ),
    Content(
        "a tag the text does not fit",
        GOOD.replace("start: 2024-01-01", "start: !!timestamp soon").encode(),
        "4",
        "calendar.start: expected a date YYYY-MM-DD, got 'soon'",
    ),
    # keys: text only
    Content("number as key", b"name: t\n1: x\n", "2", "keys must be text, got 1"),
    Content("null as key", b"null: x\n", "1", "keys must be text, got null"),
    Content("list as key", b"name: t\n? [a, b]\n: c\n", "2", "keys must be text, got a list"),
    Content("mapping as key", b"name: t\n? [a, b]: c\n", "2", "keys must be text, got a mapping"),
    Content(
        "escape sequence in a key",
        GOOD.replace("name: t", 'name: t\n"\\e]2;title\\a": 1').encode(),
        "2",
        "['\\x1b]2;title\\x07']: unknown key",  # shown escaped, not sent to the terminal
    ),
    Content(
        "number as a nested key",
        b"name: t\ncalendar:\n  start: 2024-01-01\n  2: x\n",
        "4",
        "calendar: keys must be text, got 2",
    ),
    # env: variable names, and no NUL where exec cannot take one
    Content(
        "env name with =",
        env('{"A=B": x}'),
        "19",
        "phases[1].processors[0].env.A=B: 'A=B' is not an environment variable name",
    ),
    Content(
        "env name with NUL",
        env('{"A\\0B": x}'),
        "19",
        "phases[1].processors[0].env['A\\x00B']: 'A\\x00B' is not an environment variable name",
    ),
    Content(
        "env name with shell code",
        env('{"A;touch X": x}'),
        "19",
        "env.A;touch X: 'A;touch X' is not an environment variable name",
    ),
    Content(
        "env value with NUL",
        env('{A: "x\\0y"}'),
        "19",
        "phases[1].processors[0].env.A: the value contains a NUL character",
    ),
    Content(
        "command argument with NUL",
        GOOD.replace('"{start}"', '"a\\0b"').encode(),
        "18",
        "phases[1].processors[0].command[1]: contains a NUL character",
    ),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("content", CONTENTS, ids=[c.id for c in CONTENTS])
def test_hostile_content_is_refused_in_one_line(tmp_path, capsys, content, command):
    config = good_folder(tmp_path) / "backfill.yaml"
    config.write_bytes(content.data)
    assert_refused(run(command, config, capsys), config, content.where, content.cause)


@pytest.mark.parametrize("command", COMMANDS)
def test_random_junk_bytes_are_refused_with_line_and_column(tmp_path, capsys, command):
    config = tmp_path / "backfill.yaml"
    config.write_bytes(random.Random(12).randbytes(4096))
    code, _, err = run(command, config, capsys)
    assert code == 2
    assert re.fullmatch(
        rf"backfill: {re.escape(str(config))}:\d+:\d+: "
        r"(byte 0x[0-9a-f]{2} is not UTF-8|control character U\+[0-9A-F]{4}).*\n",
        err,
    ), err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_above_the_limit_is_refused_before_it_is_read(tmp_path, capsys, command):
    config = tmp_path / "backfill.yaml"
    config.write_bytes(b"#" * MAX_BYTES + b"\n")
    assert_refused(
        run(command, config, capsys),
        config,
        "",
        f"a config file may be at most 5 MiB; this one is {MAX_BYTES + 1:,} bytes",
    )


def many_processors(line: str) -> str:
    head = "name: t\ncalendar: {start: 2024-01-01, end: 2024-01-10}\nphases:\n  - name: raw\n"
    return head + "    processors:\n" + "".join(line.format(i=i) + "\n" for i in range(5000))


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (
            many_processors("      - {{name: p{i}, table: ds.p{i}, date_column: d, colour: red}}"),
            "phases[0].processors[0].colour: unknown key (expected one of: name, table,",
        ),
        (
            many_processors("      - {{name: p{i}, table: ds.p{i}, date_column: d, command: []}}"),
            "phases[0].processors[0].command: tuple should have at least 1 item",
        ),
        (
            many_processors(
                "      - {{name: p{i}, table: ds.p{i}, date_column: d, depends_on: [x{i}]}}"
            ),
            "phases[0].processors[0].depends_on[0]: unknown processor 'x0' (and 4999 more",
        ),
    ],
    ids=["unknown keys", "empty commands", "unknown dependencies"],
)
def test_thousands_of_problems_are_found_at_once(tmp_path, capsys, text, cause):
    # Each problem once searched the whole list of processors (or compared its name with every
    # processor's): minutes for a file like these.
    config = write_config(tmp_path, text)
    assert_refused(run("status", config, capsys), config, "6", cause)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_200000_line_file_under_the_limit_loads(tmp_path, capsys, command):
    config = good_folder(tmp_path) / "backfill.yaml"
    comments = "".join(f"# note {i}\n" for i in range(200_000))
    config.write_text(comments + GOOD)
    assert config.stat().st_size < MAX_BYTES
    code, out, err = run(command, config, capsys)
    assert code == 0, err
    assert out.startswith("t ")


# -- what --config names -----------------------------------------------------------------------


@contextmanager
def released_after(fifo: Path, seconds: float) -> Iterator[None]:
    """Should the CLI ever block opening the FIFO, a writer comes and goes after `seconds`: the
    test then fails on the message instead of hanging the suite."""

    def release() -> None:
        with suppress(OSError):  # no reader waiting: nothing to release
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(seconds, release)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def fifo(folder: Path) -> Path:
    os.mkfifo(folder / "backfill.yaml")
    return folder / "backfill.yaml"


def symlink_loop(folder: Path) -> Path:
    (folder / "backfill.yaml").symlink_to("backfill.yaml")
    return folder / "backfill.yaml"


PATHS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("FIFO", fifo, "is a FIFO (named pipe); --config takes a regular file"),
    ("directory", lambda folder: folder, "is a directory; --config takes a regular file"),
    ("/dev/null", lambda _: Path("/dev/null"), "is a character device; --config takes a regular"),
    ("/dev/zero", lambda _: Path("/dev/zero"), "is a character device; --config takes a regular"),
    ("symlink loop", symlink_loop, "too many levels of symbolic links (a symlink loop?)"),
    ("missing", lambda folder: folder / "nope.yaml", "config file not found (pass --config FILE"),
    ("under a file", lambda folder: folder / "f" / "x.yaml", "cannot read the config file: Not a"),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("make", "cause"), [p[1:] for p in PATHS], ids=[p[0] for p in PATHS])
def test_a_config_path_that_is_no_regular_file_is_refused_at_once(
    tmp_path, capsys, make, cause, command
):
    (tmp_path / "f").write_text("")
    config = make(tmp_path)
    guard = released_after(config, seconds=10) if config.is_fifo() else nullcontext()
    with guard:
        result = run(command, config, capsys)
    assert_refused(result, config, "", cause)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreadable_config_is_refused(tmp_path, capsys, command):
    config = write_config(tmp_path, GOOD)
    config.chmod(0)
    result = run(command, config, capsys)
    assert_refused(result, config, "", "permission denied: cannot read the config file")


# -- plan prints commands that paste safely ----------------------------------------------------


def test_plan_commands_pasted_into_a_shell_run_nothing_hidden(tmp_path, capsys):
    hostile = "$(touch made-by-subst); touch made-by-semicolon `touch made-by-backquote`"
    config = write_config(
        good_folder(tmp_path),
        GOOD.replace(
            'command: ["true", "{start}"]',
            f'command: ["true", "{hostile}", "{{start}}"]\n        env: {{A: "{hostile}"}}',
        ),
    )
    code, out, err = invoke(["plan", "2024-01-02", "--config", str(config)], capsys)
    assert code == 0, err
    [line] = [line.strip() for line in out.splitlines() if line.strip().startswith("A=")]
    pasted = subprocess.run(["sh", "-c", line], cwd=tmp_path, check=False)
    assert pasted.returncode == 0  # `true` ran: the line is valid shell
    assert not list(tmp_path.glob("made-by-*"))


def test_env_names_are_quoted_too(tmp_path):
    # The loader refuses such a name; the printed line stays inert even if one got through.
    line = shell_line(["true"], {"A;touch made": "1", "B": "$(touch made-too)"})
    subprocess.run(["sh", "-c", line], cwd=tmp_path, check=False, capture_output=True)
    assert not list(tmp_path.glob("made*"))
    assert shlex.split(line)[0] == "A;touch made=1"


# -- fuzz --------------------------------------------------------------------------------------

SNIPPETS = [
    b"\x00",
    b"\xe9",
    b"\xff\xfe",
    b"\x1b]2;x\x07",
    b"[" * 200,
    b"{" * 60,
    b"&a [*a]",
    b"*nowhere",
    b"? [a, b]\n: c\n",
    b"1: x\n",
    b"null: x\n",
    b"<<: *x\n",
    b"<<: 3\n",
    b"!!python/object/apply:os.system [true]",
    b"!!binary x",
    b"!!timestamp 2024-13-45",
    b"!!timestamp x",
    b"!!bool maybe",
    b"---\n",
    b"\t",
    b"'",
    b'"',
    b'"\\0"',
    b"- - - -\n",
    b'env: {"A=B": x}\n',
    b"\r",
    b"%YAML 1.1\n",
    b": :\n",
]


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    how = rng.choice(["flip", "truncate", "insert", "insert a line", "drop a line"])
    at = rng.randrange(len(data) + 1)
    snippet = rng.choice(SNIPPETS)
    lines = data.splitlines(keepends=True) or [b""]
    row = rng.randrange(len(lines))
    indent = lines[row][: len(lines[row]) - len(lines[row].lstrip())]
    if how == "flip":
        mutated = data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    elif how == "truncate":
        mutated = data[:at]
    elif how == "insert":
        mutated = data[:at] + snippet + data[at:]
    elif how == "insert a line":
        mutated = b"".join([*lines[:row], indent + snippet + b"\n", *lines[row:]])
    else:
        mutated = b"".join(lines[:row] + lines[row + 1 :])
    return mutated, f"{how} at {at} / line {row + 1}: {snippet!r}"


@pytest.fixture(scope="module")
def demo_config() -> bytes:
    # The demo seeds its warehouse on first use (seconds): here the warehouse is an empty folder.
    text = (ROOT / "backfill.yaml").read_text()
    assert "demo: true " in text
    return text.replace("demo: true ", "demo: false").encode()


def test_fuzzed_demo_configs_never_crash_plan(tmp_path, capsys, demo_config):
    (tmp_path / ".backfill" / "warehouse").mkdir(parents=True)
    config = tmp_path / "backfill.yaml"
    rng = random.Random(20240112)
    for case in range(200):
        data, hows = demo_config, []
        for _ in range(rng.randint(1, 3)):
            data, how = mutate(data, rng)
            hows.append(how)
        config.write_bytes(data)
        code, _, err = invoke(["plan", "2024-01-02", "--config", str(config)], capsys)
        assert code in (0, 2), (case, hows, err)
        assert "Traceback" not in err
        if code == 2:
            assert err.count("\n") == 1, (case, hows, err)
