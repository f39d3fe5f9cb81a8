"""Start a run: range, phase and reprocess mode, with the plan summary before confirming.

What is typed (echoed back in error messages) and the plan's names come from the operator and the
config: they are drawn literally (`tui.text.literal`), never parsed as markup.
"""

from __future__ import annotations

from datetime import date

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from core.config.values import parse_date
from core.coverage import Coverage
from core.engine.api import RunRequest
from core.planner import REPROCESS_CHOICES, Plan, make_plan
from tui.text import literal


def plan_summary(plan: Plan) -> str:
    if not plan.items:
        return plan.next_action()
    lines = [
        f"{len(plan.items)} commands fill {plan.target_cells} processor-dates "
        f"over {len(plan.expected_dates)} expected dates"
        + (f"; {plan.blocked_cells} cells blocked" if plan.blocked_cells else "")
    ]
    for step in plan.steps:
        limit = step.phase.max_parallel
        how = "sequential" if limit == 1 else f"up to {limit} in parallel"
        after = f" — after {', '.join(step.upstream)}" if step.upstream else ""
        lines.append(
            f"Step {step.number} · {step.phase.label} · {', '.join(step.processors)} ({how}){after}"
        )
    for gate in plan.gates:
        if not gate.holds_now:
            verdict = "will be met" if gate.reachable else "CANNOT be met"
            lines.append(f"Gate {gate.phase.label} {gate.min_coverage:.0%}: {verdict}")
    return "\n".join(lines)


class StartRunScreen(ModalScreen[RunRequest | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, coverage: Coverage, start: date, end: date) -> None:
        super().__init__()
        self._coverage = coverage
        self._start = start
        self._end = end
        self._request: RunRequest | None = None

    def compose(self) -> ComposeResult:
        config = self._coverage.config
        with Vertical(classes="dialog dialog--wide"):
            yield Label("Start a run", classes="dialog--title")
            with Horizontal(classes="dialog--row"):
                yield Input(self._start.isoformat(), placeholder="start", id="start")
                yield Input(self._end.isoformat(), placeholder="end", id="end")
                yield Select(
                    [
                        (literal(ph.label, newlines=False), ph.name)
                        for ph in config.phases
                        if any(not p.is_source for p in ph.processors)
                    ],
                    prompt="All phases",
                    id="phase",
                )
                yield Select(
                    [(f"{c} cells", c) for c in REPROCESS_CHOICES],
                    value="missing",
                    allow_blank=False,
                    id="reprocess",
                )
            with VerticalScroll(classes="dialog--summary"):
                yield Static("", id="summary", markup=False)
            with Horizontal(classes="dialog--buttons"):
                yield Button("Start", variant="success", id="go", disabled=True)
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self._replan()

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self) -> None:
        self._replan()

    def _replan(self) -> None:
        summary = self.query_one("#summary", Static)
        button = self.query_one("#go", Button)
        # Until the plan of what is typed now is shown, nothing may start the previous one.
        self._request = None
        button.disabled = True
        try:
            start = parse_date(self.query_one("#start", Input).value)
            end = parse_date(self.query_one("#end", Input).value)
        except ValueError as exc:
            summary.update(literal(str(exc), "red"))
            button.disabled = True
            return
        cal = self._coverage.calendar
        if not (cal.start <= start <= end <= cal.end):
            summary.update(
                literal(f"the range must lie within {cal.start} … {cal.end}, in order", "red")
            )
            button.disabled = True
            return
        phase = self.query_one("#phase", Select).value
        reprocess = self.query_one("#reprocess", Select).value
        request = RunRequest(
            start,
            end,
            phases=(str(phase),) if isinstance(phase, str) else (),
            reprocess=reprocess,  # type: ignore[arg-type]
        )
        self._plan(request)

    @work(exclusive=True, thread=True)
    def _plan(self, request: RunRequest) -> None:
        coverage = self._coverage
        window = coverage.calendar
        if (request.start, request.end) != (window.start, window.end):
            coverage = coverage.window(request.start, request.end)
        plan = make_plan(coverage, phases=request.phases, reprocess=request.reprocess)
        text = plan_summary(plan)
        self.app.call_from_thread(self._show_plan, request, text, bool(plan.items))

    def _show_plan(self, request: RunRequest, text: str, runnable: bool) -> None:
        self._request = request if runnable else None
        self.query_one("#summary", Static).update(literal(text))
        self.query_one("#go", Button).disabled = not runnable

    @on(Button.Pressed, "#go")
    @on(Input.Submitted)
    def _go(self) -> None:
        # Enter in a date field starts too, once the plan for what is typed has been shown.
        if self._request is not None and not self.query_one("#go", Button).disabled:
            self.dismiss(self._request)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
