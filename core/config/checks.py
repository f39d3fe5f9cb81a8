"""Rules that span keys: names, dependencies, cycles, placeholders, warehouse kinds, seasons.

Each problem carries the key path it concerns so the loader can name the line.
"""

from __future__ import annotations

import difflib
import graphlib
import grp
import itertools
import re
from dataclasses import dataclass

from core.config.model import (
    AVAILABLE_EXECUTORS,
    NOTIFY_EVENTS,
    PLACEHOLDER,
    PLACEHOLDERS,
    CloudRunExecutor,
    CommandCheck,
    Config,
    CoverageCheck,
    QueryCheck,
)

KeyPath = tuple[str | int, ...]
# It goes inside backquotes in SQL: letters, digits, dashes, and a domain prefix (example.com:p).
PROJECT_ID = re.compile(r"^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# What a shell can assign and a program read back: `A=B` would be read as variable A; a NUL
# cannot pass through exec at all (starting the attempt would fail).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
THROTTLE_KEYS = ("transient_patterns", "daily_quota_patterns", "fatal_patterns")
NO_NUL = "contains a NUL character, which no program's arguments or environment can hold"


@dataclass(frozen=True)
class Problem:
    at: KeyPath
    text: str
    #: another place the problem concerns: the loader names its line too
    also: KeyPath | None = None


def semantic_problems(config: Config) -> list[Problem]:
    return [
        *_warehouse(config),
        *_calendar(config),
        *_names(config),
        *_dependencies(config),
        *_commands(config),
        *_environment(config),
        *_preflight(config),
        *_group(config),
        *_notify(config),
        *_executors(config),
    ]


def _executors(config: Config) -> list[Problem]:
    """An executor that is parsed (so a file written for it is checked) but cannot run in this
    version is refused before anything starts, not half-way through a plan. A kind has one
    setting per file: the journal records an attempt's kind only, so an attempt of a phase with
    other settings of that kind would be adopted, after a crash, with the wrong ones."""
    wanted: list[tuple[KeyPath, str]] = [(("executor", "kind"), config.executor.kind)]
    wanted += [
        (("phases", i, "executor", "kind"), phase.executor.kind)
        for i, phase in enumerate(config.phases)
        if phase.executor is not None
    ]
    problems = [
        Problem(
            at,
            f"executor kind {kind} is not available in this version "
            f"(available: {', '.join(AVAILABLE_EXECUTORS)})",
        )
        for at, kind in wanted
        if kind not in AVAILABLE_EXECUTORS
    ]
    settings: list[tuple[KeyPath, object]] = [(("executor",), config.executor)]
    settings += [
        (("phases", i, "executor"), phase.executor)
        for i, phase in enumerate(config.phases)
        if phase.executor is not None
    ]
    first: dict[str, tuple[KeyPath, object]] = {}
    for at, setting in settings:
        kind = getattr(setting, "kind", "")
        if kind == "local":
            continue
        if kind not in first:
            first[kind] = (at, setting)
        elif first[kind][1] != setting:
            problems.append(
                Problem(
                    at,
                    f"a second, different {kind} executor setting: one file has one {kind} "
                    "setting (the journal records only the kind of an attempt's executor)",
                    also=first[kind][0],
                )
            )
    return problems + _cloud_run(config)


def _cloud_run(config: Config) -> list[Problem]:
    """A processor on a cloud_run phase runs as its Cloud Run Job: it must name it."""
    problems = []
    for i, phase in enumerate(config.phases):
        if not isinstance(config.executor_of(phase), CloudRunExecutor):
            continue
        for j, proc in enumerate(phase.processors):
            if proc.command is not None and proc.cloud_run is None:
                problems.append(
                    Problem(
                        ("phases", i, "processors", j),
                        f"processor {proc.name} runs on executor cloud_run (phase "
                        f"{phase.name}) but names no Cloud Run Job: add cloud_run: {{job: ...}}",
                    )
                )
    return problems


def _notify(config: Config) -> list[Problem]:
    problems = []
    _unknown = _Unknown()
    names: set[str] = set()
    for i, channel in enumerate(config.notify):
        at: KeyPath = ("notify", i)
        if channel.name in names:
            problems.append(Problem((*at, "name"), f"channel {channel.name!r} is given twice"))
        names.add(channel.name)
        if (channel.url is None) == (channel.webhook is None):
            problems.append(Problem(at, "a channel needs exactly one of url, webhook"))
        # `${VAR}` may stand for the whole URL, scheme included: only a literal one is checked.
        hook = channel.webhook
        if hook and not hook.startswith("${") and not hook.startswith(("http://", "https://")):
            problems.append(Problem((*at, "webhook"), "expected an http:// or https:// URL"))
        for k, event in enumerate(channel.events or ()):
            if event not in NOTIFY_EVENTS:
                problems.append(
                    Problem((*at, "events", k), _unknown(event, list(NOTIFY_EVENTS), "event"))
                )
    return problems


def _group(config: Config) -> list[Problem]:
    if config.group is None:
        return []
    try:
        grp.getgrnam(config.group)
    except KeyError:
        return [Problem(("group",), f"no Unix group {config.group!r} on this machine")]
    return []


def _warehouse(config: Config) -> list[Problem]:
    wh = config.warehouse
    own = {
        "sqlite": {"path"},
        "bigquery": {
            "project",
            "location",
            "api_endpoint",
            "retry_deadline",
            "timeouts",
            "maximum_bytes_billed",
            "billing_project",
            "quota_project",
            "impersonate",
        },
    }
    problems = [
        Problem(("warehouse", key), f"not a key of a {wh.kind} warehouse")
        for kind, keys in own.items()
        if kind != wh.kind
        for key in sorted(keys & wh.model_fields_set)
    ]
    if wh.kind == "bigquery" and not wh.project:
        problems.append(Problem(("warehouse", "project"), "required for a bigquery warehouse"))
    if wh.kind == "bigquery" and wh.project and not PROJECT_ID.match(wh.project):
        problems.append(
            Problem(("warehouse", "project"), f"{wh.project!r} is not a Google Cloud project id")
        )
    for key in ("billing_project", "quota_project"):
        other = getattr(wh, key)
        if wh.kind == "bigquery" and other and not PROJECT_ID.match(other):
            problems.append(
                Problem(("warehouse", key), f"{other!r} is not a Google Cloud project id")
            )
    if wh.kind == "bigquery" and wh.impersonate and "@" not in wh.impersonate:
        problems.append(Problem(("warehouse", "impersonate"), "expected a service account email"))
    if (
        wh.kind == "bigquery"
        and wh.api_endpoint
        and not wh.api_endpoint.startswith(("http://", "https://"))
    ):
        problems.append(
            Problem(("warehouse", "api_endpoint"), "expected a URL such as http://localhost:9050")
        )
    return problems


def _calendar(config: Config) -> list[Problem]:
    cal = config.calendar
    problems = []
    if not isinstance(cal.end, str) and cal.start > cal.end:
        problems.append(Problem(("calendar", "end"), f"{cal.end} is before start {cal.start}"))
    seen: set[str] = set()
    ordered = sorted(enumerate(cal.seasons), key=lambda pair: pair[1].start)
    for i, season in enumerate(cal.seasons):
        at: KeyPath = ("calendar", "seasons", i)
        if season.start > season.end:
            problems.append(Problem((*at, "end"), f"{season.end} is before start {season.start}"))
        if season.name in seen:
            problems.append(Problem((*at, "name"), f"season {season.name!r} is given twice"))
        seen.add(season.name)
    for (_, earlier), (j, later) in itertools.pairwise(ordered):
        if later.start <= earlier.end:
            problems.append(
                Problem(
                    ("calendar", "seasons", j, "start"),
                    f"season {later.name!r} overlaps season {earlier.name!r}",
                )
            )
    return problems


def _names(config: Config) -> list[Problem]:
    problems = []
    phases: set[str] = set()
    processors: set[str] = set()
    for i, phase in enumerate(config.phases):
        if phase.name in phases:
            problems.append(Problem(("phases", i, "name"), f"phase {phase.name!r} is given twice"))
        phases.add(phase.name)
        for j, proc in enumerate(phase.processors):
            if proc.name in processors:
                problems.append(
                    Problem(
                        ("phases", i, "processors", j, "name"),
                        f"processor {proc.name!r} is given twice (names are unique across phases)",
                    )
                )
            processors.add(proc.name)
    return problems


class _Unknown:
    """`unknown processor 'scr'; did you mean 'src'?` A suggestion compares the name with every
    known one, so a file of thousands of unknown names would take minutes; only the first
    problem is shown and each rule finds its problems in file order, so the first few names get
    a suggestion and the rest none."""

    def __init__(self, suggestions: int = 20) -> None:
        self._left = suggestions

    def __call__(self, name: str, known: list[str], what: str = "processor") -> str:
        self._left -= 1
        close = difflib.get_close_matches(name, known, n=1) if self._left >= 0 else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {what} {name!r}{hint}"


def _dependencies(config: Config) -> list[Problem]:
    problems = []
    _unknown = _Unknown()
    phase_index = {p.name: i for i, phase in enumerate(config.phases) for p in phase.processors}
    known = list(phase_index)
    graph: dict[str, list[str]] = {}
    where: dict[str, KeyPath] = {}
    for i, phase in enumerate(config.phases):
        for j, proc in enumerate(phase.processors):
            at: KeyPath = ("phases", i, "processors", j)
            where[proc.name] = (*at, "depends_on")
            graph[proc.name] = []
            for k, dep in enumerate(proc.depends_on):
                if dep not in phase_index:
                    problems.append(Problem((*at, "depends_on", k), _unknown(dep, known)))
                elif phase_index[dep] > i:
                    later = config.phases[phase_index[dep]].name
                    problems.append(
                        Problem(
                            (*at, "depends_on", k),
                            f"{dep!r} belongs to a later phase ({later!r}); a processor may "
                            "depend on its own phase or earlier ones",
                        )
                    )
                else:
                    graph[proc.name].append(dep)
            share = proc.min_share_of
            if share and share.processor not in phase_index:
                problems.append(
                    Problem((*at, "min_share_of", "processor"), _unknown(share.processor, known))
                )
            if proc.min_rows_per_calendar_row and not config.calendar.expected_dates:
                problems.append(
                    Problem(
                        (*at, "min_rows_per_calendar_row"),
                        "needs calendar.expected_dates (the rows per date it multiplies)",
                    )
                )
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        # graphlib reports the cycle from a dependency to its dependents; show it as "needs".
        chain = " -> ".join(reversed(cycle))
        problems.append(Problem(where[cycle[0]], f"dependency cycle: {chain}"))
    return problems


def _commands(config: Config) -> list[Problem]:
    problems = []
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for i, phase in enumerate(config.phases):
        for j, proc in enumerate(phase.processors):
            for key in THROTTLE_KEYS:
                for k, pattern in enumerate(getattr(proc, key)):
                    try:
                        re.compile(pattern, re.IGNORECASE)
                    except re.error as exc:
                        problems.append(
                            Problem(
                                ("phases", i, "processors", j, key, k),
                                f"not a valid regular expression: {exc}",
                            )
                        )
            for k, arg in enumerate(proc.command or ()):
                if "\0" in arg:
                    problems.append(Problem(("phases", i, "processors", j, "command", k), NO_NUL))
                for name in PLACEHOLDER.findall(arg):
                    if name not in PLACEHOLDERS:
                        problems.append(
                            Problem(
                                ("phases", i, "processors", j, "command", k),
                                f"unknown placeholder {{{name}}} (allowed: {allowed})",
                            )
                        )
    return problems


def _environment(config: Config) -> list[Problem]:
    problems = []
    for i, phase in enumerate(config.phases):
        for j, proc in enumerate(phase.processors):
            for name, value in proc.env.items():
                at: KeyPath = ("phases", i, "processors", j, "env", name)
                if not ENV_NAME.fullmatch(name):
                    problems.append(
                        Problem(
                            at,
                            f"{name!r} is not an environment variable name "
                            "(letters, digits and _, not starting with a digit)",
                        )
                    )
                elif "\0" in value:
                    problems.append(Problem(at, f"the value {NO_NUL}"))
    return problems


def _preflight(config: Config) -> list[Problem]:
    problems = []
    _unknown = _Unknown()
    phases = [ph.name for ph in config.phases]
    processors = [p.name for p in config.processors]
    names: set[str] = set()
    for i, check in enumerate(config.preflight):
        at: KeyPath = ("preflight", i)
        if check.name in names:
            problems.append(Problem((*at, "name"), f"check {check.name!r} is given twice"))
        names.add(check.name)
        if isinstance(check, CommandCheck):
            for k, arg in enumerate(check.command):
                if "\0" in arg:
                    problems.append(Problem((*at, "command", k), NO_NUL))
                for name in PLACEHOLDER.findall(arg):
                    if name not in ("python", "config"):
                        problems.append(
                            Problem(
                                (*at, "command", k),
                                f"only {{python}} and {{config}} may appear here, not {{{name}}}",
                            )
                        )
        if isinstance(check, QueryCheck) and (check.op == "between") != isinstance(
            check.value, tuple
        ):
            problems.append(
                Problem((*at, "value"), "between takes a list of two values; other ops take one")
            )
        if isinstance(check, CoverageCheck):
            if (check.phase is None) == (check.processor is None):
                problems.append(Problem(at, "a coverage check needs one of phase, processor"))
            elif check.phase and check.phase not in phases:
                problems.append(Problem((*at, "phase"), _unknown(check.phase, phases, "phase")))
            elif check.processor and check.processor not in processors:
                problems.append(Problem((*at, "processor"), _unknown(check.processor, processors)))
    return problems
