"""Phase 4 (precompute) derivations: rolling windows over Phase 3 history, one date at a time.

Every window stays inside the season of the date (cross-season samples are unreliable: about a
quarter of players change teams). Each function returns the rows for one date, built only from
tables the bundled backfill.yaml lists as its dependencies, and keyed by that table's date column.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import Any

from core.demo.analytics import Row
from core.demo.schedule import TEAMS, season_for

TEAM_WINDOW_GAMES = 15
PLAYER_WINDOW_GAMES = 10
CACHE_MIN_GAMES = 5  # fewer games is INSUFFICIENT_DATA in the seed system: no cache row
LEAGUE_DEF_RATING = 112.0
LEAGUE_THREE_PCT = 0.36


def _season(day: str) -> tuple[str, str]:
    season = season_for(date.fromisoformat(day))
    if season is None:
        raise ValueError(f"{day} is outside every simulated season")
    return season.name, season.start.isoformat()


def _ratio(made: Any, attempted: Any, digits: int = 3) -> float | None:
    return round(made / attempted, digits) if attempted else None


def _rounded(value: Any, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


_TDZA_SQL = f"""
SELECT team_abbr, COUNT(*), AVG(opp_points), SUM(opp_fg_made - opp_three_made),
       SUM(opp_fg_attempted - opp_three_attempted), SUM(opp_three_made),
       SUM(opp_three_attempted), AVG(defensive_rating)
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY team_abbr ORDER BY game_date DESC, game_id DESC) AS rn
  FROM nba_analytics.team_defense_game_summary
  WHERE game_date BETWEEN ? AND ?
)
WHERE rn <= {TEAM_WINDOW_GAMES}
GROUP BY team_abbr
"""


def team_defense_zone(conn: sqlite3.Connection, day: str) -> list[Row]:
    """One row per team (all 30, every date): what its defense allowed over its last games."""
    season, start = _season(day)
    found = {r[0]: r for r in conn.execute(_TDZA_SQL, (start, day))}
    rows: list[Row] = []
    for team in TEAMS:
        r = found.get(team)
        if r is None:  # no game yet this season: a row anyway, the team is known to have none
            rows.append((day, team, season, 0, None, None, None, None))
            continue
        rows.append(
            (
                day,
                team,
                season,
                r[1],
                _rounded(r[2]),
                _ratio(r[3], r[4]),
                _ratio(r[5], r[6]),
                _rounded(r[7]),
            )
        )
    return rows


_PSZA_SQL = f"""
SELECT player_lookup, MAX(CASE WHEN rn = 1 THEN team_abbr END), COUNT(*), MAX(season_games),
       AVG(points), AVG(minutes), SUM(three_attempted), SUM(fg_attempted),
       SUM(fg_made - three_made), SUM(fg_attempted - three_attempted), SUM(three_made)
FROM (
  SELECT *,
         ROW_NUMBER() OVER (PARTITION BY player_lookup ORDER BY game_date DESC, game_id DESC) AS rn,
         COUNT(*) OVER (PARTITION BY player_lookup) AS season_games
  FROM nba_analytics.player_game_summary
  WHERE game_date BETWEEN ? AND ?
)
WHERE rn <= {PLAYER_WINDOW_GAMES}
GROUP BY player_lookup
ORDER BY player_lookup
"""


def player_shot_zone(conn: sqlite3.Connection, day: str) -> list[Row]:
    """One row per player who has played this season: shot profile over the last 10 games."""
    season, start = _season(day)
    return [
        (
            day,
            r[0],
            r[1],
            season,
            r[2],
            r[3],
            _rounded(r[4]),
            _rounded(r[5]),
            _ratio(r[6], r[7]),
            _ratio(r[8], r[9]),
            _ratio(r[10], r[6]),
        )
        for r in conn.execute(_PSZA_SQL, (start, day))
    ]


def _players_of_the_day(conn: sqlite3.Connection, day: str) -> list[tuple[Any, ...]]:
    """(game_id, player, team, opponent): every rostered player from the upcoming context, plus
    anyone who played but is missing there (a partial context must not drop players)."""
    rostered = conn.execute(
        "SELECT game_id, player_lookup, team_abbr, opponent_abbr "
        "FROM nba_analytics.upcoming_player_game_context WHERE game_date = ?",
        (day,),
    ).fetchall()
    played = conn.execute(
        "SELECT game_id, player_lookup, team_abbr, opponent_abbr "
        "FROM nba_analytics.player_game_summary WHERE game_date = ?",
        (day,),
    ).fetchall()
    seen = {(r[0], r[1]) for r in rostered}
    return sorted(set(rostered) | {r for r in played if (r[0], r[1]) not in seen})


def composite_factors(conn: sqlite3.Connection, day: str) -> list[Row]:
    """One row per player of the date's games, combining matchup, shot zones and fatigue."""
    zones = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT player_lookup, three_attempt_share "
            "FROM nba_precompute.player_shot_zone_analysis WHERE analysis_date = ?",
            (day,),
        )
    }
    defense = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT team_abbr, defensive_rating_avg, opp_three_pct_allowed "
            "FROM nba_precompute.team_defense_zone_analysis WHERE analysis_date = ?",
            (day,),
        )
    }
    rest = {
        (r[0], r[1]): r[2:]
        for r in conn.execute(
            "SELECT game_id, team_abbr, days_rest, is_back_to_back "
            "FROM nba_analytics.upcoming_team_game_context WHERE game_date = ?",
            (day,),
        )
    }
    rows: list[Row] = []
    for game_id, player, team, opp in _players_of_the_day(conn, day):
        def_rating, three_allowed = defense.get(opp, (None, None))
        (three_share,) = zones.get(player, (None,))
        days_rest, b2b = rest.get((game_id, team), (None, 0))
        strength = None if def_rating is None else round((def_rating - LEAGUE_DEF_RATING) / 5, 3)
        mismatch = None
        if three_share is not None and three_allowed is not None:
            mismatch = round(three_share * (three_allowed - LEAGUE_THREE_PCT) * 10, 3)
        fatigue = 0.85 if b2b else 1.0 if days_rest is None else min(1.0, 0.9 + 0.05 * days_rest)
        composite = round(0.5 * (strength or 0) + 0.3 * (mismatch or 0) + (fatigue - 1.0), 3)
        rows.append(
            (game_id, day, player, team, opp, strength, mismatch, round(fatigue, 3), composite)
        )
    return rows


