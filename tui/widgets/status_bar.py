"""One line at the top: engine state, progress, throughput, ETA, concurrency, where we are.

Built as a Text (never markup); names from the config and the engine's host lose their control
characters.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from core.config import Config
from core.engine.api import EngineSnapshot, ItemState
from core.printable import strip_controls
from core.progress import describe

STATE_STYLE = {
    "idle": "dim",
    "running": "bold green",
    "paused": "bold yellow",
    "stopping": "bold red",
    "finished": "bold cyan",
}


class StatusBar(Static):
    DEFAULT_CSS = """
    /* Two lines on a narrow terminal rather than losing the warehouse or a READ-ONLY mark. */
    StatusBar { height: auto; max-height: 2; background: $panel; color: $foreground; padding: 0 1; }
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

    def show(
        self,
        snapshot: EngineSnapshot | None = None,
        *,
        refreshing: bool | None = None,
        coverage_note: str | None = None,
        scan_cost: str | None = None,
        engine: str | None = None,
    ) -> None:
        """`engine`: which engine this dashboard watches, in a few words ("": none)."""
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
        self.update(self._render_line())

    def _render_line(self) -> Text:
        snap = self._snapshot
        state = snap.state if snap else "idle"
        if (
            snap
            and state == "running"
            and snap.count(ItemState.RUNNING) == 0
            and not snap.count(ItemState.PENDING)
        ):
            state = "idle"
        text = Text()
        text.append(f"● {state}", STATE_STYLE.get(state, ""))
        # Marks that change what a key press does come first, where no width can cut them off.
        if self._read_only:
            text.append("  READ-ONLY", "bold magenta")
        if self._refreshing:
            text.append("  ⟳ refreshing", "yellow")
        if snap and snap.run_id is not None:
            done, total = snap.count(ItemState.DONE), snap.total
            rate = f"{snap.forecast.rate_per_hour:.0f}/h" if snap.forecast.rate_per_hour else "--/h"
            text.append(
                f"  run #{snap.run_id}  {done}/{total} done · {snap.count(ItemState.RUNNING)} "
                f"running · {snap.count(ItemState.PENDING)} queued · "
            )
            failed = snap.count(ItemState.FAILED)
            text.append(f"{failed} failed", "bold red" if failed else "")
            text.append(f" · {rate} · {describe(snap.forecast)}  ")
            runnable = {
                ph.name for ph in self._config.phases if any(not p.is_source for p in ph.processors)
            }
            text.append(
                strip_controls(
                    " ".join(
                        f"{ph} {run}/{lim}"
                        for ph, (run, lim) in snap.concurrency.items()
                        if ph in runnable
                    )
                ),
                "dim",
            )
        if self._engine:
            text.append(strip_controls(f"  {self._engine}"), "dim")
        where = f"  {self._config.warehouse.label} · {self._config.path.name}"
        text.append(strip_controls(where), "dim")
        if self._coverage_note:
            text.append(strip_controls(f" · {self._coverage_note}"), "dim")
        if self._scan_cost:
            text.append(strip_controls(f" · {self._scan_cost}"), "dim")
        return text
