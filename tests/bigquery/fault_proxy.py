"""An HTTP proxy in front of the emulator that answers chosen requests with BigQuery's own error
bodies (403 accessDenied, 403 rateLimitExceeded, ...), so the real client meets real errors; and
it keeps what the client sent (bodies, headers), which the emulator does not all record."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Fault:
    method: str
    path_contains: str
    status: int
    reason: str
    message: str
    times: int = 1_000_000  # how many matching requests fail before they pass again
    #: answered with this JSON instead of an error body (a job that never finishes, say)
    body: Any = None
    #: only requests whose body holds this text (one table's job among several)
    body_contains: str = ""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    failed: bool
    body: Any  # the JSON the client sent, or None
    headers: dict[str, str]


@dataclass
class FaultProxy:
    url: str
    faults: list[Fault] = field(default_factory=list)
    #: (method, path, failed?) of every request, in order
    seen: list[tuple[str, str, bool]] = field(default_factory=list)
    #: every request in full, in order
    requests: list[Request] = field(default_factory=list)
    #: seconds each query job request (POST .../queries) is held before it is passed on
    hold_queries: float = 0.0
    #: (location, began, ended) of each query job passed on, by time.monotonic()
    query_spans: list[tuple[str, float, float]] = field(default_factory=list)

    def count(self, method: str, path_contains: str) -> int:
        return sum(m == method and path_contains in p for m, p, _ in self.seen)

    def sent(self, method: str, path_contains: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]


@contextmanager
def fault_proxy(
    upstream: str, faults: list[Fault], *, hold_queries: float = 0.0
) -> Iterator[FaultProxy]:
    target = urlsplit(upstream)
    if target.hostname is None:
        raise ValueError(f"no host in the upstream URL {upstream!r}")
    host = target.hostname
    lock = threading.Lock()
    proxy = FaultProxy("", faults, hold_queries=hold_queries)

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                fault = next(
                    (
                        f
                        for f in proxy.faults
                        if f.times > 0
                        and f.method == self.command
                        and f.path_contains in self.path
                        and f.body_contains in body.decode(errors="replace")
                    ),
                    None,
                )
                if fault is not None:
                    fault.times -= 1
                proxy.seen.append((self.command, self.path, fault is not None))
                proxy.requests.append(
                    Request(
                        self.command,
                        self.path,
                        fault is not None,
                        json.loads(body) if body.startswith(b"{") else None,
                        {k.lower(): v for k, v in self.headers.items()},
                    )
                )
            if fault is not None:
                error = {"reason": fault.reason, "message": fault.message, "domain": "global"}
                payload = json.dumps(
                    fault.body
                    if fault.body is not None
                    else {
                        "error": {"code": fault.status, "message": fault.message, "errors": [error]}
                    }
                ).encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            query = self.command == "POST" and self.path.split("?")[0].endswith("/queries")
            began = time.monotonic()
            if query and proxy.hold_queries:
                time.sleep(proxy.hold_queries)
            conn = http.client.HTTPConnection(host, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()
            if query:
                sent = json.loads(body) if body.startswith(b"{") else {}
                with lock:
                    proxy.query_spans.append((str(sent.get("location")), began, time.monotonic()))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read `seen` instead."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def hung_endpoint() -> Iterator[str]:
    """A server that accepts connections and never answers: a hung BigQuery, or a proxy that
    lost its upstream. Yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # kept open, never read, never written
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
