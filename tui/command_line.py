"""The `:` command language (k9s style): parsing, completion and partial dates. Pure: the App
runs what `parse` returns, the command-line modal completes with `complete`.

    :run 2024-01-15 2024-01-28     plan and start a run (preflight first)
    :retry failed                  retry failed cells (in the live run, else a new run)
    :pause  :resume                dispatch off / on
    :parallel precompute 3         a phase's concurrency in the live run
    :goto jan 2024  :goto pgs      move the heatmap cursor to a date or a processor
    :notify test                   a test message on every notify channel
    :runs  :failures  :report  :help  :q
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from core.config import Config

#: name -> what it does (and takes), for completion and for errors
COMMANDS = {
    "run": "run START [END]: plan and start a run over those dates",
    "retry": "retry [failed]: retry failed cells",
    "pause": "pause: no new attempts start",
    "resume": "resume: dispatch again",
    "parallel": "parallel PHASE N: that phase's concurrency in the live run",
    "goto": "goto DATE|PROCESSOR: move the heatmap cursor (2024-01-15, 2024-01, jan 2024)",
    "notify": "notify test: a test message on every notify channel",
    "runs": "runs: every run of the journal",
    "failures": "failures: failed cells grouped by error",
    "report": "report: write the latest run's hand-off report",
    "help": "help: keys, cell states, gates",
    "q": "q: quit (asks first while a run is on)",
}
ALIASES = {"quit": "q", "jump": "goto", "go": "goto", "retry-failed": "retry"}

_MONTHS = {
    name.lower(): number
    for number in range(1, 13)
    for name in (calendar.month_name[number], calendar.month_abbr[number])
}


class CommandError(ValueError):
    """What is wrong with a typed command, in one line."""


@dataclass(frozen=True)
class Parsed:
    name: str
    #: run: (start, end); parallel: (phase, n); goto: (date,) or (processor,)
    args: tuple[object, ...] = ()


def parse_when(text: str) -> tuple[date, date] | None:
    """A date or a partial one, as the (first, last) days it names: 2024-01-15, 2024-01,
    "jan 2024", "2024 jan", "january 2024", 2024. None if it names none."""
    words = text.strip().lower().replace(",", " ").split()
    if len(words) == 1:
        (word,) = words
        if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", word):
            day = _day(int(m[1]), int(m[2]), int(m[3]))
            return None if day is None else (day, day)
        if m := re.fullmatch(r"(\d{4})-(\d{1,2})", word):
            return _month(int(m[1]), int(m[2]))
        if re.fullmatch(r"\d{4}", word):
            return date(int(word), 1, 1), date(int(word), 12, 31)
        return None
    if len(words) == 2:
        month_word, year_word = words if words[1].isdigit() else words[::-1]
        if month_word in _MONTHS and re.fullmatch(r"\d{4}", year_word):
            return _month(int(year_word), _MONTHS[month_word])
    return None


def parse(text: str, config: Config) -> Parsed:
    """The command typed after `:`; raises CommandError naming what is wrong."""
    words = text.strip().split()
    if not words:
        raise CommandError("type a command: " + ", ".join(COMMANDS))
    name, args = ALIASES.get(words[0].lower(), words[0].lower()), words[1:]
    if name not in COMMANDS:
        near = [c for c in COMMANDS if c.startswith(name[:2])]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise CommandError(f"no command {words[0]!r}{hint}; commands: " + ", ".join(COMMANDS))
    if name == "run":
        return Parsed("run", _range_of(args))
    if name == "parallel":
        return Parsed("parallel", _parallel(args, config))
    if name == "goto":
        if not args:
            raise CommandError("usage: " + COMMANDS["goto"])
        joined = " ".join(args)
        if (span := parse_when(joined)) is not None:
            return Parsed("goto", (span[0],))
        names = [p.name for p in config.processors]
        match = [n for n in names if n == joined] or [n for n in names if n.startswith(joined)]
        if len(match) != 1:
            which = "no processor or date" if not match else "several processors"
            raise CommandError(f"{joined!r} names {which}; usage: " + COMMANDS["goto"])
        return Parsed("goto", (match[0],))
    if name == "retry":
        if args not in ([], ["failed"]):
            raise CommandError("usage: " + COMMANDS["retry"])
        return Parsed("retry")
    if name == "notify":
        if args != ["test"]:
            raise CommandError("usage: " + COMMANDS["notify"])
        return Parsed("notify_test")
    if args:
        raise CommandError(f"{name} takes nothing after it")
    return Parsed(name)


def complete(text: str, config: Config) -> str | None:
    """`text` with its last word completed (the one candidate, or their common start), or None
    when there is nothing to add."""
    words = text.split(" ")
    last = words[-1]
    if len(words) == 1:
        candidates = list(COMMANDS)
    else:
        command = ALIASES.get(words[0].lower(), words[0].lower())
        candidates = {
            "parallel": [p.name for p in config.phases] if len(words) == 2 else [],
            "goto": [p.name for p in config.processors],
            "retry": ["failed"],
            "notify": ["test"],
        }.get(command, [])
    hits = [c for c in candidates if c.startswith(last)]
    if not hits:
        return None
    common = hits[0]
    for hit in hits[1:]:
        while not hit.startswith(common):
            common = common[:-1]
    if len(hits) == 1:
        common += " "
    if common == last:
        return None
    return " ".join([*words[:-1], common])


def _range_of(args: list[str]) -> tuple[date, date]:
    """`run` takes one or two dates, each of which may be partial: the first's first day to
    the last's last day (`:run jan 2024` is the whole month)."""
    spans = _spans(args)
    if spans is None or not 1 <= len(spans) <= 2:
        raise CommandError("usage: " + COMMANDS["run"])
    first, last = spans[0][0], spans[-1][1]
    if last < first:
        raise CommandError(f"the run would end ({last}) before it starts ({first})")
    return first, last


def _spans(args: list[str]) -> list[tuple[date, date]] | None:
    """Dates out of words where "jan 2024" is two words and one date."""
    spans, i = [], 0
    while i < len(args):
        two = parse_when(" ".join(args[i : i + 2])) if i + 1 < len(args) else None
        if two is not None:
            spans.append(two)
            i += 2
            continue
        one = parse_when(args[i])
        if one is None:
            return None
        spans.append(one)
        i += 1
    return spans


def _parallel(args: list[str], config: Config) -> tuple[str, int]:
    if len(args) != 2 or not args[1].isdigit():
        raise CommandError("usage: " + COMMANDS["parallel"])
    phase, n = args[0], int(args[1])
    names = [p.name for p in config.phases]
    if phase not in names:
        raise CommandError(f"no phase {phase!r}; phases: {', '.join(names)}")
    if all(p.is_source for p in config.phase(phase).processors):
        raise CommandError(f"{phase} has no jobs to run: its processors are sources")
    if n < 1:
        raise CommandError("parallel takes 1 or more")
    return phase, n


def _day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month(year: int, month: int) -> tuple[date, date] | None:
    if not 1 <= month <= 12:
        return None
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
