"""The FHIR REST client against a scripted server on 127.0.0.1: paging, writes, retries, timeouts, errors.

A real server (not mocked ``requests``) so that urllib3's retries, the timeouts and the headers on
the wire are what is tested.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fhircac.fhir.auth import BearerToken
from fhircac.fhir.client import (
    FhirClient,
    FhirError,
    FhirUnavailable,
    Gone,
    NotFound,
    PreconditionFailed,
    VersionConflict,
    weak_etag,
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Callable[[Request], Reply]


class FakeServer:
    """A threaded HTTP server whose answers a test scripts; it records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.responder: Responder = lambda request: Reply(404, "no script")
        self.stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                fake.requests.append(request)
                reply = fake.responder(request)
                if reply.delay and fake.stop.wait(reply.delay):
                    return
                if isinstance(reply.body, dict):
                    data, kind = json.dumps(reply.body).encode(), "application/fhir+json"
                else:
                    data, kind = (reply.body or "").encode(), "text/plain"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (read timeout)

            do_GET = do_POST = do_PUT = do_DELETE = handle_one

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.base = f"{self.origin}/fhir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def script(self, *replies: Reply) -> None:
        """Answer with these replies in order (the last one repeats)."""
        queue = list(replies)
        self.responder = lambda request: queue.pop(0) if len(queue) > 1 else queue[0]

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


def fast_client(base: str, **kwargs: Any) -> FhirClient:
    options: dict[str, Any] = {
        "retries": 2,
        "backoff_factor": 0.01,
        "backoff_jitter": 0.01,
        "timeout": (1, 5),
    }
    options.update(kwargs)
    return FhirClient(base, **options)


