"""Two-tier throttling from job logs, and writers per table.

The error texts are BigQuery's own, as its client libraries print them (from BigQuery's
troubleshooting pages, public issue threads quoting them, and the seed pipeline's logs). The
engine tests run real jobs (tests/jobs/record.py) that print one of them, bury it under a
traceback, and exit 1.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from core.config import Config, load_config
from core.engine.api import EngineSnapshot, ItemState, PauseView, RunRequest
from core.engine.cooldowns import Cooldowns
from core.engine.engine import Engine
from core.engine.retry import classify, decide
from core.engine.scheduler import READY, Slots, Start, dispatch
from core.progress import Forecast
from core.report import build_report
from core.service.protocol import snapshot_from_json, snapshot_to_json
from core.service.run_status import RunStatus
from core.state import Journal
from core.state.items import Item
from core.warehouse import open_warehouse
from tests.engine.test_engine import intervals, max_overlap, records
from tests.helpers import day, invoke, span, write_config, write_tables

ROOT = Path(__file__).parents[2]
JOB = ROOT / "tests" / "jobs" / "record.py"

RATE = [
    # reason rateLimitExceeded, as the Python client raises it
    "google.api_core.exceptions.Forbidden: 403 Exceeded rate limits: too many table update "
    "operations for this table. For more information, see "
    "https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
    # the seed pipeline's circuit-breaker writes
    "429 Exceeded rate limits",
    '{"code": 403, "errors": [{"reason": "rateLimitExceeded", "domain": "global"}]}',
    "google.api_core.exceptions.BadRequest: 400 Could not serialize access to table "
    "nba-props-platform:nba_analytics.player_game_summary due to concurrent update",
    "googleapi: Error 400: Resources exceeded during query execution: Too many DML statements "
    "outstanding against table mlab-sandbox:tmp_ndt.ndt5, limit is 20, resourcesExceeded",
    "google.api_core.exceptions.InternalServerError: 500 Error encountered during execution. "
    "Retrying may solve the problem.; reason: backendError",
    "google.api_core.exceptions.InternalServerError: 500 An internal error occurred and the "
    "request could not be completed.; reason: internalError",
    "google.api_core.exceptions.ServiceUnavailable: 503 GET https://bigquery.googleapis.com/"
    "bigquery/v2/projects/nba-props-platform/queries/abc: Visibility check was unavailable.",
    "google.api_core.exceptions.TooManyRequests: 429 POST https://bigquery.googleapis.com/"
    "bigquery/v2/projects/nba-props-platform/jobs",
    "requests.exceptions.HTTPError: 502 Server Error: Bad Gateway for url: https://bigquery."
    "googleapis.com/bigquery/v2/projects/p/jobs",
    "HTTP/1.1 503 Service Unavailable",
    # a proxy's error page (nginx), as a client that prints the response body logs it: the
    # only text here that the status-phrase pattern alone matches
    "<html><head><title>504 Gateway Time-out</title></head>",
    "requests.exceptions.ConnectionError: ('Connection aborted.', ConnectionResetError(104, "
    "'Connection reset by peer'))",
]
DAILY = [
    # the seed pipeline's 1,500 partition modifications per table per day
    "google.api_core.exceptions.Forbidden: 403 Quota exceeded: Your table exceeded quota for "
    "Number of partition modifications to a column partitioned table. For more information, "
    "see https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
    "403 Quota exceeded: partition modifications",
    # table operations per day (load, query append, DML)
    "google.api_core.exceptions.Forbidden: 403 Your table exceeded quota for imports or query "
    "appends per table",
    "google.api_core.exceptions.Forbidden: 403 Custom quota exceeded: Your usage exceeded the "
    "custom quota for QueryUsagePerDay, which is set by your administrator.",
    '{"code": 403, "errors": [{"message": "Quota exceeded: ...", "reason": "quotaExceeded"}]}',
]
FATAL = [
    "google.api_core.exceptions.Forbidden: 403 Access Denied: Table nba-props-platform:"
    "nba_analytics.player_game_summary: User does not have permission to query table "
    "nba-props-platform:nba_analytics.player_game_summary.",
    '{"code": 403, "errors": [{"reason": "accessDenied"}]}',
    "google.api_core.exceptions.NotFound: 404 Not found: Dataset nba-props-platform:nba_raw was "
    "not found in location US",
    "google.api_core.exceptions.BadRequest: 400 Cannot query over table "
    "'nba_analytics.player_game_summary' without a filter over column(s) 'game_date' that can "
    "be used for partition elimination",
    # the seed's Phase 4 monitor before the table has its date column
    "400 Unrecognized name: analysis_date at [1:8]",
    # a 500 status, yet no retry will pass the cap
    "500 Query exceeded limit for bytes billed: 163595928. 164626432 or higher required.; "
    "reason: bytesBilledLimitExceeded",
]
ORDINARY = [
    "processed 429 players for 2024-01-02",
    "Processing game date 503/675",
    "ValueError: boom on 2024-01-02",
    "KeyError: 'player_lookup'",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config_text(
    extra: str = "", phase_extra: str = "", warehouse: str = "sqlite", retries: int = 2
) -> str:
    where = (
        "{kind: sqlite, path: wh}"
        if warehouse == "sqlite"
        else "{kind: bigquery, project: p-12345}"
    )
    return f"""
