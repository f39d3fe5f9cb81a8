"""A byte relay between a TCP port and a Unix socket, both ways, for the Ray head of the tests.

The head runs in a network namespace of its own (only a loopback there: what it binds on every
interface is reachable from nowhere else). A Unix socket in the file system is shared across
network namespaces, so the Jobs API crosses over through one: inside, `relay.py unix PATH
tcp PORT` accepts on PATH and connects to 127.0.0.1:PORT (the dashboard); outside,
`serve_tcp_to_unix` (in the tests' process) accepts on 127.0.0.1 and connects to PATH.
Standard library only; one thread per direction per connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Callable


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                s.shutdown(how)


def _pair(a: socket.socket, b: socket.socket) -> None:
    t = threading.Thread(target=_pump, args=(b, a), daemon=True)
    t.start()
    _pump(a, b)
    t.join()
    a.close()
    b.close()


def _serve(listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = connect()
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pair, args=(client, upstream), daemon=True).start()


def serve_tcp_to_unix(path: str) -> tuple[int, socket.socket]:
    """Listens on 127.0.0.1 (a free port, returned) and relays each connection to `path`; the
    listener is returned too: closing it stops the relay."""
    listener = socket.create_server(("127.0.0.1", 0))

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        return s

    threading.Thread(target=_serve, args=(listener, connect), daemon=True).start()
    return listener.getsockname()[1], listener


def main(path: str, port: int) -> None:
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    _serve(listener, lambda: socket.create_connection(("127.0.0.1", port)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
