"""Calls to the caller's ``fhirServer`` are bounded (review finding 8): a total deadline, a size cap,
the base path, loopback only when allowed, and no upstream body in what the caller is told.

The EHR's server is a real HTTP server on 127.0.0.1 (tests/http_stub.py) that misbehaves on purpose.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fhircac.config import Settings
from fhircac.fhir import bounded
from fhircac.fhir.client import FhirClient, FhirUnavailable
from fhircac.web.app import create_app
from tests import cds_builders as cb
from tests import fhir_builders as fb
from tests.http_stub import Stub, huge, stub_server, trickle

VIEW = "/cds-services/cac-patient-view"
ALL_BUT_PATIENT = ["cacScores", "observations", "medicationStatements", "medicationRequests"]
ALL_BUT_PATIENT += ["conditions", "procedures", "familyHistory", "cacCarePlans"]
BOUND = 30.0  # far above the 2 s budget below; the calls used to take minutes (or forever)


def app(tmp_path: Path, **kw: Any) -> Any:
    values: dict[str, Any] = {
        "cds_auth": False,
        "cds_db": str(tmp_path / "cds.sqlite"),
        "cds_fetch_timeout": 1,  # per request; the whole call: 2 s
        "cds_allow_loopback": True,
        "cds_fetch_max_bytes": 1_048_576,
    }
    return create_app(Settings(**{**values, **kw})).test_client()


def view_call(stub: Stub, **body: Any) -> dict[str, Any]:
    """patient-view for p1 with everything prefetched but the Patient (fetched from the stub)."""
    request = cb.request("patient-view", "p1", [fb.patient(), fb.cac(value=150)], ALL_BUT_PATIENT)
    return {**request, "fhirServer": stub.base_url, "fhirAuthorization": cb.authorization("tok"), **body}


def diagnostics(answer: Any) -> str:
    issues = answer.get_json()["issue"]
    return " ".join(f"{issue.get('expression')} {issue['diagnostics']}" for issue in issues)


def test_a_trickling_server_gets_a_412_within_the_calls_deadline(tmp_path: Path) -> None:
    with stub_server() as ehr:
        ehr.routes["/fhir/Patient/p1"] = trickle(b'{"resourceType": "Patient", "id": "p1"}' * 50, 0.05)
        started = time.monotonic()
        answer = app(tmp_path).post(VIEW, json=view_call(ehr))
        elapsed = time.monotonic() - started
    assert answer.status_code == 412, answer.get_data(as_text=True)
    assert "prefetch.patient" in diagnostics(answer)
    assert elapsed < BOUND  # the trickle alone lasts 100 s; each byte came before any read timeout


def test_an_answer_over_the_size_cap_is_not_read_into_memory(tmp_path: Path) -> None:
    with stub_server() as ehr:
        ehr.routes["/fhir/Patient/p1"] = huge(20 * 1_048_576)
        answer = app(tmp_path).post(VIEW, json=view_call(ehr))
    assert answer.status_code == 412
    assert "larger than 1048576 bytes" in diagnostics(answer)


def test_an_upstream_error_body_is_never_echoed(tmp_path: Path) -> None:
    secret = "admin console db=postgres://app:pw@10.0.0.9"
    with stub_server() as ehr:
        ehr.routes["/fhir/Patient/p1"] = (404, secret.encode())
        not_found = app(tmp_path).post(VIEW, json=view_call(ehr))
        ehr.routes["/fhir/Patient/p1"] = (
            500,
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "diagnostics": secret}]},
        )
        failing = app(tmp_path).post(VIEW, json=view_call(ehr))
    for answer in (not_found, failing):
        assert answer.status_code in (200, 412)
        assert "postgres" not in answer.get_data(as_text=True)
    assert "fhirServer answered HTTP 500" in diagnostics(failing)


def test_a_next_link_outside_the_base_path_never_gets_the_token(tmp_path: Path) -> None:
    with stub_server() as ehr:
        origin = ehr.base_url.removesuffix("/fhir")
        ehr.routes["/fhir/Patient/p1"] = (200, fb.patient())
        ehr.routes["/other-tenant/Observation"] = (200, {"resourceType": "Bundle", "type": "searchset"})
        body = view_call(ehr)
        body["prefetch"]["cacScores"]["link"] = [
            {"relation": "next", "url": f"{origin}/other-tenant/Observation?page=2"}
        ]
        answer = app(tmp_path).post(VIEW, json=body)
        assert "/other-tenant/Observation" not in ehr.paths()
        for evil in (f"{origin}/fhir/../other-tenant/Observation", f"{origin}/fhirx/Observation"):
            body["prefetch"]["cacScores"]["link"] = [{"relation": "next", "url": evil}]
            assert app(tmp_path).post(VIEW, json=body).status_code == 412, evil
        assert all(not path.startswith(("/other", "/fhirx")) and ".." not in path for path in ehr.paths())
    assert answer.status_code == 412
    assert "outside the server's base URL" in diagnostics(answer)


def test_a_loopback_fhir_server_needs_the_setting(tmp_path: Path) -> None:
    with stub_server() as ehr:
        ehr.routes["/fhir/Patient/p1"] = (200, fb.patient())
        refused = app(tmp_path, cds_allow_loopback=False).post(VIEW, json=view_call(ehr))
        for host in ("localhost", "[::1]"):
            other = ehr.base_url.replace("127.0.0.1", host)
            body = view_call(ehr, fhirServer=other)
            assert app(tmp_path, cds_allow_loopback=False).post(VIEW, json=body).status_code == 400, host
        userinfo = view_call(ehr, fhirServer=ehr.base_url.replace("//", "//admin:pw@"))
        assert app(tmp_path).post(VIEW, json=userinfo).status_code == 400
        allowed = app(tmp_path).post(VIEW, json=view_call(ehr))
        assert ehr.paths() == ["/fhir/Patient/p1"]  # only the allowed call reached it
    assert refused.status_code == 400 and "FHIRCAC_CDS_ALLOW_LOOPBACK" in diagnostics(refused)
    assert allowed.status_code == 200


def test_the_connected_address_is_checked_not_only_the_name() -> None:
    """A name that resolves to a loopback address is caught on the connected socket."""
    with stub_server() as ehr:
        ehr.routes["/fhir/metadata"] = (200, {"resourceType": "CapabilityStatement"})
        client = FhirClient(ehr.base_url, retries=0)
        bounded.confine(client.session, ehr.base_url, seconds=5, max_bytes=65_536, allow_loopback=False)
        with pytest.raises(FhirUnavailable) as caught:
            client.capabilities()
        assert isinstance(bounded.refusal_of(caught.value), bounded.AddressRefused)
        assert ehr.paths() == []
        allowed = FhirClient(ehr.base_url, retries=0)
        bounded.confine(allowed.session, ehr.base_url, seconds=5, max_bytes=65_536, allow_loopback=True)
        assert allowed.capabilities()["resourceType"] == "CapabilityStatement"
        client.close()
        allowed.close()