name: throttle-test
warehouse: {where}
calendar: {{start: 2024-01-01, end: 2024-01-04}}
phases:
  - name: src
    processors:
      - {{name: base, table: ds.base, date_column: d}}
  - name: work
    max_parallel: 3
    cooldown: 0.5s{phase_extra}
    processors:
      - name: x
        table: ds.x
        date_column: d
        depends_on: [base]
        command: ["{{python}}", "{JOB}", x, "{{dates}}", "--sleep", "0.3"]
        retries: {retries}
        retry_backoff: 0.2s
        timeout: 60s{extra}
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch):
    def make(
        message: str = "",
        faults: str = "",
        extra: str = "",
        phase_extra: str = "",
        retries: int = 2,
    ) -> Config:
        write_tables(
            tmp_path / "wh",
            {"ds.base": {d: 1 for d in span("2024-01-01", "2024-01-04")}},
            date_column="d",
        )
        monkeypatch.setenv("WAREHOUSE", str(tmp_path / "wh"))
        monkeypatch.setenv("RECORD", str(tmp_path / "record.jsonl"))
        monkeypatch.setenv("FAULTS", faults)
        monkeypatch.setenv("MESSAGE", message)
        text = config_text(extra, phase_extra, retries=retries)
        return load_config(write_config(tmp_path, text))

    return make


def engine_for(config: Config, on_event=None) -> Engine:
    return Engine(
        config,
        open_warehouse(config),
        RunRequest(day("2024-01-01"), day("2024-01-04")),
        journal=Journal(config.state_path),
        on_event=on_event or (lambda event: None),
    )


def item_of(engine: Engine, date: str) -> Item:
    assert engine.store is not None
    return next(i for i in engine.store.items.values() if day(date) in i.dates)


# -- the patterns, fed the real texts -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tier"),
    [(t, "rate") for t in RATE]
    + [(t, "daily") for t in DAILY]
    + [(t, "fatal") for t in FATAL]
    + [(t, None) for t in ORDINARY],
)
def test_each_default_pattern_sorts_the_real_message(tmp_path, text, tier):
    proc = load_config(write_config(tmp_path, config_text())).processor("x")
    found = classify(proc, ["x starting", text, "Traceback (most recent call last):"])
    assert (found.tier if found else None) == tier
    if found:
        assert found.line == text  # the reason quotes the line that said so


def test_patterns_ignore_case_and_the_latest_matching_line_decides(tmp_path):
    proc = load_config(write_config(tmp_path, config_text())).processor("x")
    # A client that retried rate limits and then ran into the day's quota: paused, not cooled.
    lines = ["WARNING 429 Exceeded rate limits, retrying", "403 QUOTA EXCEEDED: partition mods"]
    assert classify(proc, lines).tier == "daily"
    assert classify(proc, list(reversed(lines))).tier == "rate"
    # Our own notes in the log are not the job's words.
    assert classify(proc, ["[backfill] killed: 403 Access Denied"]) is None