def outcome(
    diagnostics: str, code: str = "processing", severity: str = "error", **extra: Any
) -> dict[str, Any]:
    issue = {"severity": severity, "code": code, "diagnostics": diagnostics, **extra}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def bundle(entries: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": "ignored"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def entry(resource_type: str, id: str, mode: str = "match") -> dict[str, Any]:
    return {"resource": {"resourceType": resource_type, "id": id}, "search": {"mode": mode}}


# -- search --------------------------------------------------------------------------------------


def test_paging_follows_next_links_and_collects_includes(server: FakeServer) -> None:
    page2 = f"{server.base}?_getpages=abc&_getpagesoffset=2&_count=2&_bundletype=searchset"
    page3 = f"{server.base}?_getpages=abc&_getpagesoffset=4&_count=2&_bundletype=searchset"
    server.script(
        Reply(body=bundle([entry("MedicationStatement", "1"), entry("Medication", "m1", "include")], page2)),
        Reply(body=bundle([entry("MedicationStatement", "2"), entry("Medication", "m1", "include")], page3)),
        Reply(body=bundle([entry("MedicationStatement", "3"), entry("Medication", "m2", "include")])),
    )
    params: dict[str, str | int | list[str]] = {
        "subject": "Patient/123",
        "_lastUpdated": "ge2026-11-21T10:15:25.123Z",
        "_include": ["MedicationStatement:medication"],
        "_sort": "_lastUpdated",
        "_count": 2,
    }
    result = fast_client(server.base).search_all("MedicationStatement", params)

    assert [r["id"] for r in result.matches] == ["1", "2", "3"]
    assert [r["id"] for r in result.includes] == ["m1", "m2"]  # m1 was on two pages: listed once
    assert len(result.resources) == 5
    first, second, third = server.requests
    assert first.path == "/fhir/MedicationStatement"
    assert first.query == {
        "subject": ["Patient/123"],
        "_lastUpdated": ["ge2026-11-21T10:15:25.123Z"],
        "_include": ["MedicationStatement:medication"],
        "_sort": ["_lastUpdated"],
        "_count": ["2"],
    }
    assert second.path == third.path == "/fhir"
    assert second.query["_getpagesoffset"] == ["2"] and third.query["_getpagesoffset"] == ["4"]
    assert all(r.headers["cache-control"] == "no-cache" for r in server.requests)


def test_search_yields_pages_and_search_resources_flattens(server: FakeServer) -> None:
    server.script(Reply(body=bundle([entry("Observation", "o1"), entry("Patient", "p1", "include")])))
    client = fast_client(server.base)
    pages = list(client.search("Observation", [("code", "http://loinc.org|2093-3"), ("_count", "50")]))
    assert len(pages) == 1 and pages[0]["resourceType"] == "Bundle"
    assert server.requests[0].query["code"] == ["http://loinc.org|2093-3"]
    assert [r["id"] for r in client.search_resources("Observation")] == ["o1", "p1"]


@pytest.mark.parametrize(
    "next_url",
    [
        "http://localhost:{port}/fhir?_getpages=x",
        "http://127.0.0.1:1/fhir?_getpages=x",
        "https://127.0.0.1:{port}/fhir",
    ],
)
def test_next_link_to_another_server_is_refused(server: FakeServer, next_url: str) -> None:
    server.script(Reply(body=bundle([entry("Observation", "o1")], next_url.format(port=server.port))))
    with pytest.raises(FhirError, match="refusing a next link"):
        fast_client(server.base).search_resources("Observation")
    assert len(server.requests) == 1


def test_paging_loop_is_refused(server: FakeServer) -> None:
    server.script(Reply(body=bundle([entry("Observation", "o1")], f"{server.base}?_getpages=same")))
    with pytest.raises(FhirError, match="loops"):
        fast_client(server.base).search_resources("Observation")


# -- read, create, update, transaction, validate, metadata ---------------------------------------------


def test_read_and_its_errors(server: FakeServer) -> None:
    client = fast_client(server.base)
    server.script(Reply(body={"resourceType": "Patient", "id": "p1"}))
    assert client.read("Patient", "p1") == {"resourceType": "Patient", "id": "p1"}
    assert server.requests[-1].path == "/fhir/Patient/p1"
    assert "cache-control" not in server.requests[-1].headers
    server.script(Reply(404, outcome("Resource Patient/p2 is not known", "not-found")))
    with pytest.raises(NotFound, match="not known") as not_found:
        client.read("Patient", "p2")
    assert not_found.value.status == 404 and not_found.value.outcome is not None
    server.script(Reply(410, outcome("Resource was deleted", "deleted")))
    with pytest.raises(Gone):
        client.read("Patient", "p3")
    server.script(Reply(200, "<html>proxy login</html>"))
    with pytest.raises(FhirError, match="non-JSON"):
        client.read("Patient", "p4")
    with pytest.raises(ValueError):
        client.read("Patient", "../metadata")
    with pytest.raises(ValueError):
        client.read("patient?x=1", "p1")


def test_conditional_create_created_then_existing(server: FakeServer) -> None:
    client = fast_client(server.base)
    resource = {"resourceType": "RiskAssessment", "status": "final"}
    stored = {**resource, "id": "45", "meta": {"versionId": "1"}}
    location = f"{server.base}/RiskAssessment/45/_history/1"
    server.script(Reply(201, stored, {"Location": location, "ETag": 'W/"1"'}))
    created = client.create(resource, if_none_exist="identifier=https://fhircac.org/fhir/sid/assessment|ra-1")
    assert created.created and created.status == 201
    assert created.location == location and created.etag == 'W/"1"' and created.resource == stored
    sent = server.requests[-1]
    assert sent.method == "POST" and sent.path == "/fhir/RiskAssessment"
    assert sent.headers["if-none-exist"] == "identifier=https://fhircac.org/fhir/sid/assessment|ra-1"
    assert sent.headers["prefer"] == "return=representation"
    assert sent.json() == resource

    server.script(Reply(200, stored))
    existing = client.create(
        resource, if_none_exist="identifier=https://fhircac.org/fhir/sid/assessment|ra-1"
    )
    assert not existing.created and existing.status == 200 and existing.resource == stored

    server.script(Reply(201, None, {"Location": location}))  # a server that ignores Prefer
    assert client.create(resource).resource is None
    assert "if-none-exist" not in server.requests[-1].headers


def test_update_sends_weak_etag_and_maps_conflicts(server: FakeServer) -> None:
    client = fast_client(server.base)
    care_plan = {"resourceType": "CarePlan", "id": "45", "status": "revoked", "intent": "plan"}
    for given in ("3", 3, 'W/"3"', '"3"'):
        server.script(Reply(200, {**care_plan, "meta": {"versionId": "4"}}, {"ETag": 'W/"4"'}))
        result = client.update(care_plan, if_match=given)
        assert server.requests[-1].headers["if-match"] == 'W/"3"'
        assert result.etag == 'W/"4"' and not result.created
    assert server.requests[-1].method == "PUT" and server.requests[-1].path == "/fhir/CarePlan/45"

    hapi = outcome("HAPI-0989: Trying to update CarePlan/45/_history/2 but this is not the current version")
    server.script(Reply(409, hapi))
    with pytest.raises(VersionConflict, match="HAPI-0989") as conflict:
        client.update(care_plan, if_match="2")
    assert conflict.value.status == 409
    server.script(Reply(412, outcome("version mismatch")))
    with pytest.raises(VersionConflict):
        client.update(care_plan, if_match="2")
    server.script(Reply(412, outcome("Failed to CREATE resource with match URL: multiple matches")))
    with pytest.raises(PreconditionFailed, match="multiple matches"):
        client.create({"resourceType": "CarePlan"}, if_none_exist="identifier=x|y")
    with pytest.raises(ValueError):
        client.update({"resourceType": "CarePlan"})


def test_weak_etag_refuses_garbage() -> None:
    assert weak_etag(' W/"12" ') == 'W/"12"'
    with pytest.raises(ValueError):
        weak_etag("1 2")


def test_transaction_posts_to_base(server: FakeServer) -> None:
    response = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "201"}}],
    }
    server.script(Reply(200, response))
    request = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    assert fast_client(server.base).transaction(request) == response
    assert server.requests[-1].method == "POST" and server.requests[-1].path == "/fhir"
    assert server.requests[-1].headers["prefer"] == "return=minimal"
    with pytest.raises(ValueError):
        fast_client(server.base).transaction({"resourceType": "Bundle", "type": "collection"})


