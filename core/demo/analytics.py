"""Phase 3 (analytics) derivations, shared by the seed and the job program.

Each function reads its upstream rows for a list of dates with one query per table and returns the
derived rows per date. The job calls it with one date; the seed calls it once with every date it
seeds. Same code, same SQL: seeded rows equal the rows a job run would write.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

from core.demo.schedule import SEASONS, STATUS_FINAL

Row = tuple[Any, ...]
RowsByDate = dict[str, list[Row]]

# Minutes of a team in a regulation game divided by 5 players, for the usage-rate formula.
TEAM_MINUTES_PER_PLAYER = 48.0


def rows_by_date(conn: sqlite3.Connection, sql: str, dates: Sequence[str]) -> RowsByDate:
    """Run `sql` (first column the date, ending in `BETWEEN ? AND ?`) and group rows by date."""
    wanted = sorted(set(dates))
    out: RowsByDate = {d: [] for d in wanted}
    if not wanted:
        return out
    for row in conn.execute(sql, (wanted[0], wanted[-1])):
        bucket = out.get(row[0])
        if bucket is not None:
            bucket.append(row[1:])
    return out


def _possessions(fga: int, fta: int, turnovers: int) -> float:
    return fga + 0.44 * fta + turnovers


def _by_game(rows: list[Row]) -> dict[object, list[Row]]:
    games: dict[object, list[Row]] = defaultdict(list)
    for row in rows:
        games[row[0]].append(row)
    return games


_BOX_SQL = """
SELECT game_date, game_id, team_abbr, opponent_abbr, is_home, points, fg_made, fg_attempted,
       three_made, three_attempted, ft_made, ft_attempted, rebounds, assists, turnovers
FROM nba_raw.nbac_team_boxscore
WHERE game_date BETWEEN ? AND ?
ORDER BY game_date, game_id, is_home DESC
"""


def team_offense(conn: sqlite3.Connection, dates: Sequence[str]) -> RowsByDate:
    out: RowsByDate = {}
    for day, rows in rows_by_date(conn, _BOX_SQL, dates).items():
        derived: list[Row] = []
        for game_id, sides in _by_game(rows).items():
            poss = {s[1]: _possessions(s[6], s[10], s[13]) for s in sides}
            for s in sides:
                team, opponent, points = s[1], s[2], s[4]
                own, other = poss[team], poss.get(opponent, poss[team])
                derived.append(
                    (
                        game_id,
                        day,
                        team,
                        opponent,
                        s[3],
                        points,
                        round(own, 1),
                        round(100.0 * points / own, 1) if own else None,
                        round((own + other) / 2, 1),
                        s[12],
                        s[13],
                    )
                )
        out[day] = derived
    return out


def team_defense(conn: sqlite3.Connection, dates: Sequence[str]) -> RowsByDate:
    out: RowsByDate = {}
    for day, rows in rows_by_date(conn, _BOX_SQL, dates).items():
        derived: list[Row] = []
        for game_id, sides in _by_game(rows).items():
            for s in sides:
                opp = next((o for o in sides if o[1] == s[2]), None)
                if opp is None:
                    continue
                opp_poss = _possessions(opp[6], opp[10], opp[13])
                rating = round(100.0 * opp[4] / opp_poss, 1) if opp_poss else None
                derived.append(
                    (game_id, day, s[1], s[2], s[3], opp[4], opp[5], opp[6], opp[7], opp[8], rating)
                )
        out[day] = derived
    return out


_PLAYER_SQL = """
SELECT g.game_date, g.game_id, g.player_lookup, g.team_abbr, g.opponent_abbr, g.minutes, g.points,
       g.rebounds, g.assists, g.fg_made, g.fg_attempted, g.three_made, g.three_attempted,
       g.ft_attempted, g.turnovers, o.possessions
FROM nba_raw.nbac_gamebook_player_stats AS g
LEFT JOIN nba_analytics.team_offense_game_summary AS o
  ON o.game_date = g.game_date AND o.game_id = g.game_id AND o.team_abbr = g.team_abbr
WHERE g.minutes > 0 AND g.game_date BETWEEN ? AND ?
ORDER BY g.game_date, g.game_id, g.team_abbr, g.player_lookup
"""


def player_game(conn: sqlite3.Connection, dates: Sequence[str]) -> RowsByDate:
    """Players who played. usage_rate needs the team's offense row (a LEFT JOIN, as in the seed
    system): without it the column is silently NULL, which is why the config orders PGS after it."""
    out: RowsByDate = {}
    for day, rows in rows_by_date(conn, _PLAYER_SQL, dates).items():
        derived: list[Row] = []
        for r in rows:
            minutes, points, fga, fta, tov, team_poss = r[4], r[5], r[9], r[12], r[13], r[14]
            shots = 2 * (fga + 0.44 * fta)
            ts_pct = round(points / shots, 3) if shots else None
            usage = None
            if team_poss:
                own = _possessions(fga, fta, tov) * TEAM_MINUTES_PER_PLAYER
                usage = round(100.0 * own / (minutes * team_poss), 1)
            # game_id, date, then player .. three_attempted as read, then the derived rates
            derived.append((r[0], day, *r[1:12], ts_pct, usage))
        out[day] = derived
    return out


_ROSTER_SQL = """
SELECT g.game_date, g.game_id, g.player_lookup, g.team_abbr, g.opponent_abbr,
       CASE WHEN g.team_abbr = s.home_team THEN 1 ELSE 0 END, g.player_status