_SEASON_AVG_SQL = """
SELECT player_lookup, AVG(points), AVG(minutes), AVG(usage_rate)
FROM nba_analytics.player_game_summary
WHERE game_date BETWEEN ? AND ?
GROUP BY player_lookup
"""
_TEAM_RATING_SQL = """
SELECT team_abbr, AVG(offensive_rating)
FROM nba_analytics.team_offense_game_summary
WHERE game_date BETWEEN ? AND ?
GROUP BY team_abbr
"""


def daily_cache(conn: sqlite3.Connection, day: str) -> list[Row]:
    """Season-to-date cache for the date's players who have at least five games of history."""
    _, start = _season(day)
    games = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT player_lookup, games_played_season "
            "FROM nba_precompute.player_shot_zone_analysis WHERE analysis_date = ?",
            (day,),
        )
    }
    averages = {r[0]: r[1:] for r in conn.execute(_SEASON_AVG_SQL, (start, day))}
    ratings = dict(conn.execute(_TEAM_RATING_SQL, (start, day)).fetchall())
    factors = conn.execute(
        "SELECT player_lookup, team_abbr, composite_score "
        "FROM nba_precompute.player_composite_factors WHERE game_date = ? ORDER BY player_lookup",
        (day,),
    ).fetchall()
    rows: list[Row] = []
    for player, team, composite in factors:
        played = games.get(player, 0)
        if played < CACHE_MIN_GAMES or player not in averages:
            continue
        points, minutes, usage = averages[player]
        rows.append(
            (
                day,
                player,
                team,
                played,
                _rounded(points),
                _rounded(minutes),
                _rounded(usage),
                _rounded(ratings.get(team)),
                composite,
            )
        )
    return rows


_FEATURES_SQL = """
SELECT f.game_id, f.player_lookup, f.team_abbr, z.points_avg_last_10, z.three_attempt_share,
       d.defensive_rating_avg, f.composite_score, f.fatigue_score, c.points_avg_season
FROM nba_precompute.player_composite_factors AS f
LEFT JOIN nba_precompute.player_shot_zone_analysis AS z
  ON z.analysis_date = f.game_date AND z.player_lookup = f.player_lookup
LEFT JOIN nba_precompute.team_defense_zone_analysis AS d
  ON d.analysis_date = f.game_date AND d.team_abbr = f.opponent_abbr
LEFT JOIN nba_precompute.player_daily_cache AS c
  ON c.cache_date = f.game_date AND c.player_lookup = f.player_lookup
WHERE f.game_date = ?
ORDER BY f.game_id, f.player_lookup
"""
FEATURES = 6


def feature_store(conn: sqlite3.Connection, day: str) -> list[Row]:
    """One feature row per composite-factors row; quality drops with every missing feature."""
    rows: list[Row] = []
    for r in conn.execute(_FEATURES_SQL, (day,)):
        features = r[3:]
        present = sum(v is not None for v in features)
        quality = "gold" if present == FEATURES else "silver" if present >= 4 else "bronze"
        rows.append((r[0], day, r[1], r[2], present, *features, quality))
    return rows
