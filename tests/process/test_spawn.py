"""Starting attempts and letting them end on their own: exit codes, logs, env, cwd, argv."""

from __future__ import annotations

import subprocess

import pytest

from core import process
from tests.process.support import py, spec


@pytest.mark.anyio
async def test_exit_zero_logs_both_streams_and_records_the_status(tmp_path):
    job = py("import sys; print('to stdout'); print('to stderr', file=sys.stderr)")
    attempt = await process.start(spec(tmp_path, job))
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
    attempt = await process.start(spec(tmp_path, ["sh", "-c", "echo boom >&2; exit 3"]))
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
    attempt = await process.start(spec(tmp_path, job))
    outcome = await attempt.wait()
    assert outcome.ok
    assert attempt.launched.log_path.stat().st_size > 1_000_000
    assert len(outcome.tail) == 20
    assert outcome.tail[0].startswith("19980 ") and outcome.tail[-1].startswith("19999 ")


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
        with pytest.raises(process.LaunchError) as caught:
            await process.start(spec(tmp_path, [program, "--x"], log_path=log_path))
        assert str(caught.value) == why
        assert process.read_tail(log_path) == (f"[backfill] could not start: {why}",)


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
    outcome = await (await process.start(spec(tmp_path, job, env=env, cwd=workdir))).wait()
    assert outcome.ok
    assert outcome.tail == (
        "inherited given",
        f"cwd {workdir}",
        "args ['$HOME; echo pwned', '*']",
    )


@pytest.mark.anyio
async def test_a_name_shadowed_by_a_shell_builtin_runs_the_real_program(tmp_path):
    # dash's builtin echo would turn \t into a tab; /bin/echo prints it as is.
    outcome = await (await process.start(spec(tmp_path, ["echo", "a\\tb"]))).wait()
    assert outcome.tail == ("a\\tb",)


@pytest.mark.anyio
async def test_a_job_runs_with_the_operators_umask_while_its_log_stays_private(tmp_path):
    import os
    import stat

    from core.state import statedir

    before = os.umask(0o022)  # the operator's
    restore = statedir.engine_umask(None)  # the engine's own: 077
    try:
        job = py("import os; print(oct(os.umask(0)))")
        attempt = await process.start(spec(tmp_path, job))
        outcome = await attempt.wait()
    finally:
        os.umask(restore)
        os.umask(before)
    assert outcome.tail[-1] == "0o22"
    assert stat.S_IMODE((tmp_path / "logs" / "attempt.log").stat().st_mode) == 0o600


@pytest.mark.anyio
async def test_the_start_time_taken_from_the_boot_clock_is_the_one_proc_shows(tmp_path):
    """A reused pid is told apart by its start time: the one journaled at the spawn (from the
    boot clock around it, without reading /proc) must be the kernel's, for every spawn."""
    attempts = [
        await process.start(spec(tmp_path, ["sleep", "5"], log_path=tmp_path / f"a{n}.log"))
        for n in range(40)
    ]
    try:
        for attempt in attempts:
            assert attempt.launched.start_ticks == process.start_ticks(attempt.launched.pid)
    finally:
        for attempt in attempts:
            await attempt.cancel()


def test_a_spawn_across_a_clock_tick_reads_its_start_time_from_proc():
    from core.process.groups import _TICK_NS, spawned_ticks

    child = subprocess.Popen(["sleep", "5"])
    try:
        truth = process.start_ticks(child.pid)
        assert truth is not None
        # Readings a tick apart cannot say which tick the kernel stamped: /proc does.
        assert spawned_ticks(child.pid, 0, _TICK_NS) == truth
        # Within one tick they say it alone (a pid that is not there shows it reads nothing).
        assert spawned_ticks(2**22 + 1, 7 * _TICK_NS + 1, 8 * _TICK_NS - 1) == 7
    finally:
        child.kill()
        child.wait()
