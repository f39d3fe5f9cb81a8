"""The engine as a service: the process that runs a run also answers on a Unix socket under
state_dir, so dashboards and the CLI can attach, watch and control it, and come and go.

Only the owner gets in: the socket is created 0600 (0660 with `group:` in backfill.yaml), and
there is no TCP port. A client of another protocol version is refused with both versions named.
The engine holds the state_dir lock while it serves, so a socket file found at start-up belongs
to a dead engine and is replaced.
"""

from __future__ import annotations

import grp
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from core.engine.api import RunningEngine
from core.service.protocol import (
    MAX_LINE,
    PROTOCOL,
    ProtocolError,
    command_from_json,
    decode,
    encode,
    reply_to_json,
    snapshot_to_json,
    socket_path,
    who_from_json,
)


@dataclass
class EngineInfo:
    pid: int
    host: str
    #: wall clock the engine process started serving
    since: float
    viewers: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "since": self.since, "viewers": self.viewers}


class EngineServer:
    def __init__(self, engine: RunningEngine, state_dir: Path, *, group: str | None = None) -> None:
        self.engine = engine
        self.path = socket_path(state_dir)
        self.group = group
        self.info = EngineInfo(os.getpid(), socket.gethostname(), time.time())

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept clients until cancelled; the socket file goes with the server."""
        self.path.unlink(missing_ok=True)  # a dead engine's: we hold the lock
        old = os.umask(0o177)  # created 0600: no moment where another user could connect
        try:
            listener = await anyio.create_unix_listener(self.path)
        finally:
            os.umask(old)
        self._permit()
        task_status.started()
        try:
            await listener.serve(self._client)
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            self.path.unlink(missing_ok=True)

    def _permit(self) -> None:
        if self.group is None:
            os.chmod(self.path, 0o600)
            return
        os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
        os.chmod(self.path, 0o660)

    async def _client(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            try:
                await self._converse(stream, reader)
            except (
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.DelimiterNotFound,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                ProtocolError,
                ConnectionError,
            ):
                return  # the client went away, or spoke nonsense: either way, it is gone

    async def _converse(
        self, stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream
    ) -> None:
        hello = decode(await reader.receive_until(b"\n", MAX_LINE)).get("hello")
        if not isinstance(hello, dict):
            raise ProtocolError("a connection opens with a hello")
        if hello.get("protocol") != PROTOCOL:
            await stream.send(
                encode(
                    {
                        "refused": f"this engine speaks backfill protocol {PROTOCOL}, the client "
                        f"{hello.get('protocol')}: use the same backfill version for both"
                    }
                )
            )
            return
        who = who_from_json(hello["who"])
        read_only = bool(hello.get("read_only"))
        viewer = who.client == "dashboard"
        self.info.viewers += viewer
        try:
            await stream.send(encode({"welcome": {"protocol": PROTOCOL, **self.info.to_json()}}))
            while True:
                message = decode(await reader.receive_until(b"\n", MAX_LINE))
                await stream.send(encode(await self._answer(message, who, read_only)))
        finally:
            self.info.viewers -= viewer

    async def _answer(self, message: dict[str, Any], who: Any, read_only: bool) -> dict[str, Any]:
        request_id = message.get("id")
        if "snapshot" in message:
            limit = message.get("limit")
            snap = self.engine.snapshot(
                int(message["snapshot"]), None if limit is None else int(limit)
            )
            return {
                "id": request_id,
                "snapshot": snapshot_to_json(snap),
                "engine": self.info.to_json(),
            }
        if "command" in message:
            if read_only:
                return {"id": request_id, "error": "this client attached read-only"}
            try:
                command = command_from_json(message["command"])
            except ProtocolError as exc:
                return {"id": request_id, "error": str(exc)}
            reply = await self.engine.submit(command, by=who)
            return {"id": request_id, "reply": reply_to_json(reply)}
        return {"id": request_id, "error": "unknown request"}
