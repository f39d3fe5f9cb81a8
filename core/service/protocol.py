"""The wire protocol between an engine process and its clients (dashboards, the CLI).

Newline-delimited JSON over a Unix socket under state_dir: one JSON object per line, each
request carrying an `id` its answer repeats. A connection opens with a hello naming the
protocol version; an engine refuses another version with a message naming both. JSON because
every message is small (a snapshot carries only what changed since the client's last one), it
is readable with `socat`, and it needs no dependency.

Messages, client -> engine:
    {"hello": {"protocol": 1, "who": {...}}}
    {"id": N, "snapshot": SINCE, "limit": ITEMS_OR_NULL}
    {"id": N, "command": {"type": "pause" | ..., ...fields}}
engine -> client:
    {"welcome": {"protocol": 1, "engine": {"pid", "host", "since", "run_id"}}} | {"refused": "..."}
    {"id": N, "snapshot": {...}} | {"id": N, "reply": {"ok", "message", "count"}}
    {"id": N, "error": "..."}
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from core.coverage import Reread
from core.engine.api import (
    CancelAll,
    CancelItem,
    Command,
    EngineSnapshot,
    Exclude,
    ItemState,
    ItemView,
    KnownEmpty,
    Pause,
    PauseView,
    Reply,
    Resume,
    Retry,
    RunRequest,
    SetConcurrency,
    Stop,
    Who,
)
from core.progress import Forecast, PhaseEnd

PROTOCOL = 1
SOCKET_FILE = "engine.sock"
#: a line longer than this is not ours: the connection is dropped
MAX_LINE = 64 * 1024 * 1024

COMMANDS: dict[str, type[Command]] = {
    "pause": Pause,
    "resume": Resume,
    "stop": Stop,
    "cancel_item": CancelItem,
    "cancel_all": CancelAll,
    "retry": Retry,
    "set_concurrency": SetConcurrency,
    "known_empty": KnownEmpty,
    "exclude": Exclude,
}
COMMAND_NAMES = {cls: name for name, cls in COMMANDS.items()}


def who_to_json(who: Who) -> dict[str, Any]:
    return asdict(who)


def who_from_json(data: dict[str, Any]) -> Who:
    return Who(str(data["user"]), str(data["host"]), int(data["pid"]), str(data["client"]))


class ProtocolError(Exception):
    """A message that does not follow this protocol."""


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_FILE


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=_default).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def _default(value: object) -> object:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    raise TypeError(f"cannot send {type(value).__name__}")


# -- commands ------------------------------------------------------------------------------


def command_to_json(command: Command) -> dict[str, Any]:
    return {"type": COMMAND_NAMES[type(command)], **asdict(command)}


def command_from_json(data: dict[str, Any]) -> Command:
    kind = data.get("type")
    cls = COMMANDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown command {kind!r}")
    names = {f.name for f in fields(cls)}
    args = {k: v for k, v in data.items() if k in names}
    if cls in (Retry, KnownEmpty, Exclude) and args.get("dates") is not None:
        args["dates"] = frozenset(date.fromisoformat(d) for d in args["dates"])
    try:
        return cls(**args)
    except TypeError as exc:
        raise ProtocolError(f"bad {kind} command: {exc}") from None


def reply_to_json(reply: Reply) -> dict[str, Any]:
    return asdict(reply)


def reply_from_json(data: dict[str, Any]) -> Reply:
    return Reply(bool(data["ok"]), str(data["message"]), int(data.get("count", 0)))


# -- snapshots -----------------------------------------------------------------------------


def snapshot_to_json(snap: EngineSnapshot) -> dict[str, Any]:
    return {
        "version": snap.version,
        "state": snap.state,
        "run_id": snap.run_id,
        "request": _request_to_json(snap.request),
        "counts": {state.value: n for state, n in snap.counts.items()},
        "concurrency": {phase: list(pair) for phase, pair in snap.concurrency.items()},
        "forecast": asdict(snap.forecast),
        "changed": [_view_to_json(v) for v in snap.changed],
        "rereads": [_reread_to_json(r) for r in snap.rereads],
        "error": snap.error,
        "pauses": [asdict(pause) for pause in snap.pauses],
        "known_empty": None
        if snap.known_empty is None
        else sorted([name, day.isoformat()] for name, day in snap.known_empty),
    }


def _forecast_from_json(data: dict[str, Any]) -> Forecast:
    # An older engine sends no phases; a newer one may send what this client does not know.
    known = {f.name for f in fields(Forecast)} - {"phases"}
    phases = tuple(PhaseEnd(**p) for p in data.get("phases", ()))
    return Forecast(**{k: v for k, v in data.items() if k in known}, phases=phases)


def snapshot_from_json(data: dict[str, Any]) -> EngineSnapshot:
    return EngineSnapshot(
        version=int(data["version"]),
        state=data["state"],
        run_id=data["run_id"],
        request=_request_from_json(data["request"]),
        counts={ItemState(k): int(n) for k, n in data["counts"].items()},
        concurrency={phase: (int(a), int(b)) for phase, (a, b) in data["concurrency"].items()},
        forecast=_forecast_from_json(data["forecast"]),
        changed=tuple(_view_from_json(v) for v in data["changed"]),
        rereads=tuple(_reread_from_json(r) for r in data["rereads"]),
        error=data["error"],
        pauses=tuple(
            PauseView(
                phase=str(p["phase"]),
                processors=tuple(p["processors"]),
                tier=p["tier"],
                until=float(p["until"]),
                reason=str(p["reason"]),
            )
            for p in data.get("pauses", ())
        ),
        known_empty=None
        if data.get("known_empty") is None
        else frozenset((str(name), date.fromisoformat(day)) for name, day in data["known_empty"]),
    )


def _request_to_json(request: RunRequest) -> dict[str, Any]:
    return {
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        **request.key(),
        "max_parallel": request.max_parallel,
    }


def _request_from_json(data: dict[str, Any]) -> RunRequest:
    request = RunRequest.from_key(
        date.fromisoformat(data["start"]), date.fromisoformat(data["end"]), data
    )
    return replace(request, max_parallel=data.get("max_parallel"))


def _view_to_json(view: ItemView) -> list[Any]:
    # A list, not an object: thousands of these travel in a first snapshot.
    return [
        view.id,
        view.processor,
        view.phase,
        [d.isoformat() for d in view.dates],
        view.state.value,
        view.attempt,
        view.started_at,
        view.duration,
        view.exit_code,
        view.reason,
        None if view.log_path is None else str(view.log_path),
        view.outcome,
    ]


def _view_from_json(row: list[Any]) -> ItemView:
    (item_id, processor, phase, dates, state, attempt, started_at, duration, exit_code,
     reason, log_path, outcome) = row  # fmt: skip
    return ItemView(
        id=item_id,
        processor=processor,
        phase=phase,
        dates=tuple(date.fromisoformat(d) for d in dates),
        state=ItemState(state),
        attempt=attempt,
        started_at=started_at,
        duration=duration,
        exit_code=exit_code,
        reason=reason,
        log_path=None if log_path is None else Path(log_path),
        outcome=outcome,
    )


def _reread_to_json(fresh: Reread) -> dict[str, Any]:
    return {
        "start": fresh.start.isoformat(),
        "end": fresh.end.isoformat(),
        "rows": {
            name: {d.isoformat(): n for d, n in per.items()} for name, per in fresh.rows.items()
        },
        "absent": sorted(fresh.absent_tables),
        "measured_at": fresh.measured_at.isoformat(),
    }


def _reread_from_json(data: dict[str, Any]) -> Reread:
    return Reread(
        date.fromisoformat(data["start"]),
        date.fromisoformat(data["end"]),
        {
            name: {date.fromisoformat(d): int(n) for d, n in per.items()}
            for name, per in data["rows"].items()
        },
        frozenset(data["absent"]),
        datetime.fromisoformat(data["measured_at"]),
    )