def test_a_config_list_replaces_the_tier_defaults(tmp_path):
    extra = "\n        daily_quota_patterns: ['nightly window closed']\n        fatal_patterns: []"
    proc = load_config(write_config(tmp_path, config_text(extra))).processor("x")
    assert classify(proc, ["ERROR nightly WINDOW closed"]).tier == "daily"
    assert classify(proc, [DAILY[0]]) is None  # the default daily patterns are gone
    assert classify(proc, [FATAL[0]]) is None


def test_a_daily_quota_spends_no_retry_and_a_fatal_error_spends_them_all(tmp_path):
    config = load_config(write_config(tmp_path, config_text(phase_extra="\n    quota_pause: 20m")))
    proc, phase = config.processor("x"), config.phase("work")
    daily = decide(proc, phase, 2, tier="daily", jitter=1.0)
    assert (daily.attempts, daily.retry_in, daily.pause, daily.cooldown) == (2, 1200, 1200, None)
    fatal = decide(proc, phase, 0, tier="fatal", jitter=1.0)
    assert (fatal.attempts, fatal.retry_in, fatal.cooldown) == (1, None, None)
    rate = decide(proc, phase, 0, tier="rate", jitter=1.0)
    assert rate.attempts == 1 and rate.retry_in == pytest.approx(0.2) and rate.cooldown == 0.5


def test_quota_pause_defaults_to_fifteen_minutes(tmp_path):
    assert load_config(write_config(tmp_path, config_text())).phase("work").quota_pause == 900


# -- escalation and stepping back up ------------------------------------------------------


def test_repeated_throttling_escalates_and_successes_step_back_up(tmp_path):
    config = load_config(write_config(tmp_path, config_text()))
    phase = config.phase("work")
    events: list[tuple[str, dict]] = []
    cooldowns = Cooldowns(config, {"work": 3}, lambda kind, **d: events.append((kind, d)))
    first = cooldowns.throttled(phase, started_at=time.time(), reason="429", item_id=1)
    assert first == 0.5 and cooldowns.limit("work", 3) == 2
    # An attempt already in flight when the phase slowed down: nothing more.
    assert cooldowns.throttled(phase, started_at=time.time() - 60, reason="429", item_id=2) <= 0.5
    assert cooldowns.limit("work", 3) == 2
    # One started after the cooldown began and still throttled: twice as long, one fewer again.
    second = cooldowns.throttled(phase, started_at=time.time() + 1, reason="429", item_id=3)
    assert second == 1.0 and cooldowns.limit("work", 3) == 1
    assert [d["strikes"] for kind, d in events if kind == "cooldown"] == [1, 2]
    cooldowns.succeeded("work")  # during the cooldown: no step yet
    assert cooldowns.limit("work", 3) == 1
    time.sleep(1.05)
    cooldowns.succeeded("work")
    assert cooldowns.limit("work", 3) == 2
    cooldowns.succeeded("work")
    assert cooldowns.limit("work", 3) == 3 and cooldowns.cooling() == {}
    # Recovered: the next throttling starts from the phase's own cooldown again.
    assert cooldowns.throttled(phase, started_at=time.time() + 1, reason="429", item_id=4) == 0.5


# -- real runs ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_rate_limit_buried_in_the_log_cools_the_phase_down(setup):
    config = setup(RATE[3], faults="x:2024-01-02:error-once")
    events = []
    engine = engine_for(config, events.append)
    with anyio.fail_after(60):
        result = await engine.run()
    assert result.complete
    item = item_of(engine, "2024-01-02")
    attempts = engine.journal.attempts_of_item(item.id)
    assert [a.outcome for a in attempts] == ["failed", "ok"]
    assert RATE[3] not in attempts[0].tail  # past the last lines: found in the whole log
    cooldowns = [d for _, _, kind, d in engine.journal.events(engine.run_id) if kind == "cooldown"]
    assert [c["phase"] for c in cooldowns] == ["work"]
    assert any("Could not serialize access" in e.message for e in events if e.kind == "cooldown")


