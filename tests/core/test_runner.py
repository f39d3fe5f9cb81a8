"""The runner against real processes: exit codes, logs, timeouts, stalls, cancellation, adoption.

Jobs are small Python or sh programs. "Gone" means not running: a zombie counts as gone, since
orphans here are re-parented to an init that may never reap them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from core import runner
from core.runner import AttemptSpec, Launched

ROOT = Path(__file__).parents[2]
PY = sys.executable


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def spec(tmp_path: Path, argv: list[str], **kw) -> AttemptSpec:
    fields = {
        "env": {},
        "cwd": tmp_path,
        "log_path": tmp_path / "logs" / "attempt.log",
        "timeout": None,
        "stall_timeout": None,
        "grace": 2.0,
    }
    fields.update(kw)
    return AttemptSpec(argv=tuple(argv), **fields)


def py(code: str, *args: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code), *args]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return not stat.parent.parent.exists()  # no /proc: kill() is all we have


async def wait_for_file(path: Path, text: str = "", limit: float = 10.0) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and text in (content := path.read_text()):
            return content
        await anyio.sleep(0.02)
    raise AssertionError(f"{path} never contained {text!r}")


SPAWNS_GRANDCHILDREN = """
    import subprocess, sys, time
    pids = [subprocess.Popen(["sleep", "300"]).pid for _ in range(2)]
    with open(sys.argv[1] + ".part", "w") as f:
        f.write(" ".join(map(str, pids)))
    __import__("os").rename(sys.argv[1] + ".part", sys.argv[1])
    print("spawned", flush=True)
    time.sleep(300)
"""


async def grandchildren(pid_file: Path) -> list[int]:
    pids = [int(p) for p in (await wait_for_file(pid_file)).split()]
    assert len(pids) == 2 and all(running(p) for p in pids)
    return pids


# -- ending on its own -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_exit_zero_logs_both_streams_and_records_the_status(tmp_path):
    job = py("import sys; print('to stdout'); print('to stderr', file=sys.stderr)")
    attempt = await runner.start(spec(tmp_path, job))
    assert attempt.launched.pgid == attempt.launched.pid

    outcome = await attempt.wait()

    assert (outcome.exit_code, outcome.reason, outcome.ok) == (0, "exit", True)
    assert 0 < outcome.duration < 10
    assert set(outcome.tail) == {"to stdout", "to stderr"}
    log = attempt.launched.log_path.read_text()
    assert "to stdout\n" in log and "to stderr\n" in log
    assert await attempt.wait() is outcome  # a second wait gets the same answer


@pytest.mark.anyio
async def test_nonzero_exit_is_not_ok_and_keeps_the_code(tmp_path):
    attempt = await runner.start(spec(tmp_path, ["sh", "-c", "echo boom >&2; exit 3"]))
    outcome = await attempt.wait()
    assert (outcome.exit_code, outcome.reason, outcome.ok) == (3, "exit", False)
    assert outcome.tail == ("boom",)


@pytest.mark.anyio
async def test_megabytes_of_output_go_to_the_file_and_tail_is_the_last_lines(tmp_path):
    job = py(
        """
        import sys
        line = "x" * 60
        for i in range(20000):
            sys.stdout.write(f"{i:05d} {line}\\n")
        """
    )
    attempt = await runner.start(spec(tmp_path, job))
    outcome = await attempt.wait()
    assert outcome.ok
    assert attempt.launched.log_path.stat().st_size > 1_000_000
    assert len(outcome.tail) == 20
    assert outcome.tail[0].startswith("19980 ") and outcome.tail[-1].startswith("19999 ")


def test_tail_reads_from_the_end_of_a_huge_file(tmp_path):
    log = tmp_path / "huge.log"
    with open(log, "wb") as f:
        f.truncate(4 * 1024**3)  # sparse: reading it all would take seconds, seeking takes none
        f.seek(0, os.SEEK_END)
        f.write("\nfirst\n\nsecond\r\ncaf\u00e9 \xff\n".encode() + b"\xff\xfe last\n")
    began = time.monotonic()
    tail = runner.read_tail(log)
    assert time.monotonic() - began < 0.5
    assert tail == ("first", "second", "caf\u00e9 \u00ff", "\ufffd\ufffd last")


# -- limits ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_timeout_kills_the_job_and_its_grandchildren(tmp_path):
    pid_file = tmp_path / "pids"
    attempt = await runner.start(
        spec(tmp_path, py(SPAWNS_GRANDCHILDREN, str(pid_file)), timeout=1.5, grace=2.0)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt.wait)
        pids = await grandchildren(pid_file)
    outcome = attempt.outcome
    assert outcome is not None
    assert (outcome.reason, outcome.exit_code, outcome.ok) == ("timeout", 143, False)
    assert 1.5 <= outcome.duration < 4
    assert not any(running(p) for p in [*pids, attempt.launched.pid])
    assert "[backfill] timed out after 1.5s; killing process group" in outcome.tail[-1]


@pytest.mark.anyio
async def test_a_job_ignoring_sigterm_is_killed_after_grace(tmp_path):
    job = py(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(300)
        """
    )
    attempt = await runner.start(spec(tmp_path, job, grace=0.3))
    await wait_for_file(attempt.launched.log_path, "ready")
    began = time.monotonic()
    await attempt.cancel()
    assert 0.3 <= time.monotonic() - began < 3
    assert not running(attempt.launched.pid)
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("cancelled", 137)
    assert "SIGKILLed" in outcome.tail[-1]


