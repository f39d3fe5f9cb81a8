"""One line at the top: engine state and badges, progress, throughput, ETA, concurrency, where
we are.

Always one line (a second one took a row from the heatmap at 80 and 160 columns). What does
not fit is shortened, then left out, least useful first: the scan cost, the concurrency, where
the data lives, the coverage time, the engine's details, then the run's detail. The engine
state, READ-ONLY and the badges (short marks a caller keeps there: a cooldown, an unfinished
run) are never left out; a line still too long ends in an ellipsis rather than wrapping.

Built as Text (never markup); names from the config, the engine's host and badges lose their
control characters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.style import StyleType
from rich.text import Text
from textual.widget import Widget

from core.config import Config
from core.engine.api import EngineSnapshot, ItemState, PauseView
from core.printable import strip_controls
from core.progress import describe

STATE_STYLE = {
    "idle": "dim",
    "running": "bold green",
    "paused": "bold yellow",
    "stopping": "bold red",
    "finished": "bold cyan",
}

#: Shrink levels, in the order they are reached: each shortens or leaves out one part.
(
    _SCAN_GONE,
    _CONCURRENCY_GONE,
    _WHERE_SHORT,
    _PROGRESS_SHORT,
    _WHERE_GONE,
    _COVERAGE_GONE,
    _ENGINE_SHORT,
    _PROGRESS_SHORTER,
    _ENGINE_GONE,
    _REFRESHING_SHORT,
    _PROGRESS_SHORTEST,
) = range(1, 12)
_LEVELS = range(_PROGRESS_SHORTEST + 1)

_GAP = "  "


@dataclass(frozen=True)
class _Part:
    """One part of the line: its forms, fullest first (an empty one leaves the part out), and
    the shrink level from which each next form replaces the one before."""

    forms: tuple[Text, ...]
    steps: tuple[int, ...] = ()

    def at(self, level: int) -> Text:
        return self.forms[sum(1 for step in self.steps if step <= level)]


def pause_badges(pauses: tuple[PauseView, ...]) -> dict[str, tuple[str, StyleType] | None]:
    """The badges for the warehouse's throttling, by key (None: that badge goes): a daily quota
    pause in red, a rate cooldown in yellow, each naming its phases and when it ends."""

    def badge(tier: str, mark: str, style: str) -> tuple[str, StyleType] | None:
        held = [p for p in pauses if p.tier == tier]
        if not held:
            return None
        phases = ", ".join(sorted({p.phase for p in held}))
        until = time.strftime("%H:%M", time.localtime(max(p.until for p in held)))
        return f"{mark} {held[0].label} · {phases} until {until}", style

    return {
        "daily": badge("daily", "⏸", "bold white on dark_red"),
        "cooldown": badge("rate", "❄", "bold yellow"),
    }


def _text(*pieces: tuple[str, StyleType]) -> Text:
    text = Text()
    for piece, style in pieces:
        text.append(strip_controls(piece), style)
    return text


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, config: Config, read_only: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._config = config
        self._read_only = read_only
        self._snapshot: EngineSnapshot | None = None
        self._refreshing = False
        self._coverage_note = ""
        self._scan_cost = ""
        self._engine = ""
        #: key -> (text, style), in the order first set
        self._badges: dict[str, tuple[str, StyleType]] = {}

    def show(
        self,
        snapshot: EngineSnapshot | None = None,
        *,
        refreshing: bool | None = None,
        coverage_note: str | None = None,
        scan_cost: str | None = None,
        engine: str | None = None,
    ) -> None:
        """`engine`: which engine this dashboard watches, in a few words, its parts separated
        by " · " ("": none)."""
        if snapshot is not None:
            self._snapshot = snapshot
        if engine is not None:
            self._engine = engine
        if refreshing is not None:
            self._refreshing = refreshing
        if coverage_note is not None:
            self._coverage_note = coverage_note
        if scan_cost is not None:
            self._scan_cost = scan_cost
        self.refresh()

    def set_badge(self, key: str, text: str | None, style: StyleType = "bold yellow") -> None:
        """Keep a short mark next to the engine state until it is set to None: what must stay
        in sight whatever the width (a phase cooling down, a run that did not finish)."""
        if text is None:
            self._badges.pop(key, None)
        else:
            self._badges[key] = (text, style)
        self.refresh()

    def render(self) -> Text:
        parts = self._parts()
        room = self.content_size.width
        for level in _LEVELS:
            line = Text(_GAP).join(text for part in parts if (text := part.at(level)))
            if line.cell_len <= room:
                break
        line.no_wrap = True
        line.overflow = "ellipsis"
        line.end = ""
        return line

    def _parts(self) -> list[_Part]:
        snap = self._snapshot
        state = snap.state if snap else "idle"
        if (
            snap
            and state == "running"
            and snap.count(ItemState.RUNNING) == 0
            and not snap.count(ItemState.PENDING)
        ):
            state = "idle"
        parts = [_Part((_text((f"● {state}", STATE_STYLE.get(state, ""))),))]
        # Marks that change what a key press does, or that must not be missed, come first and
        # stay whatever the width.
        if self._read_only:
            parts.append(_Part((_text(("READ-ONLY", "bold magenta")),)))
        parts += [_Part((_text((text, style)),)) for text, style in self._badges.values()]
        if self._refreshing:
            parts.append(
                _Part(
                    (_text(("⟳ refreshing", "yellow")), _text(("⟳", "yellow"))),
                    (_REFRESHING_SHORT,),
                )
            )
        if snap and snap.run_id is not None:
            parts += self._run_parts(snap)
        if self._engine:
            first = self._engine.split(" · ")[0]
            parts.append(
                _Part(
                    (_text((self._engine, "dim")), _text((first, "dim")), Text()),
                    (_ENGINE_SHORT, _ENGINE_GONE),
                )
            )
        warehouse = self._config.warehouse
        config_name = self._config.path.name
        parts.append(
            _Part(
                (
                    _text((f"{warehouse.label} · {config_name}", "dim")),
                    _text((f"{warehouse.kind} · {config_name}", "dim")),
                    Text(),
                ),
                (_WHERE_SHORT, _WHERE_GONE),
            )
        )
        if self._coverage_note:
            parts.append(_Part((_text((self._coverage_note, "dim")), Text()), (_COVERAGE_GONE,)))
        if self._scan_cost:
            parts.append(_Part((_text((self._scan_cost, "dim")), Text()), (_SCAN_GONE,)))
        return parts

    def _run_parts(self, snap: EngineSnapshot) -> list[_Part]:
        done, total = snap.count(ItemState.DONE), snap.total
        running, queued = snap.count(ItemState.RUNNING), snap.count(ItemState.PENDING)
        failed = snap.count(ItemState.FAILED)
        failed_style = "bold red" if failed else ""
        rate = f"{snap.forecast.rate_per_hour:.0f}/h" if snap.forecast.rate_per_hour else "--/h"
        eta = describe(snap.forecast)
        progress = _Part(
            (
                _text(
                    (f"run #{snap.run_id}  {done}/{total} done · {running} running · ", ""),
                    (f"{queued} queued · ", ""),
                    (f"{failed} failed", failed_style),
                    (f" · {rate} · {eta}", ""),
                ),
                _text(
                    (f"#{snap.run_id} {done}/{total} · {running} run · {queued} q · ", ""),
                    (f"{failed} failed", failed_style),
                    (f" · {rate} · {eta}", ""),
                ),
                _text(
                    (f"#{snap.run_id} {done}/{total} · ", ""),
                    (f"{failed} failed", failed_style),
                    (f" · {eta}", ""),
                ),
                _text(
                    (f"#{snap.run_id} {done}/{total} · ", ""), (f"{failed} failed", failed_style)
                ),
            ),
            (_PROGRESS_SHORT, _PROGRESS_SHORTER, _PROGRESS_SHORTEST),
        )
        runnable = {
            ph.name for ph in self._config.phases if any(not p.is_source for p in ph.processors)
        }
        concurrency = " ".join(
            f"{phase} {run}/{limit}"
            for phase, (run, limit) in snap.concurrency.items()
            if phase in runnable
        )
        if not concurrency:
            return [progress]
        return [progress, _Part((_text((concurrency, "dim")), Text()), (_CONCURRENCY_GONE,))]