@pytest.mark.anyio
async def test_a_daily_quota_pauses_the_writers_without_spending_a_retry(setup):
    config = setup(
        DAILY[0],
        faults="x:2024-01-02:error-once",
        retries=0,
        phase_extra="\n    quota_pause: 3s",
    )
    seen: list[EngineSnapshot] = []
    engine = engine_for(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_snapshots, engine, seen)
        with anyio.fail_after(60):
            result = await engine.run()
        tg.cancel_scope.cancel()
    # retries: 0, yet it ended complete: the quota cost no retry.
    assert result.complete
    item = item_of(engine, "2024-01-02")
    assert [a.outcome for a in engine.journal.attempts_of_item(item.id)] == ["failed", "ok"]
    assert item.attempts == 0
    journaled = [(kind, d) for _, _, kind, d in engine.journal.events(engine.run_id)]
    kinds = [kind for kind, _ in journaled]
    assert "quota_paused" in kinds and "quota_resumed" in kinds
    assert kinds.index("quota_paused") < kinds.index("quota_resumed")
    paused = dict(journaled)["quota_paused"]
    assert paused["processors"] == ["x"] and "partition modifications" in paused["reason"]
    assert "cooldown" not in kinds  # the daily tier is not a rate cooldown
    timeline = [text for _, text in build_report(engine.journal, engine.run_id).timeline]
    assert any(t.startswith("daily quota: x paused for 3s (") for t in timeline)
    assert "daily-quota pause over: x" in timeline
    pauses = [p for snap in seen for p in snap.pauses]
    assert pauses and {(p.tier, p.phase, p.processors) for p in pauses} == {
        ("daily", "work", ("x",))
    }
    assert pauses[0].label == "paused: daily quota"
    # Nothing of x was started while it was paused (a job dispatched just before the pause
    # records its start once its interpreter is up: the first second is left out).
    at = {kind: when for when, _, kind, _ in engine.journal.events(engine.run_id)}
    assert at["quota_resumed"] - at["quota_paused"] >= 2.9
    starts = [r["at"] for r in records(config) if r["kind"] == "start"]
    assert not [t for t in starts if at["quota_paused"] + 1 < t < at["quota_resumed"]]


async def watch_snapshots(engine: Engine, seen: list[EngineSnapshot]) -> None:
    while True:
        if engine.store is not None:
            seen.append(engine.snapshot(-1))
        await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_a_never_transient_error_fails_at_once_with_its_reason(setup):
    config = setup(FATAL[3], faults="x:2024-01-02:error")
    engine = engine_for(config)
    with anyio.fail_after(60):
        result = await engine.run()
    assert not result.complete and ("x", day("2024-01-02")) in result.incomplete
    item = item_of(engine, "2024-01-02")
    assert item.state is ItemState.FAILED
    assert len(engine.journal.attempts_of_item(item.id)) == 1  # retries: 2, none spent
    assert item.reason.startswith("never transient: ")
    assert "without a filter over column(s) 'game_date'" in item.reason


# -- writers per table --------------------------------------------------------------------


@pytest.mark.anyio
async def test_max_writers_caps_attempts_on_one_table(setup):
    config = setup(extra="\n        max_writers: 1")
    engine = engine_for(config)
    with anyio.fail_after(60):
        result = await engine.run()
    assert result.complete
    assert max_overlap(intervals(records(config), {"x"})) == 1  # max_parallel 3, one writer


