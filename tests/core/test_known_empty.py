"""Known-empty cells: journaled by an operator, counted as complete by coverage, the planner,
gates and `backfill status`, written by the CLI when no engine is live, and undoable."""

from __future__ import annotations

import json
from datetime import date

from core.config import Config
from core.coverage import CellState, Coverage, measure
from core.engine.gates import GateShares
from core.planner import make_plan
from core.state import Journal
from core.warehouse import open_warehouse
from tests.helpers import day, invoke

S = CellState


def coverage_of(config: Config, known: set[tuple[str, date]] | None = None) -> Coverage:
    coverage = measure(config, open_warehouse(config), day("2024-01-01"), day("2024-01-10"))
    return coverage.with_known_empty(known or set())


def test_a_known_empty_cell_has_its_own_state_and_counts_as_complete(tiny: Config):
    player, team = tiny.processor("player"), tiny.processor("team")
    plain = coverage_of(tiny)
    marked = coverage_of(tiny, {("player", day("2024-01-09")), ("team", day("2024-01-09"))})
    assert plain.cell(player, day("2024-01-09")).state is S.MISSING
    assert marked.cell(player, day("2024-01-09")).state is S.KNOWN_EMPTY
    # A cell whose rows reach the rule stays complete: the mark only speaks for missing rows.
    assert coverage_of(tiny, {("player", day("2024-01-01"))}).cell(
        player, day("2024-01-01")
    ).state is (S.COMPLETE)
    # Not-expected dates stay not expected, marked or not.
    assert (
        coverage_of(tiny, {("player", day("2024-01-04"))}).cell(player, day("2024-01-04")).state
        is S.NOT_EXPECTED
    )
    analytics = tiny.phase("analytics")
    assert marked.cell(team, day("2024-01-09")).state is S.COMPLETE  # team has rows there
    before, after = plain.phase_coverage(analytics), marked.phase_coverage(analytics)
    assert before is not None and after is not None
    assert after == before + 1 / len(plain.calendar.expected_dates)


def test_the_planner_never_plans_a_known_empty_cell_unless_reprocess_all(tiny: Config):
    marked = coverage_of(tiny, {("player", day("2024-01-09"))})
    plan = {p.processor.name: p for p in make_plan(marked, processors=["player"]).processors}
    assert day("2024-01-09") not in plan["player"].targets
    assert day("2024-01-09") in plan["player"].complete
    unmarked = {p.processor.name: p for p in make_plan(coverage_of(tiny)).processors}
    assert day("2024-01-09") in unmarked["player"].targets
    # `--reprocess all` asks for every date: a known-empty one is run again (and stays marked).
    again = make_plan(marked, processors=["player"], reprocess="all")
    assert any(day("2024-01-09") in item.dates for item in again.items)


def test_a_known_empty_upstream_does_not_block_downstream_cells_nor_gates(tiny: Config):
    # box has no rows on 01-10 (a source gap): team cannot run that date ...
    plain = {p.processor.name: p for p in make_plan(coverage_of(tiny)).processors}
    assert "source box" in plain["team"].blocked[day("2024-01-10")]
    # ... unless box is known to be empty that day.
    marked = coverage_of(tiny, {("box", day("2024-01-10"))})
    plan = {p.processor.name: p for p in make_plan(marked).processors}
    assert day("2024-01-10") not in plan["team"].blocked
    assert day("2024-01-10") in plan["team"].targets
    # The analytics gate counts a date whose processors are complete or known empty.
    analytics = tiny.phase("analytics")
    both = {("team", day("2024-01-09")), ("player", day("2024-01-09"))}
    before = GateShares(coverage_of(tiny)).share(analytics)
    after = GateShares(coverage_of(tiny, both)).share(analytics)
    assert before is not None and after is not None and after > before


