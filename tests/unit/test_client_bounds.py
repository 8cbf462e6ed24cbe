"""The poller's and write-back's FhirClient is bounded per request, in time and size (attack review
2026-12, finding 9: ``fhircac poll --once`` against a trickling server ran 91 s with a 5 s timeout).

A misbehaving HTTP server on 127.0.0.1 (a thread, a raw socket): it trickles its headers or its
body one byte at a time, each byte well inside the socket timeout, or sends a large answer.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fhircac.config import ConfigError
from fhircac.fhir.client import FhirClient, FhirUnavailable, client_from_env

Behaviour = Callable[[socket.socket], None]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n"
BODY = b'{"resourceType":"Patient","id":"p1"}'


def _trickle(data: bytes, pause: float, stop: threading.Event) -> Behaviour:
    def serve(connection: socket.socket) -> None:
        for byte in data:
            if stop.wait(pause):
                return
            connection.sendall(bytes([byte]))

    return serve


@pytest.fixture
def server() -> Iterator[Callable[[Behaviour], str]]:
    """Start a one-behaviour server; yields a function returning its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    behaviour: list[Behaviour] = []
    accepted: list[int] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            with connection:
                try:
                    connection.recv(65536)
                    behaviour[0](connection)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def start(serve: Behaviour) -> str:
        behaviour.append(serve)
        return f"http://127.0.0.1:{listener.getsockname()[1]}/fhir"

    start.stop = stop  # type: ignore[attr-defined]
    start.accepted = accepted  # type: ignore[attr-defined]
    yield start
    stop.set()
    thread.join(timeout=5)
    listener.close()


def _client(base: str, **bounds: float) -> FhirClient:
    return FhirClient(base, timeout=(1.0, 1.0), retries=2, backoff_factor=0.1, **bounds)  # type: ignore[arg-type]


def test_a_server_trickling_its_headers_is_cut_off_at_the_deadline(
    server: Callable[[Behaviour], str],
) -> None:
    stop: threading.Event = server.stop  # type: ignore[attr-defined]
    base = server(_trickle(HEAD % len(BODY) + BODY, 0.3, stop))  # 0.3 s a byte: no socket timeout
    client = _client(base, deadline=1.5)
    started = time.monotonic()
    with pytest.raises(FhirUnavailable, match="longer than the time allowed"):
        client.read("Patient", "p1")
    assert time.monotonic() - started < 4  # the deadline covers the retries too


def test_a_server_trickling_its_body_is_cut_off_at_the_deadline(server: Callable[[Behaviour], str]) -> None:
    stop: threading.Event = server.stop  # type: ignore[attr-defined]
    body = BODY + b" " * 200

    def serve(connection: socket.socket) -> None:
        connection.sendall(HEAD % len(body))
        _trickle(body, 0.3, stop)(connection)

    client = _client(server(serve), deadline=1.5)
    started = time.monotonic()
    with pytest.raises(FhirUnavailable, match="longer than the time allowed"):
        client.read("Patient", "p1")
    assert time.monotonic() - started < 4


def test_an_answer_larger_than_the_cap_is_refused(server: Callable[[Behaviour], str]) -> None:
    padding = b" " * (3 * 1_048_576)

    def serve(connection: socket.socket) -> None:
        body = BODY[:-1] + padding + b"}"
        # no Content-Length: the cap must hold while reading, not only on a declared length
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nConnection: close\r\n\r\n"
        )
        connection.sendall(body)

    client = _client(server(serve), max_bytes=1_048_576)
    with pytest.raises(FhirUnavailable, match="larger than 1048576 bytes"):
        client.read("Patient", "p1")


def test_a_prompt_answer_within_the_bounds_is_read(server: Callable[[Behaviour], str]) -> None:
    base = server(lambda connection: connection.sendall(HEAD % len(BODY) + BODY))
    client = _client(base, deadline=5, max_bytes=1024)
    assert client.read("Patient", "p1") == {"resourceType": "Patient", "id": "p1"}
    assert client.read("Patient", "p1")["id"] == "p1"  # a second request gets a deadline of its own


def test_deadline_and_size_settings() -> None:
    env = {"FHIRCAC_FHIR_BASE_URL": "http://127.0.0.1:9/fhir"}
    client = client_from_env({**env, "FHIRCAC_FHIR_DEADLINE": "7.5", "FHIRCAC_FHIR_MAX_BYTES": "2048"})
    adapter = client.session.get_adapter(client.base_url)
    assert (adapter.seconds, adapter.max_bytes) == (7.5, 2048)  # type: ignore[attr-defined]
    for name, value in (("FHIRCAC_FHIR_DEADLINE", "0"), ("FHIRCAC_FHIR_MAX_BYTES", "12")):
        with pytest.raises(ConfigError, match=name):
            client_from_env({**env, name: value})
