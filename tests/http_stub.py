"""A small HTTP server on 127.0.0.1 for tests of fhircac's outbound calls: an EHR's FHIR server that
checks bearer tokens, records what it was sent, and can misbehave (trickle, send too much, hang)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class Stub:
    base_url: str
    seen: list[Seen] = field(default_factory=list)
    # path (without query) → answer: (status, JSON body) or a callable writing to the handler itself
    routes: dict[str, Any] = field(default_factory=dict)
    token: str | None = None  # when set, any other bearer token gets 401

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]


def trickle(body: bytes, every: float) -> Callable[[BaseHTTPRequestHandler], None]:
    """An answer that sends its body one byte at a time (every ``every`` seconds)."""

    def write(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/fhir+json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(every)

    return write


def huge(size: int) -> Callable[[BaseHTTPRequestHandler], None]:
    """A 200 answer of ``size`` bytes, sent without Content-Length (read until the connection closes)."""

    def write(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/fhir+json")
        handler.send_header("Connection", "close")
        handler.end_headers()
        chunk = b" " * 65_536
        sent = 0
        while sent < size:
            handler.wfile.write(chunk)
            sent += len(chunk)
        handler.close_connection = True

    return write


@contextmanager
def stub_server() -> Iterator[Stub]:
    stub = Stub("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            authorization = self.headers.get("Authorization")
            stub.seen.append(Seen("GET", path, authorization))
            if stub.token is not None and authorization != f"Bearer {stub.token}":
                return self._json(401, {"resourceType": "OperationOutcome", "issue": []})
            answer = stub.routes.get(path)
            if answer is None:
                return self._json(404, {"resourceType": "OperationOutcome", "issue": []})
            if callable(answer):
                try:
                    answer(self)
                except (BrokenPipeError, ConnectionResetError):  # fhircac hung up: what it should do
                    self.close_connection = True
                return None
            status, body = answer
            return self._json(status, body)

        def _json(self, status: int, body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.base_url = f"http://127.0.0.1:{server.server_port}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class BlackHole:
    """A JWKS host that accepts connections and never answers (a firewall drop looks the same)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/jwks.json"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()