@pytest.mark.parametrize("status", [200, 400, 412, 422])
def test_validate_returns_the_outcome(server: FakeServer, status: int) -> None:
    failed = outcome("Observation.code: minimum required = 1", "required", expression=["Observation.code"])
    server.script(Reply(status, failed))
    profile = "https://fhircac.org/fhir/StructureDefinition/cac-observation"
    result = fast_client(server.base).validate({"resourceType": "Observation"}, profile=profile)
    assert result == failed
    assert server.requests[-1].path == "/fhir/Observation/$validate"
    assert server.requests[-1].query == {"profile": [profile]}


def test_validate_without_outcome_is_an_error(server: FakeServer) -> None:
    server.script(Reply(400, "bad request"))
    with pytest.raises(FhirError, match="HTTP 400: bad request"):
        fast_client(server.base).validate({"resourceType": "Observation"})
    assert server.requests[-1].query == {}


def test_capabilities_and_headers(server: FakeServer) -> None:
    server.script(Reply(body={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}))
    client = fast_client(server.base)
    assert client.capabilities()["fhirVersion"] == "4.0.1"
    get = server.requests[-1]
    assert get.path == "/fhir/metadata"
    assert get.headers["accept"] == "application/fhir+json"
    assert get.headers["user-agent"].startswith("fhircac/")
    assert "content-type" not in get.headers
    server.script(Reply(201, {"resourceType": "Provenance", "id": "1"}))
    client.create({"resourceType": "Provenance"})
    post = server.requests[-1]
    assert post.headers["content-type"].startswith("application/fhir+json")
    assert post.headers["accept"] == "application/fhir+json"


def test_redirect_is_not_followed(server: FakeServer) -> None:
    server.script(Reply(301, "", {"Location": "https://elsewhere.example/fhir/metadata"}))
    with pytest.raises(FhirError, match="redirect to /fhir/metadata"):
        fast_client(server.base).capabilities()
    assert len(server.requests) == 1


# -- retries, timeouts, unavailable ----------------------------------------------------------------


def test_503_then_200_succeeds_after_a_retry(server: FakeServer) -> None:
    server.script(Reply(503, "busy"), Reply(body={"resourceType": "Patient", "id": "p1"}))
    assert fast_client(server.base).read("Patient", "p1")["id"] == "p1"
    assert len(server.requests) == 2


def test_writes_are_retried_too(server: FakeServer) -> None:
    server.script(Reply(502, "bad gateway"), Reply(201, {"resourceType": "CarePlan", "id": "1"}))
    assert (
        fast_client(server.base).create({"resourceType": "CarePlan"}, if_none_exist="identifier=a|b").created
    )
    assert [r.method for r in server.requests] == ["POST", "POST"]
    assert server.requests[0].body == server.requests[1].body