def test_known_empty_without_an_engine_writes_the_journal_and_status_counts_it(tiny, capsys):
    cfg = str(tiny.path)
    code, out, err = invoke(
        ["known-empty", "player", "2024-01-09", "2024-01-10", "--reason", "no games logged",
         "--config", cfg],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "2 cells marked known empty" in out
    journal = Journal(tiny.state_path)
    rows = journal.known_empty(day("2024-01-01"), day("2024-01-31"))
    assert [(r.processor, r.day, r.reason) for r in rows] == [
        ("player", day("2024-01-09"), "no games logged"),
        ("player", day("2024-01-10"), "no games logged"),
    ]
    assert "(cli)" in rows[0].who and rows[0].at > 0
    journal.close()

    code, out, _ = invoke(["status", "--json", "--config", cfg], capsys)
    assert code == 0
    procs = {p["name"]: p for ph in json.loads(out)["phases"] for p in ph["processors"]}
    assert procs["player"]["known_empty"] == 2
    # 01-01 has rows, 01-08 too few, 01-09 and 01-10 marked: 8 expected dates in all.
    assert [procs["player"][k] for k in ("complete", "partial", "missing", "expected")] == [
        3,
        1,
        4,
        8,
    ]
    code, text, _ = invoke(["status", "--config", cfg], capsys)
    assert "Known empty (counted complete): player 2" in text

    code, out, _ = invoke(["plan", "2024-01-01", "2024-01-10", "--json", "--config", cfg], capsys)
    player_dates = {d for i in json.loads(out)["items"] if i["processor"] == "player"
                    for d in i["dates"]}  # fmt: skip
    assert player_dates and not player_dates & {"2024-01-09", "2024-01-10"}

    code, out, err = invoke(
        ["known-empty", "player", "2024-01-09", "--undo", "--json", "--config", cfg], capsys
    )
    assert code == 0, err
    assert json.loads(out) == {
        "ok": True,
        "message": "player: 1 known-empty marks undone.",
        "count": 1,
        "engine": None,
    }
    code, out, _ = invoke(["status", "--json", "--config", cfg], capsys)
    procs = {p["name"]: p for ph in json.loads(out)["phases"] for p in ph["processors"]}
    assert (procs["player"]["known_empty"], procs["player"]["complete"]) == (1, 2)
    journal = Journal(tiny.state_path)
    kinds = [k for _, _, k, _ in journal_events(journal)]
    journal.close()
    assert kinds == ["known_empty", "known_empty_undone"]


def journal_events(journal: Journal) -> list[tuple[float, int | None, str, dict[str, object]]]:
    rows = journal.conn.execute(
        "SELECT at, item_id, kind, detail FROM events WHERE kind LIKE 'known_empty%' ORDER BY id"
    ).fetchall()
    return [(at, item, kind, json.loads(detail)) for at, item, kind, detail in rows]


def test_known_empty_bad_input_is_one_line_and_exit_2(tiny, capsys):
    cfg = str(tiny.path)
    cases = [
        (["known-empty", "nope", "2024-01-09", "--reason", "x"], "unknown processor 'nope'"),
        (["known-empty", "player", "2024-13-09", "--reason", "x"], "2024-13-09"),
        (["known-empty", "player", "2024-01-09"], "--reason"),
        (["known-empty", "player", "2024-01-09", "--reason", "  "], "--reason"),
        (["known-empty", "player", "2024-01-09", "2024-01-02", "--reason", "x"], "before it"),
        (["known-empty", "player", "2024-01-09", "--undo", "--reason", "x"], "--undo"),
    ]
    for args, needle in cases:
        code, out, err = invoke([*args, "--config", cfg], capsys)
        assert code == 2, (args, out, err)
        assert needle in err, (args, err)
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) <= 3, err  # click's usage line, its hint, and the one message
    assert not (tiny.state_path / "journal.sqlite").exists()  # nothing was written


def test_a_coverage_preflight_check_counts_known_empty_cells_as_complete(tiny, capsys):
    text = tiny.path.read_text()
    check = (
        "preflight:\n  - {name: player covered, kind: coverage, processor: player,"
        " min_coverage: 0.3}\n"
    )
    tiny.path.write_text(check + text)
    cfg = str(tiny.path)

    def status() -> str:
        _, out, _ = invoke(["preflight", "--json", "--config", cfg], capsys)
        (result,) = [c for c in json.loads(out)["checks"] if c["name"] == "player covered"]
        return str(result["status"])

    assert status() == "fail"  # 1 of 8 dates complete
    code, _, err = invoke(
        ["known-empty", "player", "2024-01-09", "2024-01-10", "--reason", "none", "--config", cfg],
        capsys,
    )
    assert code == 0, err
    assert status() == "pass"  # 3 of 8


def test_a_known_empty_range_marks_only_the_dates_the_calendar_expects(tiny, capsys):
    cfg = str(tiny.path)
    expected = coverage_of(tiny).calendar.expected_dates
    assert day("2024-01-04") not in expected and {day("2024-01-03"), day("2024-01-05")} <= set(
        expected
    )
    code, out, err = invoke(
        ["known-empty", "player", "2024-01-03", "2024-01-05", "--reason", "x", "--config", cfg],
        capsys,
    )
    assert code == 0, err
    assert "2 cells marked known empty" in out
    journal = Journal(tiny.state_path)
    marked = [r.day for r in journal.known_empty(day("2024-01-01"), day("2024-01-31"))]
    journal.close()
    assert marked == [day("2024-01-03"), day("2024-01-05")]
    # An off-day alone owes no rows: nothing to mark, said in one line.
    code, out, err = invoke(
        ["known-empty", "player", "2024-01-04", "--reason", "x", "--config", cfg], capsys
    )
    assert code == 2
    assert "no date from 2024-01-04 is expected by the calendar" in err
    assert "Traceback" not in err
