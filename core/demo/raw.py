"""Phase 2 (raw) rows of the demo warehouse: rosters, box scores and prop lines for Final games.

Everything is drawn from fixed seeds in a fixed order, so every seed produces identical rows.
Team box scores are the sums of their players' lines, as in the real gamebooks, so the analytics
derived from either agree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.demo import tables
from core.demo.schedule import SEASONS, STATUS_FINAL, STATUS_TEXT, TEAMS, Game

ROSTER_SEED = 4_1230
BOXSCORE_SEED = 2_2021

FIRST_NAMES = (
    "Aaron", "Andre", "Anthony", "Ben", "Brandon", "Cam", "Chris", "Cole", "Damian", "Darius",
    "De'Andre", "Derrick", "Devin", "Donovan", "Dylan", "Evan", "Gary", "Isaiah", "Jalen", "Jamal",
    "Jaren", "Jaylen", "Jordan", "Josh", "Julius", "Karl", "Kevin", "Kyle", "Luka", "Malik",
    "Marcus", "Mason", "Mikal", "Miles", "Nikola", "Paolo", "Reggie", "Scottie", "Tyrese", "Zach",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Allen", "Anderson", "Bailey", "Barnes", "Bell", "Brooks", "Brown", "Bryant",
    "Carter", "Clark", "Collins", "Cook", "Davis", "Edwards", "Evans", "Fox", "Green", "Griffin",
    "Hall", "Harris", "Hayes", "Hill", "Holiday", "Hughes", "Jackson", "James", "Johnson", "Jones",
    "King", "Lee", "Lewis", "Martin", "Miller", "Mitchell", "Moore", "Morris", "Murray", "Nelson",
    "Parker", "Porter", "Powell", "Price", "Reed", "Robinson", "Ross", "Russell", "Sanders",
    "Scott", "Smith", "Taylor", "Thomas", "Thompson", "Turner", "Walker", "Washington", "White",
    "Williams", "Wilson", "Young",
)  # fmt: skip
BOOKMAKERS = ("betmgm", "caesars", "draftkings", "fanduel")
# Players who change teams between seasons, per team (the seed cites ~24% of players moving).
DEPARTURES_PER_TEAM = (3, 5)
MAX_PLAYED = 12  # a coach rarely uses more than 12 players; keeps "played" at 8-12 per team


@dataclass(frozen=True)
class Player:
    lookup: str
    name: str
    quality: float  # 0..1; decides minutes (through the rotation rank) and efficiency
    shot_rate: float  # field-goal attempts per minute
    three_share: float
    two_pct: float
    three_pct: float
    ft_rate: float
    rebound_rate: float
    assist_rate: float


def _new_player(rng: random.Random, taken: set[str]) -> Player:
    while True:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        lookup = f"{first}{last}".lower().replace("'", "")
        if lookup not in taken:
            taken.add(lookup)
            break
    q = rng.random()
    return Player(
        lookup=lookup,
        name=f"{first} {last}",
        quality=q,
        shot_rate=0.24 + 0.22 * q,
        three_share=rng.uniform(0.1, 0.6),
        two_pct=0.46 + 0.1 * q,
        three_pct=0.3 + 0.08 * q,
        ft_rate=(0.04 + 0.12 * q) * rng.uniform(0.6, 1.4),
        rebound_rate=rng.uniform(0.08, 0.28),
        assist_rate=rng.uniform(0.03, 0.18),
    )


def build_rosters() -> dict[str, dict[str, list[Player]]]:
    """Season -> team -> roster ordered by rotation rank (best first)."""
    rng = random.Random(ROSTER_SEED)
    taken: set[str] = set()
    rosters: dict[str, dict[str, list[Player]]] = {}
    previous: dict[str, list[Player]] = {team: [] for team in TEAMS}
    for season in SEASONS:
        sizes = {team: rng.choice((14, 15)) for team in TEAMS}
        current: dict[str, list[Player]] = {}
        free_agents: list[Player] = []
        for team in TEAMS:
            kept = list(previous[team])
            if kept:
                leaving = rng.sample(kept, rng.randint(*DEPARTURES_PER_TEAM))
                free_agents.extend(leaving)
                kept = [p for p in kept if p not in leaving]
            current[team] = kept[: sizes[team]]
        rng.shuffle(free_agents)
        for team in TEAMS:
            roster = current[team]
            while len(roster) < sizes[team]:
                roster.append(free_agents.pop() if free_agents else _new_player(rng, taken))
            roster.sort(key=lambda p: (-p.quality, p.lookup))
        rosters[season.name] = current
        previous = current
    return rosters


def _minutes(rank: int, rng: random.Random) -> float:
    if rank < 5:
        value = min(44.0, max(20.0, rng.gauss(33.0, 3.5)))
    elif rank < 8:
        value = min(32.0, max(8.0, rng.gauss(20.0, 5.0)))
    elif rank < 12:
        value = rng.uniform(3.0, 16.0)
    else:
        value = rng.uniform(1.0, 7.0)
    return round(value, 1)


def _plays(rank: int, rng: random.Random) -> bool:
    if rank < 8:
        return True
    return rng.random() < (0.55 if rank < 12 else 0.12)


def _stat_line(p: Player, minutes: float, rng: random.Random) -> list[int]:
    """[points, fgm, fga, 3pm, 3pa, ftm, fta, rebounds, assists, turnovers]."""
    gauss = rng.gauss
    fga = max(0, round(minutes * p.shot_rate * gauss(1.0, 0.25)))
    three_a = min(fga, max(0, round(fga * p.three_share * gauss(1.0, 0.2))))
    three_m = min(three_a, max(0, round(three_a * gauss(p.three_pct, 0.12))))
    two_a = fga - three_a
    two_m = min(two_a, max(0, round(two_a * gauss(p.two_pct, 0.12))))
    fta = max(0, round(minutes * p.ft_rate * gauss(1.0, 0.4)))
    ftm = min(fta, max(0, round(fta * gauss(0.78, 0.1))))
    rebounds = max(0, round(minutes * p.rebound_rate * gauss(1.0, 0.35)))
    assists = max(0, round(minutes * p.assist_rate * gauss(1.0, 0.4)))
    turnovers = max(0, round(minutes * 0.045 * gauss(1.0, 0.5)))
    points = 2 * two_m + 3 * three_m + ftm
    fgm = two_m + three_m
    return [points, fgm, fga, three_m, three_a, ftm, fta, rebounds, assists, turnovers]


def _expected_points(p: Player, rank: int) -> float:
    minutes = 33.0 if rank < 5 else 20.0 if rank < 8 else 9.0
    per_shot = 2 * (1 - p.three_share) * p.two_pct + 3 * p.three_share * p.three_pct
    return minutes * (p.shot_rate * per_shot + p.ft_rate * 0.78)


def _team_lines(
    roster: list[Player], rng: random.Random
) -> list[tuple[Player, str, float, list[int]]]:
    """(player, status, minutes, stat line) for every rostered player of one team in one game."""
    inactive_count = rng.choice((0, 1, 1, 2))
    inactive = set(range(len(roster) - inactive_count, len(roster)))
    played = 0
    lines = []
    for rank, player in enumerate(roster):
        if rank in inactive:
            lines.append((player, "inactive", 0.0, [0] * 10))
        elif played < MAX_PLAYED and _plays(rank, rng):
            played += 1
            minutes = _minutes(rank, rng)
            lines.append((player, "active", minutes, _stat_line(player, minutes, rng)))
        else:
            lines.append((player, "dnp", 0.0, [0] * 10))
    return lines


def generate(schedule: tuple[Game, ...]) -> dict[str, list[tuple[object, ...]]]:
    """Table name -> rows: the schedule in full, box scores and props for every Final game."""
    rosters = build_rosters()
    rng = random.Random(BOXSCORE_SEED)
    out: dict[str, list[tuple[object, ...]]] = {t.name: [] for t in tables.RAW_TABLES}
    for g in schedule:
        out[tables.SCHEDULE.name].append(
            (
                g.game_id,
                g.game_date,
                g.season,
                g.season_type,
                g.home_team,
                g.away_team,
                g.game_status,
                STATUS_TEXT[g.game_status],
            )
        )
        if g.game_status == STATUS_FINAL:
            _game_rows(g, rosters[g.season], rng, out)
    return out


def _game_rows(
    g: Game,
    rosters: dict[str, list[Player]],
    rng: random.Random,
    out: dict[str, list[tuple[object, ...]]],
) -> None:
    home = _team_lines(rosters[g.home_team], rng)
    away = _team_lines(rosters[g.away_team], rng)
    totals = {g.home_team: _totals(home), g.away_team: _totals(away)}
    if totals[g.home_team][0] == totals[g.away_team][0]:
        # No ties in basketball: the home team's top scorer hits one more free throw.
        top = max((line for line in home if line[1] == "active"), key=lambda line: line[3][0])
        stats = top[3]
        stats[0] += 1
        stats[5] += 1
        stats[6] += 1
        totals[g.home_team] = _totals(home)
    sides = ((g.home_team, g.away_team, 1, home), (g.away_team, g.home_team, 0, away))
    for team, opponent, is_home, lines in sides:
        t = totals[team]
        out[tables.TEAM_BOXSCORE.name].append((g.game_id, g.game_date, team, opponent, is_home, *t))
        for rank, (player, status, minutes, stats) in enumerate(lines):
            out[tables.GAMEBOOK.name].append(
                (
                    g.game_id,
                    g.game_date,
                    team,
                    opponent,
                    player.lookup,
                    player.name,
                    status,
                    minutes,
                    *stats,
                )
            )
            if status != "active":
                continue
            points, rebounds, assists = stats[0], stats[7], stats[8]
            out[tables.BDL_BOXSCORES.name].append(
                (g.game_id, g.game_date, team, player.lookup, minutes, points, rebounds, assists)
            )
            if rank < 8:
                _prop_rows(g, team, player, rank, rng, out[tables.PROPS.name])


def _prop_rows(
    g: Game,
    team: str,
    player: Player,
    rank: int,
    rng: random.Random,
    out: list[tuple[object, ...]],
) -> None:
    base = int(_expected_points(player, rank)) + 0.5
    for book in rng.sample(BOOKMAKERS, rng.choice((1, 2, 2, 3))):
        line = max(0.5, base + rng.choice((-1.0, 0.0, 0.0, 1.0)))
        over = -110 + rng.choice((-10, -5, 0, 5, 10))
        out.append((g.game_id, g.game_date, player.lookup, team, book, line, over, -220 - over))


def _totals(lines: list[tuple[Player, str, float, list[int]]]) -> tuple[int, ...]:
    return tuple(sum(line[3][i] for line in lines) for i in range(10))