def test_dispatch_holds_a_processor_at_its_writers_cap_and_lets_others_start(tmp_path):
    text = config_text(extra="\n        max_writers: 2").replace(
        "        timeout: 60s\n        max_writers: 2",
        "        timeout: 60s\n        max_writers: 2\n      - name: y\n        table: ds.y\n"
        "        date_column: d\n        command: [run]",
    )
    config = load_config(write_config(tmp_path, text))
    x, y, phase = config.processor("x"), config.processor("y"), config.phase("work")
    items = [Item(i, x, phase, (day(f"2024-01-0{i}"),)) for i in (1, 2, 3)]
    items.append(Item(4, y, phase, (day("2024-01-01"),)))

    def starts(slots: Slots) -> list[int]:
        decisions = dispatch(
            items,
            time.monotonic(),
            slots,
            waiting={"work"},
            gates={},
            readiness=lambda item: READY,
            todo=lambda item: item.dates,
        )
        return [d.item.id for d in decisions if isinstance(d, Start)]

    def slots(writers: Counter[str] | None = None, paused: frozenset[str] = frozenset()) -> Slots:
        return Slots(
            busy=Counter(),
            limits={"work": 4},
            total_limit=10,
            cooling={},
            paused=paused,
            writers=writers or Counter(),
            max_writers={"x": 2, "y": None},
        )

    assert starts(slots()) == [1, 2, 4]  # the third x waits: two already write ds.x
    assert starts(slots(writers=Counter({"ds.x": 1}))) == [1, 4]
    assert starts(slots(paused=frozenset({"x"}))) == [4]
    assert starts(slots(paused=frozenset({"y"}), writers=Counter({"ds.x": 2}))) == []


def test_max_writers_defaults_to_two_on_bigquery_and_none_on_sqlite(tmp_path):
    sqlite = load_config(write_config(tmp_path, config_text()))
    assert sqlite.max_writers(sqlite.processor("x")) is None
    bq = load_config(write_config(tmp_path, config_text(warehouse="bigquery"), "bq.yaml"))
    assert bq.max_writers(bq.processor("x")) == 2
    text = config_text("\n        max_writers: null", warehouse="bigquery")
    uncapped = load_config(write_config(tmp_path, text, "bq2.yaml"))
    assert uncapped.max_writers(uncapped.processor("x")) is None


# -- what clients see ---------------------------------------------------------------------


def test_pauses_travel_the_protocol_and_show_in_status():
    pause = PauseView("analytics", ("upcoming_player_game_context",), "daily", 1.7e9, DAILY[1])
    rate = PauseView("analytics", ("a", "b"), "rate", 1.7e9 + 60, RATE[1])
    snap = EngineSnapshot(
        version=3,
        state="running",
        run_id=1,
        request=RunRequest(day("2024-01-01"), day("2024-01-04")),
        counts={ItemState.PENDING: 2},
        concurrency={"analytics": (0, 5)},
        forecast=Forecast("measuring"),
        pauses=(pause, rate),
    )
    back = snapshot_from_json(json.loads(json.dumps(snapshot_to_json(snap))))
    assert back.pauses == (pause, rate)
    status = RunStatus(
        id=1,
        state="running",
        pid=os.getpid(),
        host="h",
        since=None,
        viewers=0,
        items={"total": 2, "done": 0, "running": 0, "pending": 2, "failed": 0, "blocked": 0},
        rate_per_hour=None,
        eta_seconds=None,
        eta="--",
        last_event=None,
        pauses=back.pauses,
    )
    text = status.render()
    assert "paused: daily quota: analytics (upcoming_player_game_context) until" in text
    assert "cooling down: rate limit: analytics (a, b)" in text
    data = json.loads(json.dumps(status.to_json()))
    assert data["pauses"][0]["state"] == "paused: daily quota"
    assert data["pauses"][0]["processors"] == ["upcoming_player_game_context"]
    assert data["pauses"][0]["until"] == 1.7e9


def test_plan_names_the_writers_cap(tmp_path, capsys):
    write_tables(tmp_path / "wh", {"ds.base": {day("2024-01-01"): 1}}, date_column="d")
    path = write_config(tmp_path, config_text("\n        max_writers: 1"))
    code, out, err = invoke(["plan", "2024-01-01", "--config", str(path)], capsys)
    assert code == 0, err
    assert "work · at most 1 writing a table at once" in out
    uncapped = write_config(tmp_path, config_text(), "plain.yaml")
    code, out, err = invoke(["plan", "2024-01-01", "--config", str(uncapped)], capsys)
    assert code == 0, err
    assert "writing a table" not in out  # SQLite: no cap by default
