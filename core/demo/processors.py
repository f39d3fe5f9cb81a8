"""The demo's ten runnable processors: what each writes, what it needs, how it derives its rows.

`requires` mirrors `depends_on` in the bundled backfill.yaml: a processor refuses a date whose
upstream rows are absent instead of writing degraded rows (the seed's cascade contamination).
The one exception is on purpose: player_game_summary only LEFT JOINs team offense, as the real
processor does, so running it too early silently leaves usage_rate NULL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.demo import analytics, precompute
from core.demo import tables as t
from core.demo.analytics import Row, RowsByDate

Bulk = Callable[[sqlite3.Connection, Sequence[str]], RowsByDate]
PerDate = Callable[[sqlite3.Connection, str], list[Row]]


@dataclass(frozen=True)
class Processor:
    name: str
    table: t.Table
    requires: tuple[t.Table, ...]
    derive: PerDate  # the rows to write for one date
    bulk: Bulk | None = None  # Phase 3 derivations also run over many dates at once (the seed)
    also_reads: tuple[t.Table, ...] = ()  # read when present, never required
    #: reads the season so far (rolling windows), not only the dates it writes
    reads_season: bool = True


def _one_date(bulk: Bulk) -> PerDate:
    def run(conn: sqlite3.Connection, day: str) -> list[Row]:
        return bulk(conn, [day]).get(day, [])

    return run


def _analytics(
    table: t.Table,
    requires: tuple[t.Table, ...],
    bulk: Bulk,
    also_reads: tuple[t.Table, ...] = (),
    *,
    reads_season: bool = False,
) -> Processor:
    return Processor(table.name, table, requires, _one_date(bulk), bulk, also_reads, reads_season)


def _precompute(table: t.Table, requires: tuple[t.Table, ...], derive: PerDate) -> Processor:
    return Processor(table.name, table, requires, derive)


PHASE3: tuple[Processor, ...] = (
    _analytics(t.TEAM_OFFENSE, (t.TEAM_BOXSCORE,), analytics.team_offense),
    _analytics(t.TEAM_DEFENSE, (t.TEAM_BOXSCORE,), analytics.team_defense),
    _analytics(t.PLAYER_GAME, (t.GAMEBOOK,), analytics.player_game, (t.TEAM_OFFENSE,)),
    _analytics(t.UPCOMING_PLAYER, (t.GAMEBOOK, t.PROPS), analytics.upcoming_player),
    _analytics(
        t.UPCOMING_TEAM, (t.SCHEDULE, t.TEAM_BOXSCORE), analytics.upcoming_team, reads_season=True
    ),
)
PHASE4: tuple[Processor, ...] = (
    _precompute(t.TEAM_DEFENSE_ZONE, (t.TEAM_DEFENSE,), precompute.team_defense_zone),
    _precompute(t.PLAYER_SHOT_ZONE, (t.PLAYER_GAME,), precompute.player_shot_zone),
    _precompute(
        t.COMPOSITE_FACTORS,
        (
            t.TEAM_DEFENSE_ZONE,
            t.PLAYER_SHOT_ZONE,
            t.PLAYER_GAME,
            t.UPCOMING_PLAYER,
            t.UPCOMING_TEAM,
        ),
        precompute.composite_factors,
    ),
    _precompute(
        t.DAILY_CACHE,
        (t.PLAYER_SHOT_ZONE, t.COMPOSITE_FACTORS, t.PLAYER_GAME, t.TEAM_OFFENSE),
        precompute.daily_cache,
    ),
    _precompute(
        t.FEATURE_STORE,
        (t.TEAM_DEFENSE_ZONE, t.PLAYER_SHOT_ZONE, t.COMPOSITE_FACTORS, t.DAILY_CACHE),
        precompute.feature_store,
    ),
)
PROCESSORS: dict[str, Processor] = {p.name: p for p in PHASE3 + PHASE4}


def upstream_counts(conn: sqlite3.Connection, processor: Processor, day: str) -> dict[str, int]:
    """Rows per required upstream table for the date (0 when the table does not exist)."""
    counts: dict[str, int] = {}
    for table in processor.requires:
        try:
            (n,) = conn.execute(
                f"SELECT COUNT(*) FROM {table.qualified} WHERE {table.date_column} = ?", (day,)
            ).fetchone()
        except sqlite3.OperationalError:
            n = 0
        counts[table.qualified] = n
    return counts


def write_date(conn: sqlite3.Connection, table: t.Table, day: str, rows: Sequence[Row]) -> None:
    """Replace the date's rows in one transaction, so a re-run never duplicates a date."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"DELETE FROM {table.qualified} WHERE {table.date_column} = ?", (day,))
        conn.executemany(table.insert_sql(), rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
