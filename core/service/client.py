"""A client of an engine process: what dashboards and the CLI use to watch and control a run.

One connection, one request at a time (a lock keeps answers in order). The engine going away
(a crash, `kill -9`, a reboot) shows as `EngineGone` on the next call: the kernel closes the
socket the moment the process dies, so a dashboard polling 4 times a second knows within a tick.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from core.engine.api import Command, EngineSnapshot, Reply, Who
from core.errors import UserError
from core.service.protocol import (
    MAX_LINE,
    PROTOCOL,
    ProtocolError,
    command_to_json,
    decode,
    encode,
    reply_from_json,
    snapshot_from_json,
    socket_path,
    who_to_json,
)

#: how long connecting and the hello may take before the engine counts as not there
CONNECT_TIMEOUT_S = 2.0


class NoEngine(UserError):
    """No engine is live for the state_dir (never started, ended, or died)."""


class EngineGone(UserError):
    """The engine this client was attached to went away."""


@dataclass(frozen=True)
class EngineInfo:
    pid: int
    host: str
    since: float
    viewers: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineInfo:
        return cls(int(data["pid"]), str(data["host"]), float(data["since"]), int(data["viewers"]))


class RemoteEngine:
    def __init__(
        self, stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream, info: EngineInfo
    ) -> None:
        self._stream = stream
        self._reader = reader
        self.info = info
        self._lock = anyio.Lock()
        self._ids = itertools.count(1)
        self.gone = False

    @classmethod
    async def connect(cls, state_dir: Path, who: Who, *, read_only: bool = False) -> RemoteEngine:
        path = socket_path(state_dir)
        if not path.exists():
            raise NoEngine(f"no engine is running for {state_dir}")
        try:
            with anyio.fail_after(CONNECT_TIMEOUT_S):
                stream = await anyio.connect_unix(path)
                reader = BufferedByteReceiveStream(stream)
                hello = {"protocol": PROTOCOL, "who": who_to_json(who), "read_only": read_only}
                await stream.send(encode({"hello": hello}))
                answer = decode(await reader.receive_until(b"\n", MAX_LINE))
        except (
            OSError,
            TimeoutError,
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.BrokenResourceError,
        ) as exc:
            # A socket left by an engine that died (or dies as we knock): nobody answers.
            raise NoEngine(
                f"no engine is running for {state_dir} ({exc.__class__.__name__})"
            ) from None
        if "refused" in answer:
            await stream.aclose()
            raise UserError(f"the engine of {state_dir} refused: {answer['refused']}")
        welcome = answer.get("welcome")
        if not isinstance(welcome, dict):
            await stream.aclose()
            raise UserError(f"the engine of {state_dir} answered nonsense: {answer!r:.200}")
        return cls(stream, reader, EngineInfo.from_json(welcome))

    async def snapshot(self, since: int = 0, limit: int | None = None) -> EngineSnapshot:
        answer = await self._call({"snapshot": since, "limit": limit})
        if "snapshot" not in answer:
            raise UserError(f"the engine did not answer a snapshot: {answer.get('error')}")
        if "engine" in answer:
            self.info = EngineInfo.from_json(answer["engine"])
        return snapshot_from_json(answer["snapshot"])

    async def submit(self, command: Command, by: Who | None = None) -> Reply:
        """`by` is who this client said it is when it attached."""
        answer = await self._call({"command": command_to_json(command)})
        if "error" in answer:
            return Reply(False, str(answer["error"]))
        return reply_from_json(answer["reply"])

    async def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            request_id = next(self._ids)
            try:
                await self._stream.send(encode({"id": request_id, **message}))
                answer = decode(await self._reader.receive_until(b"\n", MAX_LINE))
            except (
                OSError,
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
            ) as exc:
                self.gone = True
                raise EngineGone(f"the engine (pid {self.info.pid}) is gone") from exc
        if answer.get("id") != request_id:
            raise ProtocolError(f"answer {answer.get('id')} to request {request_id}")
        return answer

    async def aclose(self) -> None:
        await self._stream.aclose()
