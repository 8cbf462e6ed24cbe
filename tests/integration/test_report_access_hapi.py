"""Report access bound to the caller, over HTTP with HAPI as fhircac's own FHIR server (review
finding 1): a trusted CDS client used to get a report link for any patient on that server by naming
it in ``context.patientId`` with fabricated prefetch and no ``fhirAuthorization``; the page then
showed the patient's real record, read with fhircac's own credentials.

Also finding 5's "no create-suggestion on the card when fhircac itself writes back to that server".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from hapi_server import HapiServer  # tools/ is on sys.path (conftest.py)

from fhircac.fhir.client import FhirClient
from tests import cds_builders as cb
from tests import fhir_builders as fb
from tests.integration.conftest import EXAMPLES, fhircac_service, load_example, patient_id

pytestmark = pytest.mark.integration

ISS = "https://ehr-report.test"
VIEW_KEYS = ["patient", "cacScores", "observations", "medicationStatements", "medicationRequests"]
VIEW_KEYS += ["conditions", "procedures", "familyHistory", "cacCarePlans"]
REPORT_KEY = "integration-report-access-key-0123456789abcdef"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def victim(hapi: HapiServer) -> dict[str, Any]:
    """A patient whose real record is on HAPI (example 07: a rapid rise, CAC 120 on its last scan)."""
    client = FhirClient(hapi.base_url, retries=2, backoff_factor=0.1)
    try:
        return load_example(client, next(p for p in EXAMPLES if p.name.startswith("07-")))
    finally:
        client.close()


@pytest.fixture(scope="module")
def service(
    hapi: HapiServer, key: ec.EllipticCurvePrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("report-access")
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    clients = {"clients": [{"iss": ISS, "jwks": {"keys": [{**public, "kid": "k1"}]}}]}
    (folder / "clients.json").write_text(json.dumps(clients))
    settings = {
        "FHIRCAC_FHIR_BASE_URL": hapi.base_url,
        "FHIRCAC_REPORT_KEY": REPORT_KEY,
        "FHIRCAC_CDS_CLIENTS": str(folder / "clients.json"),
        "FHIRCAC_CDS_DB": str(folder / "cds.sqlite"),
        "FHIRCAC_CDS_ALLOW_LOOPBACK": "on",
    }
    log_path = folder / "service.log"
    with fhircac_service(settings, log_path) as base_url:
        yield base_url
    log = Path(log_path).read_text()
    assert "access=" not in log and "?" not in "".join(line for line in log.splitlines() if "/report" in line)


def view(base_url: str, key: Any, body: dict[str, Any]) -> dict[str, Any]:
    path = "/cds-services/cac-patient-view"
    token = cb.client_token(key, base_url + path, iss=ISS)
    answer = requests.post(
        base_url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    cards = answer.json()["cards"]
    assert cards
    return dict(cards[0])


def report_links(card: dict[str, Any]) -> list[str]:
    return [link["url"] for link in card.get("links", []) if "/report/" in link["url"]]


def test_fabricated_prefetch_without_the_callers_token_gets_no_report_link(
    service: str, key: Any, hapi: HapiServer, victim: dict[str, Any]
) -> None:
    pid = patient_id(victim)
    fabricated = cb.request(
        "patient-view",
        pid,
        [fb.patient(id=pid), fb.cac(value=5, subject={"reference": f"Patient/{pid}"})],
        VIEW_KEYS,
    )
    card = view(service, key, {**fabricated, "fhirServer": hapi.base_url})
    assert card["summary"].startswith("CAC 5")
    assert report_links(card) == []
    # nothing prefetched and no token: fhircac reads the server itself, but that proves nothing
    card = view(service, key, {**fabricated, "prefetch": {}, "fhirServer": hapi.base_url})
    assert report_links(card) == []


def test_a_link_is_offered_after_the_callers_token_read_the_patient_and_it_opens(
    service: str, key: Any, hapi: HapiServer, victim: dict[str, Any]
) -> None:
    pid = patient_id(victim)
    body = cb.request("patient-view", pid, [e["resource"] for e in victim["entry"]], VIEW_KEYS)
    body = {**body, "fhirServer": hapi.base_url, "fhirAuthorization": cb.authorization("ehr-token")}
    card = view(service, key, body)
    [url] = report_links(card)
    assert f"/report/{pid}?access=" in url
    page = requests.get(url, headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200 and "calcium" in page.text.lower()
    mismatch = {**body, "fhirAuthorization": {**cb.authorization("ehr-token"), "patient": "someone-else"}}
    assert report_links(view(service, key, mismatch)) == []
    tampered = url.replace(f"/report/{pid}?", "/report/cac-ex06?")
    assert requests.get(tampered, timeout=30).status_code == 401


def test_no_careplan_create_suggestion_when_fhircac_writes_back_to_the_ehrs_server(
    service: str, key: Any, hapi: HapiServer, victim: dict[str, Any]
) -> None:
    pid = patient_id(victim)
    body = cb.request("patient-view", pid, [e["resource"] for e in victim["entry"]], VIEW_KEYS)
    elsewhere = view(service, key, body)  # no fhirServer: the EHR keeps its own record
    assert [s["label"] for s in elsewhere.get("suggestions", [])][:1] == [
        "Create the CAC follow-up plan (CarePlan) and its interpretation (RiskAssessment)"
    ]
    own = view(service, key, {**body, "fhirServer": hapi.base_url})
    assert not [s for s in own.get("suggestions", []) if "CarePlan" in s["label"]]
