"""The state_dir under stress: its modes, a folder that cannot be written, a full disk, a journal
deleted under a running engine, and a lock file deleted under it.

Real engines (in-process through the CLI, or as subprocesses), real SQLite, real files. A
read-only and a full file system are real too: a small tmpfs in a mount namespace of its own
(`unshare -rm`), skipped with the reason where the machine does not allow one.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.errors import UserError
from core.state import JOURNAL_FILE, EngineLock, Journal
from tests.helpers import day, invoke, span, write_config, write_tables

ROOT = Path(__file__).parents[2]
JOB = ROOT / "tests" / "jobs" / "record.py"
DATES = [d.isoformat() for d in span("2024-01-01", "2024-01-06")]
RUN = ["run", "2024-01-01", "2024-01-06", "--headless"]


def pipeline(
    state_dir: Path | str = ".backfill",
    *,
    sleep: float = 0.1,
    parallel: int = 2,
    group: str | None = None,
    quiet: bool = False,
    end: str = "2024-01-06",
) -> str:
    """One source and one processor `x` (tests/jobs/record.py, one date per attempt).
    `quiet`: the job prints nothing, so it needs no room in its log (a full disk)."""
    job = f'"{{python}}", "{JOB}", x, "{{dates}}", --sleep, "{sleep}"'
    if quiet:
        job = f'sh, -c, "exec {{python}} {JOB} x {{dates}} --sleep {sleep} >/dev/null 2>&1"'
    return f"""
    name: state-dir-test
    state_dir: {state_dir}
    {f"group: {group}" if group else ""}
    warehouse: {{kind: sqlite, path: wh}}
    calendar: {{start: 2024-01-01, end: {end}}}
    phases:
      - name: src
        processors:
          - {{name: base, table: ds.base, date_column: d}}
      - name: work
        max_parallel: {parallel}
        processors:
          - name: x
            table: ds.x
            date_column: d
            depends_on: [base]
            command: [{job}]
            retries: 0
            stall_timeout: 30s
            timeout: 60s
    """


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Returns a factory: pipeline options -> the config file of a project in tmp_path."""

    def make(**options: Any) -> Path:
        dates = [d.isoformat() for d in span("2024-01-01", options.get("end", "2024-01-06"))]
        write_tables(tmp_path / "wh", {"ds.base": {day(d): 1 for d in dates}}, date_column="d")
        monkeypatch.setenv("WAREHOUSE", str(tmp_path / "wh"))
        monkeypatch.setenv("RECORD", str(tmp_path / "record.jsonl"))
        monkeypatch.setenv("FAULTS", "")
        return write_config(tmp_path, pipeline(**options))

    return make


