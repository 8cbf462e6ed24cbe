"""CDS Hooks conformance over HTTP: ``fhircac serve`` under gunicorn, HAPI FHIR as the EHR's server.

Tokens are signed with keys made here: ES384 keys given inline, RS384 keys published at a JWKS URL
(a local HTTP server), as two trusted clients of the clients file.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hapi_server import HapiServer, free_port  # tools/ is on sys.path (conftest.py)

from fhircac.fhir.client import FhirClient
from tests import cds_builders as cb
from tests.integration.conftest import EXAMPLES, fhircac_service, load_example, patient_id

pytestmark = pytest.mark.integration

ES_ISS, RS_ISS = "https://ehr-es.test", "https://ehr-rs.test"
VIEW_KEYS = ["patient", "cacScores", "observations", "medicationStatements", "medicationRequests"]
VIEW_KEYS += ["conditions", "procedures", "familyHistory", "cacCarePlans"]
ORDER_KEYS = VIEW_KEYS[:-1]


def example(name: str) -> Path:
    return next(path for path in EXAMPLES if path.name.startswith(name))


def resources_of(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle["entry"]]


class Keys:
    def __init__(self) -> None:
        self.es = ec.generate_private_key(ec.SECP384R1())
        self.rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = ec.generate_private_key(ec.SECP384R1())

    def jwks(self, key: Any, algorithm: type, kid: str) -> dict[str, Any]:
        return {"keys": [{**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid}]}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def jwks_url(keys: Keys) -> Iterator[str]:
    body = json.dumps(keys.jwks(keys.rs, jwt.algorithms.RSAAlgorithm, "rs1")).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


class Service:
    def __init__(self, base_url: str, keys: Keys) -> None:
        self.base_url = base_url
        self.keys = keys

    def headers(self, path: str, *, issuer: str = ES_ISS, **claims: Any) -> dict[str, str]:
        if issuer == RS_ISS:
            token = cb.client_token(
                self.keys.rs, self.base_url + path, iss=RS_ISS, kid="rs1", algorithm="RS384", **claims
            )
        else:
            token = cb.client_token(self.keys.es, self.base_url + path, iss=ES_ISS, kid="es1", **claims)
        return {"Authorization": f"Bearer {token}"}

    def call(self, service: str, body: dict[str, Any], **claims: Any) -> requests.Response:
        path = f"/cds-services/{service}"
        return requests.post(
            self.base_url + path, json=body, headers=self.headers(path, **claims), timeout=30
        )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, keys: Keys, jwks_url: str) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("cds")
    clients = {
        "clients": [
            {"iss": ES_ISS, "jwks": keys.jwks(keys.es, jwt.algorithms.ECAlgorithm, "es1")},
            {"iss": RS_ISS, "jwks_url": jwks_url},
        ]
    }
    (folder / "clients.json").write_text(json.dumps(clients))
    settings = {
        "FHIRCAC_CDS_CLIENTS": str(folder / "clients.json"),
        "FHIRCAC_CDS_DB": str(folder / "cds.sqlite"),
        "FHIRCAC_MAX_BODY_BYTES": "262144",
        "FHIRCAC_LOG_LEVEL": "info",
        "FHIRCAC_CDS_ALLOW_LOOPBACK": "on",  # HAPI and the unreachable server below are on 127.0.0.1
    }
    log_path = folder / "service.log"
    with fhircac_service(settings, log_path) as base_url:
        yield Service(base_url, keys)
    text = log_path.read_text()
    # No PHI in logs: the patients' ids and birth dates never appear.
    for name in ("06-", "08-"):
        bundle = json.loads(example(name).read_text())
        patient = next(r for r in resources_of(bundle) if r["resourceType"] == "Patient")
        assert patient["id"] not in text and patient["birthDate"] not in text


@pytest.fixture(scope="module")
def on_hapi(hapi: HapiServer) -> dict[str, dict[str, Any]]:
    client = FhirClient(hapi.base_url, retries=2, backoff_factor=0.1)
    try:
        return {name: load_example(client, example(name)) for name in ("06-", "08-")}
    finally:
        client.close()


def texts(response: requests.Response) -> list[tuple[str, str, str]]:
    assert response.status_code == 200, response.text
    return [
        (c["source"]["topic"]["code"], c["summary"], c.get("detail", "")) for c in response.json()["cards"]
    ]


def test_discovery_with_es384_and_rs384_clients(service: Service) -> None:
    for issuer in (ES_ISS, RS_ISS):
        response = requests.get(
            service.base_url + "/cds-services",
            headers=service.headers("/cds-services", issuer=issuer),
            timeout=10,
        )
        assert response.status_code == 200
        assert [s["id"] for s in response.json()["services"]] == [
            "cac-patient-view",
            "cac-order-select",
            "cac-order-sign",
        ]


def test_every_service_with_full_prefetch(service: Service, on_hapi: dict[str, dict[str, Any]]) -> None:
    rising = resources_of(on_hapi["06-"])
    pid = patient_id(on_hapi["06-"])
    view = texts(service.call("cac-patient-view", cb.request("patient-view", pid, rising, VIEW_KEYS)))
    assert [code for code, _, _ in view] == ["cac-risk-assessment", "lpa-measure-once"]
    assert "rise on a statin is expected" in view[0][1]
    order = cb.scan_order(patient_id=pid, when="2027-03-01")
    select = cb.request(
        "order-select", pid, rising, ORDER_KEYS, draft_orders=[order], selections=["ServiceRequest/draft-cac"]
    )
    assert [code for code, _, _ in texts(service.call("cac-order-select", select))] == ["scan-order-too-soon"]
    sign = cb.request(
        "order-sign", pid, rising, ORDER_KEYS, draft_orders=[order, cb.aspirin_order(patient_id=pid)]
    )
    assert [code for code, _, _ in texts(service.call("cac-order-sign", sign, issuer=RS_ISS))] == [
        "scan-order-too-soon",
        "aspirin-policy-acc-aha-2018",
    ]


@pytest.mark.parametrize("prefetched", [["patient", "cacScores"], []])
def test_partial_prefetch_is_completed_from_fhir_server(
    service: Service, on_hapi: dict[str, dict[str, Any]], hapi: HapiServer, prefetched: list[str]
) -> None:
    for name, hook in (("06-", "patient-view"), ("08-", "order-sign")):
        bundle = on_hapi[name]
        pid = patient_id(bundle)
        orders = [cb.scan_order(patient_id=pid, when="2027-03-01")] if hook == "order-sign" else None
        keys = VIEW_KEYS if hook == "patient-view" else ORDER_KEYS
        full = cb.request(hook, pid, resources_of(bundle), keys, draft_orders=orders)
        partial = cb.request(
            hook,
            pid,
            resources_of(bundle),
            prefetched,
            draft_orders=orders,
            fhirServer=hapi.base_url,
            fhirAuthorization={
                "access_token": "opaque-ehr-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "fhircac",
            },
        )
        if not prefetched:
            partial.pop("prefetch", None)
        expected = texts(service.call(f"cac-{hook}", full))
        assert expected, name
        assert texts(service.call(f"cac-{hook}", partial)) == expected, name


def test_neither_prefetch_nor_fhir_server_is_412(
    service: Service, on_hapi: dict[str, dict[str, Any]]
) -> None:
    pid = patient_id(on_hapi["06-"])
    essentials = cb.request("patient-view", pid, resources_of(on_hapi["06-"]), ["patient", "cacScores"])
    partial = service.call("cac-patient-view", essentials)  # the context keys only missing: a card
    assert partial.status_code == 200 and "medicationStatements" in partial.json()["cards"][0]["detail"]
    body = cb.request("patient-view", pid, resources_of(on_hapi["06-"]), ["patient"])
    response = service.call("cac-patient-view", body)
    assert response.status_code == 412 and "cacScores" in response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    unreachable = {**essentials, "fhirServer": f"http://127.0.0.1:{free_port()}/fhir"}
    response = service.call("cac-patient-view", unreachable)
    assert response.status_code == 412 and "fhirServer failed" in response.text


def test_bad_tokens_get_401(service: Service, keys: Keys) -> None:
    path = "/cds-services"
    url = service.base_url + path
    good = service.headers(path)
    assert requests.get(url, headers=good, timeout=10).status_code == 200
    assert requests.get(url, headers=good, timeout=10).status_code == 401  # replayed jti
    forged = cb.client_token(keys.other, url, iss=ES_ISS, kid="es1")
    wrong_aud = cb.client_token(
        keys.es, service.base_url + "/cds-services/cac-patient-view", iss=ES_ISS, kid="es1"
    )
    none_alg = jwt.encode({"iss": ES_ISS, "aud": url}, None, algorithm="none")
    for token in (forged, wrong_aud, none_alg, "garbage"):
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 401 and "diagnostics" not in response.text
    assert requests.get(url, timeout=10).status_code == 401


def test_bad_bodies_get_400(service: Service) -> None:
    path = "/cds-services/cac-patient-view"
    for raw, expected in (
        (b"{", "not JSON"),
        (json.dumps({"hook": "patient-view"}).encode(), "context"),
        (b'{"pad": "' + b"x" * 300_000 + b'"}', "larger than the limit"),
    ):
        headers = {**service.headers(path), "Content-Type": "application/json"}
        response = requests.post(service.base_url + path, data=raw, headers=headers, timeout=10)
        assert response.status_code == 400 and expected in response.text


def test_feedback_round_trip_and_summary(service: Service, on_hapi: dict[str, dict[str, Any]]) -> None:
    pid = patient_id(on_hapi["06-"])
    cards = service.call(
        "cac-patient-view", cb.request("patient-view", pid, resources_of(on_hapi["06-"]), VIEW_KEYS)
    ).json()
    card = cards["cards"][0]
    path = "/cds-services/cac-patient-view/feedback"
    body = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-21T09:00:00Z",
            }
        ]
    }
    response = requests.post(service.base_url + path, json=body, headers=service.headers(path), timeout=10)
    assert response.status_code == 200 and response.json()["stored"] == 1
    summary = requests.get(service.base_url + "/cds-feedback/summary", timeout=10).json()
    entry = summary["services"]["cac-patient-view"]["cards"]["cac-summary"]
    assert entry["accepted"] >= 1 and entry["suggestions_accepted"]["create-careplan"] >= 1


def test_cors_preflight_over_http(service: Service) -> None:
    response = requests.options(
        service.base_url + "/cds-services/cac-order-sign",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