FROM nba_raw.nbac_gamebook_player_stats AS g
JOIN nba_raw.nbac_schedule AS s ON s.game_id = g.game_id AND s.game_date = g.game_date
WHERE g.game_date BETWEEN ? AND ?
ORDER BY g.game_date, g.game_id, g.team_abbr, g.player_lookup
"""
_PROPS_SQL = """
SELECT game_date, game_id, player_lookup, points_line
FROM nba_raw.bettingpros_player_points_props
WHERE game_date BETWEEN ? AND ?
ORDER BY game_date, game_id, player_lookup, bookmaker
"""


def upcoming_player(conn: sqlite3.Connection, dates: Sequence[str]) -> RowsByDate:
    """Every rostered player (active, DNP and inactive) with the consensus prop line if any."""
    props = rows_by_date(conn, _PROPS_SQL, dates)
    out: RowsByDate = {}
    for day, rows in rows_by_date(conn, _ROSTER_SQL, dates).items():
        lines: dict[tuple[object, object], list[float]] = defaultdict(list)
        for game_id, player, line in props[day]:
            lines[(game_id, player)].append(line)
        derived: list[Row] = []
        for game_id, player, team, opp, is_home, status in rows:
            found = lines.get((game_id, player), [])
            consensus = round(sum(found) / len(found), 2) if found else None
            derived.append(
                (game_id, day, player, team, opp, is_home, status, len(found), consensus)
            )
        out[day] = derived
    return out


_SCHEDULE_SQL = f"""
SELECT game_date, game_id, season, home_team, away_team
FROM nba_raw.nbac_schedule
WHERE game_status = {STATUS_FINAL} AND game_date BETWEEN ? AND ?
ORDER BY game_date, game_id
"""
_TEAM_POINTS_SQL = """
SELECT game_date, team_abbr, points
FROM nba_raw.nbac_team_boxscore
WHERE game_date BETWEEN ? AND ?
ORDER BY game_date, team_abbr
"""


def _season_start(day: str) -> str:
    d = date.fromisoformat(day)
    starts = [s.start for s in SEASONS if s.start <= d]
    return (max(starts) if starts else d).isoformat()


class _History:
    """Per team, the Final game dates and points of the season so far (for rest and form)."""

    def __init__(self, schedule: list[Row], points: list[Row]) -> None:
        self.dates: dict[object, list[str]] = defaultdict(list)
        for day, _, _, home, away in schedule:
            self.dates[home].append(day)
            self.dates[away].append(day)
        self.points: dict[object, list[tuple[str, int]]] = defaultdict(list)
        for day, team, pts in points:
            self.points[team].append((day, pts))

    def days_rest(self, team: object, day: str) -> int | None:
        seen = self.dates[team]
        i = bisect.bisect_left(seen, day)
        if i == 0 or seen[i - 1] < _season_start(day):
            return None
        return (date.fromisoformat(day) - date.fromisoformat(seen[i - 1])).days - 1

    def points_avg(self, team: object, day: str, games: int = 5) -> float | None:
        seen = self.points[team]
        i = bisect.bisect_left(seen, (day,))
        start = _season_start(day)
        recent = [p for d, p in seen[max(0, i - games) : i] if d >= start]
        return round(sum(recent) / len(recent), 1) if recent else None


def upcoming_team(conn: sqlite3.Connection, dates: Sequence[str]) -> RowsByDate:
    """Home and away context per game: rest days from the schedule, recent form from box scores."""
    wanted = sorted(set(dates))
    if not wanted:
        return {}
    window = (_season_start(wanted[0]), wanted[-1])
    schedule = [tuple(r) for r in conn.execute(_SCHEDULE_SQL, window)]
    history = _History(schedule, [tuple(r) for r in conn.execute(_TEAM_POINTS_SQL, window)])
    out: RowsByDate = {d: [] for d in wanted}
    for day, game_id, _, home, away in schedule:
        if day not in out:
            continue
        rest = {team: history.days_rest(team, day) for team in (home, away)}
        for team, opp, is_home in ((home, away, 1), (away, home, 0)):
            b2b = 1 if rest[team] == 0 else 0
            form = history.points_avg(team, day)
            out[day].append((game_id, day, team, opp, is_home, rest[team], b2b, rest[opp], form))
    return out


def first_game_only(rows: list[Row]) -> list[Row]:
    """The rows of the first game of a date: what a writer that died after one game left behind
    (the seed's "2 of 16 teams" incident). Every Phase 3 table has game_id first."""
    if not rows:
        return rows
    first = min(str(r[0]) for r in rows)
    return [r for r in rows if r[0] == first]