def records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "record.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def starts(tmp_path: Path) -> Counter[str]:
    return Counter(d for r in records(tmp_path) if r["kind"] == "start" for d in r["dates"])


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def engine(config: Path, *args: str) -> subprocess.Popen[str]:
    """A headless engine process on the config."""
    return subprocess.Popen(
        [sys.executable, "-m", "core", *RUN, *args, "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    assert err.strip().count("\n") == 0, err
    return err.strip()


# -- private by default ----------------------------------------------------------------------


def test_the_state_dir_and_everything_in_it_are_private(project, tmp_path, capsys):
    config = project()
    state = tmp_path / ".backfill"
    state.mkdir()
    os.chmod(state, 0o755)  # as an older backfill (or a umask of 022) left it
    umask = os.umask(0o022)
    try:
        code, out, err = invoke([*RUN, "--config", str(config)], capsys)
        assert code == 0, out + err
        assert os.umask(0o022) == 0o022  # the engine's umask went with it
        reader = Journal(state)  # with umask 022, SQLite makes -wal and -shm as the journal is
        assert mode(state / f"{JOURNAL_FILE}-wal") == mode(state / f"{JOURNAL_FILE}-shm") == 0o600
        reader.close()
    finally:
        os.umask(umask)
    detach = ["run", "2024-01-01", "2024-01-06", "--detach", "--reprocess", "all"]
    code, out, err = invoke([*detach, "--config", str(config)], capsys)
    assert code == 0, out + err
    wait_until(lambda: EngineLock(state).owner() is None, 30, "the detached engine never ended")
    assert mode(state) == 0o700
    found = {p.relative_to(state).as_posix(): p for p in state.rglob("*")}
    assert {"journal.sqlite", "engine.lock", "engine.log", "logs/run-2/x"} <= found.keys()
    assert any(name.endswith(".log") and name.startswith("logs/run-") for name in found)
    wrong = {
        name: oct(mode(path))
        for name, path in found.items()
        if mode(path) != (0o700 if path.is_dir() else 0o600)
    }
    assert wrong == {}


def test_with_a_group_its_members_may_read(project, tmp_path, capsys):
    group = grp.getgrgid(os.getegid()).gr_name
    config = project(group=group)
    code, out, err = invoke([*RUN, "--config", str(config)], capsys)
    assert code == 0, out + err
    state = tmp_path / ".backfill"
    assert mode(state) == 0o2750 and state.stat().st_gid == os.getegid()
    wrong = {
        str(path): oct(mode(path))
        for path in state.rglob("*")
        if mode(path) & 0o777 != (0o750 if path.is_dir() else 0o640)
    }
    assert wrong == {}


# -- a state_dir that cannot be written -------------------------------------------------------


def test_a_state_dir_under_a_file_is_one_line_naming_it_for_every_command(
    project, tmp_path, capsys
):
    (tmp_path / "afile").write_text("not a folder")
    state = tmp_path / "afile" / "state"
    config = project(state_dir=state)
    for args in (
        RUN,
        ["status"],
        ["logs", "x", "2024-01-01"],
        ["tui"],
    ):
        code, out, err = invoke([*args, "--config", str(config)], capsys)
        line = one_line(err)
        assert code == 2, (args, out, err)
        assert f"{state}: cannot" in line and "(Not a directory, ENOTDIR)" in line, (args, line)
    # `plan` needs no state_dir, unless the demo warehouse seeds itself into it.
    demo = (ROOT / "backfill.yaml").read_text()
    demo = demo.replace("state_dir: .backfill", f"state_dir: {state}")
    demo = demo.replace("path: .backfill/warehouse", f"path: {state}/warehouse")
    (tmp_path / "demo.yaml").write_text(demo)
    code, out, err = invoke(["plan", "2024-01-01", "--config", str(tmp_path / "demo.yaml")], capsys)
    assert code == 2 and "Not a directory, ENOTDIR" in one_line(err.splitlines()[-1]), err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores a folder's mode bits (no EACCES)")
def test_a_state_dir_without_write_permission_is_one_line(project, tmp_path, capsys):
    config = project()
    state = tmp_path / ".backfill"
    code, out, err = invoke([*RUN, "--config", str(config)], capsys)
    assert code == 0, out + err
    os.chmod(state, 0o500)
    try:
        code, _, err = invoke([*RUN, "--config", str(config)], capsys)
        assert code == 2 and "cannot write (Permission denied, EACCES)" in one_line(err)
        code, out, err = invoke(["logs", "x", "2024-01-01", "--config", str(config)], capsys)
        assert code == 0 and "x done" in out, err
    finally:
        os.chmod(state, 0o700)


def immutable(path: Path, on: bool) -> bool:
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    return done.returncode == 0


def test_an_immutable_state_dir_is_read_but_never_run_in(project, tmp_path, capsys):
    """Root too is refused by an immutable folder: the writers say so in one line (EPERM),
    the readers read the journal without writing."""
    config = project()
    state = tmp_path / ".backfill"
    code, out, err = invoke([*RUN, "--config", str(config)], capsys)
    assert code == 0, out + err
    if not immutable(state, True):
        pytest.skip("chattr +i is not allowed here (needs CAP_LINUX_IMMUTABLE and ext4/xfs)")
    try:
        code, out, err = invoke([*RUN, "--config", str(config)], capsys)
        assert code == 2 and f"{state}: cannot write (Operation not permitted, EPERM)" in (
            one_line(err)
        )
        code, out, err = invoke(["logs", "x", "2024-01-03", "--config", str(config)], capsys)
        assert code == 0 and "x done" in out, err
        code, out, err = invoke(["status", "--json", "--config", str(config)], capsys)
        assert code == 0, err
        assert sorted(os.listdir(state)) == ["engine.lock", "journal.sqlite", "logs"]
    finally:
        immutable(state, False)


# A helper that runs inside its own mount namespace: the tmpfs it mounts is seen by it and its
# children only, and goes when they end.
IN_A_NAMESPACE = """
import json, os, subprocess, sys
mnt, config = sys.argv[1], sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
def backfill(*args):
    done = subprocess.run([sys.executable, "-m", "tui", *args, "--config", config],
                          capture_output=True, text=True)
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr}
results = {"first": backfill("run", "2024-01-01", "2024-01-06", "--headless")}
subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
results["status"] = backfill("status")
results["logs"] = backfill("logs", "x", "2024-01-02")
results["run"] = backfill("run", "2024-01-01", "2024-01-06", "--headless")
results["tui"] = backfill("tui")
print(json.dumps(results))
"""


def namespaces_allowed(mnt: Path) -> str | None:
    """Why a test cannot have a tmpfs of its own here, or None."""
    if shutil.which("unshare") is None:
        return "no unshare(1)"
    probe = subprocess.run(
        ["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", str(mnt)], capture_output=True
    )
    if probe.returncode != 0:
        return f"no mount namespace with a tmpfs here: {probe.stderr.decode().strip()}"
    return None


def in_a_namespace(script: str, *args: str, timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_on_a_read_only_file_system_readers_read_and_writers_say_so(project, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if (why := namespaces_allowed(mnt)) is not None:
        pytest.skip(why)
    state = mnt / "state"
    config = project(state_dir=state)

    results = in_a_namespace(IN_A_NAMESPACE, str(mnt), str(config), timeout=120)

    assert results["first"]["code"] == 0, results["first"]
    assert results["status"]["code"] == 0, results["status"]
    assert "x" in results["status"]["out"]
    assert results["logs"]["code"] == 0 and "x done" in results["logs"]["out"], results["logs"]
    for command in ("run", "tui"):
        line = one_line(results[command]["err"])
        assert results[command]["code"] == 2, results[command]
        assert f"{state}: cannot write (Read-only file system, EROFS)" in line, line


# -- a full disk ---------------------------------------------------------------------------------

# Runs the engine on a 4 MiB tmpfs, fills it while the second two attempts run, frees it once
# they have ended, and copies the journal out before the tmpfs goes. Says when it saw each line.
FILL_THE_DISK = """
import json, os, shutil, subprocess, sys, threading, time
mnt, config, record, out = sys.argv[1:5]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
engine = subprocess.Popen(
    [sys.executable, "-m", "core", "run", "2024-01-01", "2024-01-08", "--headless",
     "--config", config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
said = []
def read():
    for line in engine.stdout:
        said.append((time.time(), line))
threading.Thread(target=read, daemon=True).start()
def recs():
    if not os.path.exists(record):
        return []
    return [json.loads(l) for l in open(record).read().splitlines() if l.endswith("}")]
def until(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or engine.poll() is not None:
            print(json.dumps({"failed": what, "said": said, "records": recs()}))
            engine.kill()
            sys.exit(0)
        time.sleep(0.02)
until(lambda: sum(r["kind"] == "start" for r in recs()) >= 4, "the second round running")
filler = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT)
for size in (1 << 16, 4096, 512, 1):
    try:
        while True:
            os.write(filler, b"x" * size)
    except OSError:
        pass
os.close(filler)
until(lambda: any("disk is full" in l for _, l in said), "the engine never said the disk is full")
started = lambda: sum(r["kind"] == "start" for r in recs())
ended = lambda: sum(r["kind"] == "end" for r in recs())
until(lambda: ended() == started(), "the running attempts never ended")
time.sleep(1.5)
os.unlink(os.path.join(mnt, "filler"))
code = engine.wait(timeout=60)
time.sleep(0.2)
shutil.copy(os.path.join(mnt, "state", "journal.sqlite"), out)
print(json.dumps({"code": code, "said": said}))
"""


def test_a_full_disk_holds_dispatch_loses_no_transition_and_resumes(project, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if (why := namespaces_allowed(mnt)) is not None:
        pytest.skip(why)
    config = project(state_dir=mnt / "state", sleep=0.6, quiet=True, end="2024-01-08")
    copy = tmp_path / "journal-copy.sqlite"
    record = tmp_path / "record.jsonl"

    result = in_a_namespace(
        FILL_THE_DISK, str(mnt), str(config), str(record), str(copy), timeout=120
    )

    assert "failed" not in result, result
    output = "".join(line for _, line in result["said"])
    assert result["code"] == 0, output
    assert "Traceback" not in output
    assert "cannot write (database or disk is full): no new attempts start" in output
    assert "can be written again" in output and "Run #1 complete" in output
    # Held from each "full" line to the next "written again" (a write may fit in the WAL's last
    # page before the filler goes: then dispatch resumes earlier, rightly). An attempt whose
    # start was the first write kept still runs, and its job records its start a little into
    # the hold, which is said at the loop's next turn.
    full = [at for at, line in result["said"] if "disk is full" in line]
    again = [at for at, line in result["said"] if "can be written again" in line]
    started = [r["at"] for r in records(tmp_path) if r["kind"] == "start"]
    for held in zip(full, again, strict=True):
        assert not [at for at in started if held[0] + 1.0 < at < held[1]], held
    assert starts(tmp_path) == Counter(d.isoformat() for d in span("2024-01-01", "2024-01-08"))
    # Every transition made while the disk was full is in the journal: one ended attempt per
    # item, every item done, the run finished, the hold journaled too.
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT status FROM runs").fetchall() == [("finished",)]
    assert set(conn.execute("SELECT state FROM items WHERE processor = 'x'")) == {("done",)}
    per_item = conn.execute(
        "SELECT COUNT(*), MIN(outcome) FROM attempts GROUP BY item_id"
    ).fetchall()
    assert set(per_item) == {(1, "ok")} and len(per_item) == 8
    kinds = [kind for (kind,) in conn.execute("SELECT kind FROM events ORDER BY id")]
    assert "journal_full" in kinds and "journal_writable" in kinds
    conn.close()


def test_a_write_that_finds_the_disk_full_waits_and_is_written_in_order(tmp_path):
    """SQLITE_FULL from SQLite itself (max_page_count), on every path a write takes."""
    journal = Journal(tmp_path)
    run_id = journal.start_run(day("2024-01-01"), day("2024-01-02"), {})
    [item] = journal.add_items(run_id, [("x", "p", [day("2024-01-01")])])
    pages = journal.conn.execute("PRAGMA page_count").fetchone()[0]
    journal.conn.execute(f"PRAGMA max_page_count = {pages}")
    big = "y" * 20_000  # more than the pages left
    journal.event("one", run_id=run_id, blob=big)  # autocommit
    assert journal.waiting == 1 and journal.full == "database or disk is full"
    journal.set_item_state(run_id, item, "running", None)  # a transaction behind it
    with pytest.raises(UserError, match="cannot write"):
        journal.start_attempt(item, 1, ["x"], tmp_path / "x.log")  # needs its row id
    assert not journal.flush()
    assert [k for _, _, k, _ in journal.events(run_id)] == ["run_started"]
    journal.conn.execute(f"PRAGMA max_page_count = {pages * 10}")
    assert journal.flush() and journal.waiting == 0 and journal.full is None
    assert [k for _, _, k, _ in journal.events(run_id)] == ["run_started", "one", "item_state"]
    assert journal.item(item).state == "running"
    journal.close()


# -- a journal deleted under a running engine ---------------------------------------------------


def test_a_deleted_journal_stops_dispatch_and_the_engine_says_so(project, tmp_path):
    config = project(sleep=1.0)
    first = engine(config)
    state = tmp_path / ".backfill"
    wait_until(lambda: sum(starts(tmp_path).values()) >= 4, 30, "the second round never started")
    for name in (JOURNAL_FILE, f"{JOURNAL_FILE}-wal", f"{JOURNAL_FILE}-shm"):
        (state / name).unlink(missing_ok=True)
    deleted_at = time.time()
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 2, out
    assert "Traceback" not in out
    assert f"{state / JOURNAL_FILE} was deleted while this engine ran" in out
    assert out.strip().splitlines()[-1].startswith(f"backfill: {state / JOURNAL_FILE} was deleted")
    recs = records(tmp_path)
    assert not [r for r in recs if r["kind"] == "start" and r["at"] > deleted_at + 0.5]
    assert sum(r["kind"] == "end" for r in recs) == sum(r["kind"] == "start" for r in recs)


def test_a_journal_replaced_under_its_engine_is_named(tmp_path):
    journal = Journal(tmp_path)
    assert journal.vanished() is None
    shutil.copy(journal.path, tmp_path / "copy")
    os.replace(tmp_path / "copy", journal.path)
    assert journal.vanished() == f"{journal.path} was replaced by another file"
    journal.close()


# -- --read-only never writes ---------------------------------------------------------------------


def fingerprint(state: Path) -> tuple[bytes, int, bytes]:
    """The journal's bytes and mtime, and what its WAL holds. A reader of a WAL database may
    make the -shm index (and an empty -wal) beside it: that is SQLite reading, not writing."""
    journal, wal = state / JOURNAL_FILE, state / f"{JOURNAL_FILE}-wal"
    return (
        journal.read_bytes(),
        journal.stat().st_mtime_ns,
        wal.read_bytes() if wal.exists() else b"",
    )


def test_a_read_only_journal_never_writes_its_file(project, tmp_path, capsys):
    config = project()
    state = tmp_path / ".backfill"
    code, out, err = invoke([*RUN, "--config", str(config)], capsys)
    assert code == 0, out + err
    before = fingerprint(state)
    journal = Journal(state, read_only=True)
    assert journal.runs()[0].status == "finished" and journal.attempts_for_cell("x", day(DATES[0]))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        journal.event("nope")
    journal.close()
    assert fingerprint(state) == before


@pytest.mark.asyncio
async def test_the_read_only_dashboard_never_writes_the_journal(project, tmp_path):
    from core.config import load_config
    from tests.tui.drive import SIZE, until
    from tui.app import BackfillApp

    config = project()
    state = tmp_path / ".backfill"
    out, _ = engine(config).communicate(timeout=60)  # in its own process: this one has a loop
    assert "Run #1 complete" in out, out
    before = fingerprint(state)
    app = BackfillApp(load_config(config), read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        # The refresh a writable dashboard saves to the journal as the last known coverage.
        await until(pilot, lambda: app.session.grid is not None)
        await until(
            pilot, lambda: "refreshing" not in str(app.screen.query_one("#status").render())
        )
        await pilot.pause(0.3)
    assert fingerprint(state) == before


# -- one engine per state_dir, whatever happens to engine.lock ----------------------------------


def test_deleting_the_lock_file_lets_no_second_engine_in(project, tmp_path):
    config = project(sleep=0.8)
    state = tmp_path / ".backfill"
    first = engine(config)
    try:
        wait_until(lambda: sum(starts(tmp_path).values()) >= 2, 30, "the first run never started")
        (state / "engine.lock").unlink()
        second = subprocess.run(
            [sys.executable, "-m", "core", *RUN, "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"another engine (pid {first.pid}) owns {state}" in one_line(second.stderr)
        (state / "engine.lock").write_text("999999")  # replaced, with a lie in it
        assert EngineLock(state).owner() == first.pid
        out, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
    assert first.returncode == 0 and "Run #1 complete" in out, out
    assert starts(tmp_path) == Counter(DATES)  # no cell ran twice