@pytest.mark.anyio
async def test_a_silent_job_is_killed_as_stalled(tmp_path):
    job = py("import time; print('hello', flush=True); time.sleep(300)")
    attempt = await runner.start(spec(tmp_path, job, stall_timeout=0.8))
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("stall", 143)
    assert 0.8 <= outcome.duration < 3
    assert outcome.tail[0] == "hello"
    assert outcome.tail[-1].startswith("[backfill] stalled: no output for 0.8s; killing process")


@pytest.mark.anyio
async def test_a_slow_but_steady_job_is_not_a_stall(tmp_path):
    job = py(
        """
        import time
        for i in range(12):
            print(f"tick {i}", flush=True)
            time.sleep(0.15)
        """
    )
    attempt = await runner.start(spec(tmp_path, job, stall_timeout=0.6))
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("exit", 0)
    assert outcome.duration > 1.5  # well past the stall timeout
    assert outcome.tail[-1] == "tick 11"
    assert attempt.last_output_at() > attempt.launched.started_at + 1.2


# -- cancellation ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancel_kills_the_whole_group(tmp_path):
    pid_file = tmp_path / "pids"
    attempt = await runner.start(spec(tmp_path, py(SPAWNS_GRANDCHILDREN, str(pid_file))))
    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt.wait)
        pids = await grandchildren(pid_file)
        await attempt.cancel()
        assert not any(running(p) for p in [*pids, attempt.launched.pid])
    outcome = attempt.outcome
    assert outcome is not None
    assert (outcome.reason, outcome.exit_code, outcome.ok) == ("cancelled", 143, False)
    assert outcome.tail[-1].startswith("[backfill] cancelled; killing process group")


@pytest.mark.anyio
async def test_cancelling_the_waiting_task_kills_the_group(tmp_path):
    pid_file = tmp_path / "pids"
    attempt = await runner.start(spec(tmp_path, py(SPAWNS_GRANDCHILDREN, str(pid_file))))
    pids = await grandchildren(pid_file)
    with anyio.move_on_after(0.2):
        await attempt.wait()
    assert not any(running(p) for p in [*pids, attempt.launched.pid])
    outcome = await attempt.wait()
    assert outcome.reason == "cancelled"
    assert "the engine stopped waiting" in outcome.tail[-1]


@pytest.mark.anyio
async def test_a_detached_attempt_survives_the_cancelled_wait(tmp_path):
    attempt = await runner.start(spec(tmp_path, ["sleep", "30"], grace=0.5))
    attempt.detach()
    with anyio.move_on_after(0.2):
        await attempt.wait()
    assert runner.alive(attempt.launched)
    await attempt.cancel()
    assert not runner.alive(attempt.launched)
    assert (await attempt.wait()).reason == "cancelled"


