"""`backfill report`: what happened in a run, from the journal of a real run."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from core.config import load_config
from core.engine.api import RunRequest, SetConcurrency, Who
from core.engine.engine import Engine
from core.failures import signature
from core.state import Journal
from core.warehouse import open_warehouse
from tests.engine.test_engine import DATES, pipeline
from tests.helpers import day, invoke, write_config, write_tables


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_signature_takes_out_what_varies_from_date_to_date():
    a = signature(["starting", "boom on 2024-01-02 at 12:00:01, row 17"], None)
    b = signature(["boom on 2023-11-30 at 09:13:44, row 912"], None)
    assert a == b == "boom on <date> at <time>, row N"
    quota = signature(["Traceback ...", "403 Quota exceeded for 'nba_raw.x'", "retrying"], None)
    assert quota == "N Quota exceeded for '…'"  # the error line, not the last line
    assert signature([], "killed: stall") == "killed: stall"


@pytest.mark.anyio
async def test_the_report_groups_failures_and_names_the_operators(
    tmp_path: Path, monkeypatch, capsys
):
    write_tables(tmp_path / "wh", {"ds.base": {day(d): 1 for d in DATES}}, date_column="d")
    monkeypatch.setenv("WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("RECORD", str(tmp_path / "record.jsonl"))
    monkeypatch.setenv("FAULTS", "x:2024-01-02:fail,x:2024-01-04:fail")
    # The retries counted are the failing dates': no job on a loaded machine is slow enough to
    # stall out and add one of its own.
    path = write_config(tmp_path, pipeline(stall="60s"))
    config = load_config(path)
    engine = Engine(
        config,
        open_warehouse(config),
        RunRequest(day(DATES[0]), day(DATES[-1]), processors=("x",)),
        journal=Journal(config.state_path),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        while engine.store is None:
            await anyio.sleep(0.02)
        await engine.submit(SetConcurrency("wide", 2), Who("ana", "box", 42, "cli"))
    assert engine.finished

    code, out, _ = invoke(["report", "--format", "json", "--config", str(path)], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["run"]["id"] == 1 and report["run"]["status"] == "incomplete"
    assert report["run"]["start"] == DATES[0] and report["run"]["ended_at"]
    wide = next(p for p in report["phases"] if p["name"] == "wide")
    assert (wide["done"], wide["failed"]) == (4, 2)
    [failure] = report["failures"]  # both dates failed the same way: one group
    assert failure["signature"] == "boom on <date>" and failure["count"] == 2
    assert failure["cells"] == [["x", "2024-01-02"], ["x", "2024-01-04"]]
    assert report["retries"] == 4  # two retries each (retries: 2)
    assert report["attempts"] == 4 + 2 * 3
    # cost: every attempt's run time, retries' too, summed per phase from the journal
    journal = Journal(config.state_path, read_only=True)
    ran = [a for i in journal.items(1) for a in journal.attempts_of_item(i.id)]
    assert wide["attempts"] == len(ran) == report["attempts"]
    expected = sum(a.ended_at - a.started_at for a in ran if a.ended_at is not None)
    assert expected > 0 and wide["attempt_seconds"] == pytest.approx(expected, abs=0.1)
    [action] = report["actions"]
    assert action["who"] == "ana@box pid 42 (cli)" and action["action"].startswith("parallel")

    code, md, err = invoke(["report", "--config", str(path)], capsys)
    assert code == 0
    assert "# Run #1" in md and "**2 cells**: `boom on <date>`" in md
    assert "| wide | 6 | 4 | 2 |" in md
    assert "## Cost" in md and "- wide: 10 attempts ran " in md
    # The hand-off files are written too, into state_dir/reports/, and named on stderr.
    reports = config.state_path / "reports"
    assert (reports / "run-1.md").read_text() == md
    assert json.loads((reports / "run-1.json").read_text())["run"]["id"] == 1
    assert f"written: {reports / 'run-1.md'}, {reports / 'run-1.json'}" in err
    code, out, err = invoke(
        ["report", "--run", "1", "--format", "json", "--config", str(path)], capsys
    )
    assert code == 0 and json.loads(out)["run"]["id"] == 1
    code, _, err = invoke(["report", "--run", "7", "--config", str(path)], capsys)
    assert code == 2 and "no run #7" in err and "the latest: #1" in err


def test_no_run_or_an_unknown_run_is_one_line_exit_2(tmp_path: Path, capsys):
    write_tables(tmp_path / "wh", {"ds.base": {}}, date_column="d")
    path = write_config(tmp_path, pipeline())
    code, _, err = invoke(["report", "--config", str(path)], capsys)
    assert code == 2 and "no journal yet" in err and len(err.strip().splitlines()) == 1
    Journal(tmp_path / ".backfill").close()
    code, _, err = invoke(["report", "--config", str(path)], capsys)
    assert code == 2 and "no run yet" in err
    code, _, err = invoke(["report", "--run", "7", "--config", str(path)], capsys)
    assert code == 2 and "no run yet" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / ".backfill" / "reports").exists()  # nothing written for no run
