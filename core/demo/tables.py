"""Table schemas of the demo warehouse: every table named in the bundled backfill.yaml.

Each table has its date column (ISO text, indexed because every coverage query and every job
filters on it) and a few entity and numeric columns. Rows are built as tuples in column order, so
the column order here is the contract between the seed, the job program and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT = "TEXT"
INT = "INTEGER"
REAL = "REAL"


@dataclass(frozen=True)
class Table:
    dataset: str
    name: str
    date_column: str
    columns: tuple[tuple[str, str], ...]

    @property
    def qualified(self) -> str:
        return f"{self.dataset}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def ddl(self) -> list[str]:
        columns = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        return [
            f"CREATE TABLE IF NOT EXISTS {self.qualified} ({columns})",
            f"CREATE INDEX IF NOT EXISTS {self.dataset}.ix_{self.name}_{self.date_column} "
            f"ON {self.name} ({self.date_column})",
        ]

    def insert_sql(self) -> str:
        marks = ", ".join("?" for _ in self.columns)
        return f"INSERT INTO {self.qualified} ({', '.join(self.column_names)}) VALUES ({marks})"


def _table(dataset: str, name: str, date_column: str, *columns: tuple[str, str]) -> Table:
    return Table(dataset, name, date_column, columns)


RAW = "nba_raw"
ANALYTICS = "nba_analytics"
PRECOMPUTE = "nba_precompute"
PREDICTIONS = "nba_predictions"
DATASETS = (RAW, ANALYTICS, PRECOMPUTE, PREDICTIONS)

_GAME = (("game_id", TEXT), ("game_date", TEXT))
_TEAM_GAME = (*_GAME, ("team_abbr", TEXT), ("opponent_abbr", TEXT), ("is_home", INT))
_SHOTS = (
    ("fg_made", INT),
    ("fg_attempted", INT),
    ("three_made", INT),
    ("three_attempted", INT),
    ("ft_made", INT),
    ("ft_attempted", INT),
)

SCHEDULE = _table(
    RAW,
    "nbac_schedule",
    "game_date",
    *_GAME,
    ("season", TEXT),
    ("season_type", TEXT),
    ("home_team", TEXT),
    ("away_team", TEXT),
    ("game_status", INT),
    ("game_status_text", TEXT),
)
GAMEBOOK = _table(
    RAW,
    "nbac_gamebook_player_stats",
    "game_date",
    *_GAME,
    ("team_abbr", TEXT),
    ("opponent_abbr", TEXT),
    ("player_lookup", TEXT),
    ("player_name", TEXT),
    ("player_status", TEXT),  # active | dnp | inactive
    ("minutes", REAL),
    ("points", INT),
    *_SHOTS,
    ("rebounds", INT),
    ("assists", INT),
    ("turnovers", INT),
)
TEAM_BOXSCORE = _table(
    RAW,
    "nbac_team_boxscore",
    "game_date",
    *_TEAM_GAME,
    ("points", INT),
    *_SHOTS,
    ("rebounds", INT),
    ("assists", INT),
    ("turnovers", INT),
)
PROPS = _table(
    RAW,
    "bettingpros_player_points_props",
    "game_date",
    *_GAME,
    ("player_lookup", TEXT),
    ("team_abbr", TEXT),
    ("bookmaker", TEXT),
    ("points_line", REAL),
    ("over_odds", INT),
    ("under_odds", INT),
)
BDL_BOXSCORES = _table(
    RAW,
    "bdl_player_boxscores",
    "game_date",
    *_GAME,
    ("team_abbr", TEXT),
    ("player_lookup", TEXT),
    ("minutes", REAL),
    ("points", INT),
    ("rebounds", INT),
    ("assists", INT),
)

TEAM_OFFENSE = _table(
    ANALYTICS,
    "team_offense_game_summary",
    "game_date",
    *_TEAM_GAME,
    ("points", INT),
    ("possessions", REAL),
    ("offensive_rating", REAL),
    ("pace", REAL),
    ("assists", INT),
    ("turnovers", INT),
)
TEAM_DEFENSE = _table(
    ANALYTICS,
    "team_defense_game_summary",
    "game_date",
    *_TEAM_GAME,
    ("opp_points", INT),
    ("opp_fg_made", INT),
    ("opp_fg_attempted", INT),
    ("opp_three_made", INT),
    ("opp_three_attempted", INT),
    ("defensive_rating", REAL),
)
PLAYER_GAME = _table(
    ANALYTICS,
    "player_game_summary",
    "game_date",
    *_GAME,
    ("player_lookup", TEXT),
    ("team_abbr", TEXT),
    ("opponent_abbr", TEXT),
    ("minutes", REAL),
    ("points", INT),
    ("rebounds", INT),
    ("assists", INT),
    ("fg_made", INT),
    ("fg_attempted", INT),
    ("three_made", INT),
    ("three_attempted", INT),
    ("ts_pct", REAL),
    ("usage_rate", REAL),  # NULL when the team's offense row is missing, as in the seed
)
UPCOMING_PLAYER = _table(
    ANALYTICS,
    "upcoming_player_game_context",
    "game_date",
    *_GAME,
    ("player_lookup", TEXT),
    ("team_abbr", TEXT),
    ("opponent_abbr", TEXT),
    ("is_home", INT),
    ("roster_status", TEXT),
    ("prop_count", INT),
    ("points_line", REAL),
)
UPCOMING_TEAM = _table(
    ANALYTICS,
    "upcoming_team_game_context",
    "game_date",
    *_TEAM_GAME,
    ("days_rest", INT),
    ("is_back_to_back", INT),
    ("opponent_days_rest", INT),
    ("points_avg_last_5", REAL),
)

TEAM_DEFENSE_ZONE = _table(
    PRECOMPUTE,
    "team_defense_zone_analysis",
    "analysis_date",
    ("analysis_date", TEXT),
    ("team_abbr", TEXT),
    ("season", TEXT),
    ("games_in_sample", INT),
    ("opp_points_avg", REAL),
    ("opp_two_pct_allowed", REAL),
    ("opp_three_pct_allowed", REAL),
    ("defensive_rating_avg", REAL),
)
PLAYER_SHOT_ZONE = _table(
    PRECOMPUTE,
    "player_shot_zone_analysis",
    "analysis_date",
    ("analysis_date", TEXT),
    ("player_lookup", TEXT),
    ("team_abbr", TEXT),
    ("season", TEXT),
    ("games_in_sample", INT),
    ("games_played_season", INT),
    ("points_avg_last_10", REAL),
    ("minutes_avg_last_10", REAL),
    ("three_attempt_share", REAL),
    ("two_pct", REAL),
    ("three_pct", REAL),
)
COMPOSITE_FACTORS = _table(
    PRECOMPUTE,
    "player_composite_factors",
    "game_date",
    *_GAME,
    ("player_lookup", TEXT),
    ("team_abbr", TEXT),
    ("opponent_abbr", TEXT),
    ("opponent_strength_score", REAL),
    ("shot_zone_mismatch_score", REAL),
    ("fatigue_score", REAL),
    ("composite_score", REAL),
)
DAILY_CACHE = _table(
    PRECOMPUTE,
    "player_daily_cache",
    "cache_date",
    ("cache_date", TEXT),
    ("player_lookup", TEXT),
    ("team_abbr", TEXT),
    ("games_played_season", INT),
    ("points_avg_season", REAL),
    ("minutes_avg_season", REAL),
    ("usage_rate_avg_season", REAL),
    ("team_offensive_rating_avg", REAL),
    ("composite_score", REAL),
)
FEATURE_STORE = _table(
    PREDICTIONS,
    "ml_feature_store_v2",
    "game_date",
    *_GAME,
    ("player_lookup", TEXT),
    ("team_abbr", TEXT),
    ("feature_count", INT),
    ("f_points_avg_l10", REAL),
    ("f_three_share", REAL),
    ("f_opp_def_rating", REAL),
    ("f_composite", REAL),
    ("f_fatigue", REAL),
    ("f_points_avg_season", REAL),
    ("data_quality", TEXT),
)

RAW_TABLES = (SCHEDULE, GAMEBOOK, TEAM_BOXSCORE, PROPS, BDL_BOXSCORES)
ANALYTICS_TABLES = (TEAM_OFFENSE, TEAM_DEFENSE, PLAYER_GAME, UPCOMING_PLAYER, UPCOMING_TEAM)
PRECOMPUTE_TABLES = (
    TEAM_DEFENSE_ZONE,
    PLAYER_SHOT_ZONE,
    COMPOSITE_FACTORS,
    DAILY_CACHE,
    FEATURE_STORE,
)
ALL_TABLES = RAW_TABLES + ANALYTICS_TABLES + PRECOMPUTE_TABLES
# In the bundled backfill.yaml every processor is named after the table it writes.
BY_NAME: dict[str, Table] = {t.name: t for t in ALL_TABLES}