def test_429_honours_retry_after(server: FakeServer) -> None:
    server.script(
        Reply(429, "slow down", {"Retry-After": "1"}), Reply(body={"resourceType": "Patient", "id": "p"})
    )
    started = time.monotonic()
    fast_client(server.base).read("Patient", "p")
    assert time.monotonic() - started >= 0.9
    assert len(server.requests) == 2


def test_500_until_retries_run_out(server: FakeServer) -> None:
    server.script(Reply(500, outcome("HAPI-0000: database is on fire", "exception", severity="fatal")))
    with pytest.raises(FhirError, match="database is on fire") as failure:
        fast_client(server.base, retries=2).read("Patient", "p")
    assert failure.value.status == 500
    assert "fatal exception" in str(failure.value)
    assert len(server.requests) == 3  # the first try and two retries


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_unavailable_quickly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    base = f"http://127.0.0.1:{closed_port()}/fhir"
    started = time.monotonic()
    with pytest.raises(FhirUnavailable, match="connection refused") as failure:
        fast_client(base).search_resources("Observation", {"identifier": "http://hospital.example/mrn|123"})
    assert time.monotonic() - started < 5
    assert failure.value.status is None
    assert base in str(failure.value)
    # the query (it may name a patient) stays out of messages, and out of urllib3's retry warnings
    assert "mrn" not in str(failure.value)
    assert "Retrying" in caplog.text and "mrn" not in caplog.text


def test_read_timeout_is_enforced(server: FakeServer) -> None:
    server.script(Reply(body={"resourceType": "Patient", "id": "p"}, delay=5))
    started = time.monotonic()
    with pytest.raises(FhirUnavailable, match="read timed out"):
        fast_client(server.base, timeout=(1, 0.3), retries=1).read("Patient", "p")
    assert time.monotonic() - started < 3
    assert len(server.requests) == 2  # a read timeout is retried


# -- messages ------------------------------------------------------------------------------------------


def test_error_message_from_operation_outcome(server: FakeServer) -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "required",
                "diagnostics": "subject missing",
                "expression": ["Obs.subject"],
            },
            {
                "severity": "warning",
                "code": "value",
                "details": {"text": "odd unit"},
                "location": ["Obs.value"],
            },
        ],
    }
    server.script(Reply(400, body))
    with pytest.raises(FhirError) as failure:
        fast_client(server.base).create({"resourceType": "Observation"})
    message = str(failure.value)
    assert "POST /fhir/Observation → HTTP 400" in message
    assert "error required: subject missing at Obs.subject" in message
    assert "warning value: odd unit at Obs.value" in message
    assert failure.value.outcome == body


def test_non_outcome_error_body_is_cut_short(server: FakeServer) -> None:
    server.script(Reply(400, "x" * 5000))
    with pytest.raises(FhirError) as failure:
        fast_client(server.base).read("Patient", "p")
    assert failure.value.status == 400 and failure.value.outcome is None
    assert len(str(failure.value)) < 400


def test_no_token_in_any_message(server: FakeServer) -> None:
    token = "s3cr3t-t0ken"
    client = fast_client(server.base, auth=BearerToken(token), retries=0)
    messages = []
    for reply in (
        Reply(400, f"rejected Authorization: Bearer {token}"),
        Reply(500, outcome(f"bad header Bearer {token}")),
        Reply(404, outcome("not found")),
        Reply(401, outcome("token expired")),
        Reply(200, "not json"),
    ):
        server.script(reply)
        with pytest.raises(FhirError) as failure:
            client.read("Patient", "p")
        messages.append(str(failure.value))
    with pytest.raises(FhirUnavailable) as unavailable:
        fast_client(f"http://127.0.0.1:{closed_port()}/fhir", auth=BearerToken(token), retries=0).read(
            "Patient", "p"
        )
    messages.append(str(unavailable.value))
    assert all(token not in message for message in messages), messages
    assert server.requests[0].headers["authorization"] == f"Bearer {token}"
    assert len(server.requests) == 5  # a static token is not retried on 401
    assert token not in repr(client.auth)