@pytest.mark.anyio
async def test_our_own_attempt_killed_by_someone_else_reports_the_signal(tmp_path):
    attempt = await runner.start(spec(tmp_path, ["sleep", "30"]))
    await anyio.sleep(0.05)
    os.killpg(attempt.launched.pgid, signal.SIGKILL)
    outcome = await attempt.wait()
    # As a shell reports it: 128 + 9. An OOM kill reads the same, and operators know 137.
    assert (outcome.reason, outcome.exit_code, outcome.ok) == ("exit", 137, False)


@pytest.mark.anyio
async def test_a_timeout_kill_completes_even_if_the_waiter_is_cancelled_mid_grace(tmp_path):
    job = py(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(300)
        """
    )
    attempt = await runner.start(spec(tmp_path, job, timeout=1.0, grace=0.6))
    await wait_for_file(attempt.launched.log_path, "ready")
    # Lands between SIGTERM (at 1 s) and SIGKILL (at 1.6 s).
    with anyio.move_on_after(attempt.launched.started_at + 1.3 - time.time()):
        await attempt.wait()
    assert not runner.alive(attempt.launched)
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("timeout", 137)
    assert outcome.tail[-1].endswith("outlived SIGTERM by 0.6s; SIGKILLed")


# -- adoption after an engine crash ----------------------------------------------------------------

DYING_ENGINE = """
import json, os, sys
from pathlib import Path
import anyio
from core import runner
spec = runner.AttemptSpec(
    argv=tuple(json.loads(sys.argv[1])), env={}, cwd=Path(sys.argv[2]),
    log_path=Path(sys.argv[2]) / "adopted.log", timeout=None, stall_timeout=None, tag=sys.argv[3],
)
attempt = anyio.run(runner.start, spec)
print(json.dumps(attempt.launched.to_dict()), flush=True)
os._exit(0)  # like kill -9: no wait, no cleanup
"""


def launch_from_dying_engine(tmp_path: Path, argv: list[str], tag: str = "") -> Launched:
    done = subprocess.run(
        [PY, "-c", DYING_ENGINE, json.dumps(argv), str(tmp_path), tag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    launched = Launched.from_dict(json.loads(done.stdout))
    assert launched.log_path == tmp_path / "adopted.log"
    return launched


@pytest.mark.anyio
async def test_an_adopted_attempt_is_watched_to_its_end_without_a_status(tmp_path):
    argv = ["sh", "-c", "echo adopted; sleep 1.5; exit 5"]
    launched = launch_from_dying_engine(tmp_path, argv)
    assert runner.alive(launched)  # still running when we reattach: not the trivial case
    attempt = runner.adopt(launched, spec(tmp_path, argv, log_path=launched.log_path))
    assert attempt.adopted
    outcome = await attempt.wait()
    # Not our child, so its exit status is not ours to read: the warehouse judges it.
    assert (outcome.reason, outcome.exit_code, outcome.ok) == ("exit", None, False)
    assert outcome.status_unknown
    assert outcome.tail == ("adopted",)
    assert 1.4 <= outcome.duration < 5  # clocks of two processes: a few ms either way
    assert not runner.alive(launched)


@pytest.mark.anyio
async def test_an_attempt_whose_pid_was_never_journaled_is_found_by_its_tag(tmp_path):
    tag = f"17@{tmp_path}/journal.sqlite"
    argv = ["sh", "-c", "sleep 1; echo child; sleep 1"]  # sh forks: children carry the tag too
    launched = launch_from_dying_engine(tmp_path, argv, tag)  # as if its journal row had no pid
    found = runner.find_tagged([tag, "18@elsewhere"])
    assert found == {tag: launched.pid}  # the group's leader, not its children
    outcome = await runner.adopt(launched, spec(tmp_path, argv, log_path=launched.log_path)).wait()
    assert outcome.tail == ("child",)
    assert runner.find_tagged([tag]) == {}  # ended: nothing left to adopt


@pytest.mark.anyio
async def test_an_attempt_already_gone_when_adopted_is_interrupted(tmp_path):
    argv = ["sh", "-c", "echo quick"]
    launched = launch_from_dying_engine(tmp_path, argv)
    await wait_for_file(launched.log_path, "quick")
    deadline = time.monotonic() + 10
    while runner.alive(launched) and time.monotonic() < deadline:
        await anyio.sleep(0.02)
    outcome = await runner.adopt(launched, spec(tmp_path, argv, log_path=launched.log_path)).wait()
    assert (outcome.reason, outcome.exit_code, outcome.status_unknown) == (
        "interrupted",
        None,
        True,
    )
    assert outcome.duration < 5  # ended at its last log write, not when we looked


@pytest.mark.anyio
async def test_adopted_attempt_still_times_out_from_its_original_start(tmp_path):
    argv = ["sleep", "30"]
    launched = launch_from_dying_engine(tmp_path, argv)
    elapsed = time.time() - launched.started_at
    attempt = runner.adopt(
        launched, spec(tmp_path, argv, log_path=launched.log_path, timeout=elapsed + 0.3)
    )
    outcome = await attempt.wait()
    assert (outcome.reason, outcome.exit_code) == ("timeout", None)
    assert outcome.duration < elapsed + 3
    assert not runner.alive(launched)


@pytest.mark.anyio
async def test_alive_guards_against_dead_and_reused_pids(tmp_path):
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        log = tmp_path / "x.log"
        mine = Launched(other.pid, other.pid, time.time(), log)
        assert runner.alive(mine)
        # Same pid, different group: a reused pid, not our attempt.
        assert not runner.alive(Launched(other.pid, os.getpgrp(), 0.0, log))
        assert not runner.alive(Launched(os.getpid(), other.pid, 0.0, log))
    finally:
        other.kill()
        other.wait()
    assert not runner.alive(mine)


# -- launching -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_program_that_cannot_start_says_why_in_the_error_and_the_log(tmp_path):
    (tmp_path / "not-executable.sh").write_text("echo hi\n")
    cases = [
        ("definitely-not-a-command-zz9", "command not found: definitely-not-a-command-zz9"),
        ("./missing-job.sh", "command not found: ./missing-job.sh"),
        ("./not-executable.sh", "not executable: ./not-executable.sh"),
    ]
    for program, why in cases:
        log_path = tmp_path / "logs" / f"{program.strip('./')}.log"
        with pytest.raises(runner.LaunchError) as caught:
            await runner.start(spec(tmp_path, [program, "--x"], log_path=log_path))
        assert str(caught.value) == why
        assert runner.read_tail(log_path) == (f"[backfill] could not start: {why}",)


@pytest.mark.anyio
async def test_env_is_merged_cwd_honoured_and_args_are_not_shell_parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKFILL_FROM_PARENT", "inherited")
    workdir = tmp_path / "work"
    workdir.mkdir()
    job = py(
        """
        import os, sys
        print(os.environ["BACKFILL_FROM_PARENT"], os.environ["BACKFILL_OVERRIDE"])
        print("cwd", os.getcwd())
        print("args", sys.argv[1:])
        """,
        "$HOME; echo pwned",
        "*",
    )
    env = {"BACKFILL_OVERRIDE": "given"}
    outcome = await (await runner.start(spec(tmp_path, job, env=env, cwd=workdir))).wait()
    assert outcome.ok
    assert outcome.tail == (
        "inherited given",
        f"cwd {workdir}",
        "args ['$HOME; echo pwned', '*']",
    )


@pytest.mark.anyio
async def test_a_name_shadowed_by_a_shell_builtin_runs_the_real_program(tmp_path):
    # dash's builtin echo would turn \t into a tab; /bin/echo prints it as is.
    outcome = await (await runner.start(spec(tmp_path, ["echo", "a\\tb"]))).wait()
    assert outcome.tail == ("a\\tb",)
