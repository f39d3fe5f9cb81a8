"""Where the seeded Phase 3 tables have data: the half-finished backfill the demo starts from.

Coverage comes in season-sized chunks, as earlier backfill runs left it in the seed system: the
team summaries are nearly done, player_game_summary lags, and the upcoming_* contexts were never
run for 2022-23 and 2024-25. The 2024-01-15 -> 2024-01-28 window (the seed's test window) is
mostly missing, so a demo run over it has real work, meets the injected faults and finds a
partial date. A few other dates are "partial": the writer stopped after the first game.
"""

from __future__ import annotations

from datetime import date

Span = tuple[date, date]

_S1 = (date(2021, 10, 19), date(2022, 6, 16))  # 2021-22, all of it
_S2_REGULAR = (date(2022, 10, 18), date(2023, 4, 9))  # 2022-23 without its postseason
_S2_EARLY = (date(2022, 10, 18), date(2023, 1, 31))
_S3_EARLY = (date(2023, 10, 24), date(2024, 1, 14))  # 2023-24 up to the test window
_S3_SPRING = (date(2024, 1, 29), date(2024, 3, 31))
_S3_REST = (date(2024, 1, 29), date(2024, 6, 17))
_S4_EARLY = (date(2024, 10, 22), date(2024, 11, 10))  # 2024-25

COVERED: dict[str, tuple[Span, ...]] = {
    "team_offense_game_summary": (
        _S1,
        _S2_REGULAR,
        _S3_EARLY,
        (date(2024, 1, 15), date(2024, 1, 19)),
        _S3_SPRING,
    ),
    "team_defense_game_summary": (
        _S1,
        _S2_EARLY,
        _S3_EARLY,
        (date(2024, 1, 15), date(2024, 1, 22)),
        _S3_SPRING,
        _S4_EARLY,
    ),
    "player_game_summary": (_S1, _S2_EARLY, _S3_EARLY, _S3_SPRING),
    "upcoming_player_game_context": (_S1, _S3_EARLY, _S3_SPRING),
    "upcoming_team_game_context": (_S1, _S3_EARLY, _S3_REST),
}

# (processor, date) -> only the first game's rows were written.
PARTIAL: frozenset[tuple[str, date]] = frozenset(
    {
        ("team_offense_game_summary", date(2024, 1, 18)),  # inside the test window
        ("team_offense_game_summary", date(2022, 12, 3)),  # 2 of 2 x games team rows
        ("player_game_summary", date(2022, 1, 12)),  # fewer than 8 players per game
        ("upcoming_player_game_context", date(2021, 11, 20)),
        ("upcoming_team_game_context", date(2024, 3, 5)),
    }
)


def is_covered(processor: str, day: date) -> bool:
    return any(lo <= day <= hi for lo, hi in COVERED.get(processor, ()))


def is_partial(processor: str, day: date) -> bool:
    return (processor, day) in PARTIAL
