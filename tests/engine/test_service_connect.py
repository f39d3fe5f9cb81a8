"""Attaching to an engine that dies as the client knocks is "no engine", never a crash."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import anyio
import pytest

from core.engine.api import Who
from core.service.client import NoEngine, RemoteEngine
from core.service.protocol import socket_path


def test_an_engine_that_closes_the_connection_at_once_reads_as_no_engine(tmp_path: Path):
    # A real socket whose owner accepts and drops every connection (with a reset), as an
    # engine that exits between its accept and the client's hello does: the hello's send
    # fails with anyio.BrokenResourceError, which once escaped to the dashboard's worker.
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(socket_path(tmp_path)))
    listener.listen(64)

    def drop_every_connection() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            conn.close()

    threading.Thread(target=drop_every_connection, daemon=True).start()

    async def knock() -> None:
        for _ in range(20):
            with pytest.raises(NoEngine, match="no engine is running"):
                await RemoteEngine.connect(tmp_path, Who.me("test"))

    try:
        anyio.run(knock)
    finally:
        listener.close()
