"""A deterministic simulated NBA schedule: the ground truth of the demo's expected dates.

Season starts, regular-season ends, play-in and playoff windows follow the real calendar of the
seasons the seed system backfilled. Off-days are absent on purpose (Thanksgiving, Christmas Eve,
the All-Star break and a few ordinary ones) so that "every calendar day" and "every game day"
differ the way they do in the real pipeline. The number of Final game dates per season is pinned
to the seed's 215 + 214 + 209 + 37 = 675 between 2021-10-19 and 2024-11-29.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import date, timedelta

STATUS_SCHEDULED = 1
STATUS_FINAL = 3
STATUS_POSTPONED = 5
STATUS_TEXT = {STATUS_SCHEDULED: "Scheduled", STATUS_FINAL: "Final", STATUS_POSTPONED: "Postponed"}

REGULAR_SEASON = "Regular Season"
PLAY_IN = "Play-In"
PLAYOFFS = "Playoffs"
# NBA game_id type codes (00 + type + season year + sequence).
GAME_TYPE_CODE = {REGULAR_SEASON: "2", PLAY_IN: "5", PLAYOFFS: "4"}

TEAMS: tuple[str, ...] = (
    "ATL", "BKN", "BOS", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW",
    "HOU", "IND", "LAC", "LAL", "MEM", "MIA", "MIL", "MIN", "NOP", "NYK",
    "OKC", "ORL", "PHI", "PHX", "POR", "SAC", "SAS", "TOR", "UTA", "WAS",
)  # fmt: skip

SCHEDULE_SEED = 20211019
# The demo's default range; the 2024-25 season is Final up to here and Scheduled after it.
FINAL_THROUGH = date(2024, 11, 29)
SCHEDULED_THROUGH = date(2024, 12, 31)

# December 2021 COVID postponements (status 5) on dates that still had Final games: a schedule
# query without `game_status = 3` would expect data for games that never took place.
POSTPONED_GAMES = {
    date(2021, 12, 19): 3,
    date(2021, 12, 21): 1,
    date(2021, 12, 26): 1,
    date(2021, 12, 30): 1,
}
# Dates the demo's story relies on (the seed's 14-day test window with its injected faults) must
# stay game days whatever the random off-days are.
PROTECTED_RANGES = ((date(2024, 1, 15), date(2024, 1, 28)),)

# Playoff rounds by days since the playoffs started: (first day, teams left, games per date).
# The last round keeps four teams so that every playoff date has at least two games: a one-game
# slate (about 28 rostered players) could never reach the feature store's 50-row minimum, and such
# dates would stay "partial" forever in the demo.
PLAYOFF_ROUNDS = ((0, 16, (2, 4)), (15, 8, (2, 4)), (29, 4, (2, 2)))
# Regular-season games per date by weekday (Monday = 0); real slates average ~7.5 games.
GAMES_BY_WEEKDAY = ((5, 9), (5, 9), (6, 11), (5, 8), (6, 11), (5, 10), (5, 9))


@dataclass(frozen=True)
class Season:
    name: str
    start: date
    regular_end: date
    play_in: tuple[date, ...]
    playoffs: tuple[date, date]
    all_star_break: tuple[date, date]
    final_dates: int  # Final game dates up to FINAL_THROUGH (the seed's pinned counts)
    regular_off_days: int  # ordinary regular-season off-days; the rest come out of the playoffs

    @property
    def end(self) -> date:
        return self.playoffs[1]

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


SEASONS: tuple[Season, ...] = (
    Season(
        "2021-22",
        date(2021, 10, 19),
        date(2022, 4, 10),
        (date(2022, 4, 12), date(2022, 4, 13), date(2022, 4, 15)),
        (date(2022, 4, 16), date(2022, 6, 16)),
        (date(2022, 2, 18), date(2022, 2, 23)),
        final_dates=215,
        regular_off_days=4,
    ),
    Season(
        "2022-23",
        date(2022, 10, 18),
        date(2023, 4, 9),
        (date(2023, 4, 11), date(2023, 4, 12), date(2023, 4, 14)),
        (date(2023, 4, 15), date(2023, 6, 12)),
        (date(2023, 2, 17), date(2023, 2, 22)),
        final_dates=214,
        regular_off_days=4,
    ),
    Season(
        "2023-24",
        date(2023, 10, 24),
        date(2024, 4, 14),
        # The 2024 play-in fell inside the 04-16 -> 06-17 postseason window.
        (date(2024, 4, 16), date(2024, 4, 17), date(2024, 4, 19)),
        (date(2024, 4, 20), date(2024, 6, 17)),
        (date(2024, 2, 16), date(2024, 2, 21)),
        final_dates=209,
        regular_off_days=6,
    ),
    Season(
        "2024-25",
        date(2024, 10, 22),
        date(2025, 4, 13),
        (date(2025, 4, 15), date(2025, 4, 16), date(2025, 4, 18)),
        (date(2025, 4, 19), date(2025, 6, 22)),
        (date(2025, 2, 14), date(2025, 2, 19)),
        final_dates=37,
        regular_off_days=1,
    ),
)


@dataclass(frozen=True)
class Game:
    game_id: str
    game_date: str  # ISO YYYY-MM-DD, as stored
    season: str
    season_type: str
    home_team: str
    away_team: str
    game_status: int


def thanksgiving(year: int) -> date:
    first = date(year, 11, 1)
    first_thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + timedelta(weeks=3)


def season_for(day: date) -> Season | None:
    return next((s for s in SEASONS if s.contains(day)), None)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@functools.cache
def build_schedule() -> tuple[Game, ...]:
    """Every game of the simulated schedule, in date order (identical on every call and run)."""
    rng = random.Random(SCHEDULE_SEED)
    games: list[Game] = []
    for season in SEASONS:
        games.extend(_season_games(season, rng))
    return tuple(games)


def final_game_dates(start: date, end: date) -> list[str]:
    """Distinct dates with at least one Final game, the calendar the demo backfill expects."""
    lo, hi = start.isoformat(), end.isoformat()
    found = {
        g.game_date
        for g in build_schedule()
        if g.game_status == STATUS_FINAL and lo <= g.game_date <= hi
    }
    return sorted(found)


def _is_protected(day: date) -> bool:
    return day in POSTPONED_GAMES or any(lo <= day <= hi for lo, hi in PROTECTED_RANGES)


def _regular_candidates(season: Season) -> list[date]:
    closed = {thanksgiving(season.start.year), date(season.start.year, 12, 24)}
    closed.update(days(*season.all_star_break))
    return [d for d in days(season.start, season.regular_end) if d not in closed]


def _game_days(season: Season, rng: random.Random) -> dict[date, str]:
    """Final game days of a season (up to FINAL_THROUGH) with their season type."""
    regular = [d for d in _regular_candidates(season) if d <= FINAL_THROUGH]
    play_in = [d for d in season.play_in if d <= FINAL_THROUGH]
    playoffs = [d for d in days(*season.playoffs) if d <= FINAL_THROUGH]
    excess = len(regular) + len(play_in) + len(playoffs) - season.final_dates
    regular_off = min(season.regular_off_days, excess)
    keep = {regular[0], regular[-1], date(season.start.year, 12, 25)}
    removable = [d for d in regular if d not in keep and not _is_protected(d)]
    off = set(rng.sample(removable, regular_off))
    # Later rounds rest more between games; the first ten days and the last date always play.
    removable = playoffs[10:-1]
    off.update(rng.sample(removable, excess - regular_off))
    typed = {d: REGULAR_SEASON for d in regular if d not in off}
    typed.update({d: PLAY_IN for d in play_in})
    typed.update({d: PLAYOFFS for d in playoffs if d not in off})
    if len(typed) != season.final_dates:
        raise AssertionError(f"{season.name}: {len(typed)} game dates, not {season.final_dates}")
    return dict(sorted(typed.items()))


def _scheduled_days(season: Season, rng: random.Random) -> list[date]:
    """Future (not yet played) game days after FINAL_THROUGH, for the current season only."""
    if not season.contains(FINAL_THROUGH):
        return []
    later = [d for d in _regular_candidates(season) if FINAL_THROUGH < d <= SCHEDULED_THROUGH]
    return sorted(set(later) - set(rng.sample(later, 2)))


def _pairs(teams: list[str], count: int, rng: random.Random) -> list[tuple[str, str]]:
    picked = rng.sample(teams, 2 * count)
    return [(picked[i], picked[i + 1]) for i in range(0, len(picked), 2)]


def _season_games(season: Season, rng: random.Random) -> list[Game]:
    yy = f"{season.start.year % 100:02d}"
    sequence = dict.fromkeys(GAME_TYPE_CODE, 0)

    def make(day: date, kind: str, home: str, away: str, status: int) -> Game:
        sequence[kind] += 1
        game_id = f"00{GAME_TYPE_CODE[kind]}{yy}{sequence[kind]:05d}"
        return Game(game_id, day.isoformat(), season.name, kind, home, away, status)

    teams = list(TEAMS)
    rounds = [rng.sample(teams, PLAYOFF_ROUNDS[0][1])]
    for _, size, _ in PLAYOFF_ROUNDS[1:]:
        rounds.append(rng.sample(rounds[-1], size))
    play_in_pool = rng.sample(rounds[0], 4) + rng.sample(sorted(set(teams) - set(rounds[0])), 4)

    games: list[Game] = []
    for day, kind in _game_days(season, rng).items():
        postponed = POSTPONED_GAMES.get(day, 0)
        if kind == REGULAR_SEASON:
            lo, hi = GAMES_BY_WEEKDAY[day.weekday()]
            # The last night of the regular season has every team playing.
            count = 15 if day == season.regular_end else min(rng.randint(lo, hi), 15 - postponed)
            pool = teams
        elif kind == PLAY_IN:
            count, pool = 2, play_in_pool
        else:
            offset = (day - season.playoffs[0]).days
            index = max(i for i, r in enumerate(PLAYOFF_ROUNDS) if offset >= r[0])
            count, pool = rng.randint(*PLAYOFF_ROUNDS[index][2]), rounds[index]
        matchups = _pairs(pool, count + postponed, rng)
        for i, (home, away) in enumerate(matchups):
            status = STATUS_POSTPONED if i >= count else STATUS_FINAL
            games.append(make(day, kind, home, away, status))
    for day in _scheduled_days(season, rng):
        lo, hi = GAMES_BY_WEEKDAY[day.weekday()]
        for home, away in _pairs(teams, rng.randint(lo, hi), rng):
            games.append(make(day, REGULAR_SEASON, home, away, STATUS_SCHEDULED))
    return games
