"""The report over HTTP (Flask test client): signed links, posted bundles, errors in both shapes.

The FHIR server is replaced by a ``FetchPatient`` here; tests/integration/test_report_browser.py
reads a real HAPI server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fhircac.config import ConfigError, Settings
from fhircac.fhir.client import FhirError
from fhircac.report import links
from fhircac.web.access_log import redact_path
from fhircac.web.app import create_app
from fhircac.web.report import link
from tests import cds_builders as cb
from tests import fhir_builders as fb
from tests.http_stub import stub_server

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://localhost"
KEY = "k" * 40
SERVER = "http://127.0.0.1:9/fhir"  # never contacted: the fetch below stands in
VIEW_KEYS = ["patient", "cacScores", "observations", "medicationStatements", "medicationRequests"]
VIEW_KEYS += ["conditions", "procedures", "familyHistory", "cacCarePlans"]
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def bundle(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "examples" / f"{name}.json").read_text())


def resources(name: str) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle(name)["entry"]]


def settings(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "cds_auth": False,
        "cds_db": str(tmp_path / "cds.sqlite"),
        "public_base_url": BASE,
        "fhir_base_url": SERVER,
        "report_key": KEY,
        "max_body_bytes": 256 * 1024,
    }
    return Settings(**{**values, **kw})


def app_with(tmp_path: Path, fetch: Any = None, **kw: Any) -> Any:
    app = create_app(settings(tmp_path, **kw))
    if fetch is not None:
        app.extensions["fhircac-report-fetch"] = fetch
    return app.test_client()


def patient_of(name: str) -> str:
    return next(r["id"] for r in resources(name) if r["resourceType"] == "Patient")


def served(*names: str) -> Any:
    by_id = {patient_of(n): resources(n) for n in names}
    return lambda patient_id: by_id.get(patient_id)


def token(
    patient_id: str, seconds: int = 600, key: str = KEY, server: str = SERVER, client: str = "", **kw: Any
) -> str:
    return links.sign(key, links.Grant(patient_id, server, client), seconds, **kw)


def grant(patient_id: str, server: str = SERVER) -> links.Grant:
    return links.Grant(patient_id, server, "")


def signed(patient_id: str, seconds: int = 600) -> str:
    return f"/report/{patient_id}?access={token(patient_id, seconds)}"


def test_a_signed_link_opens_the_report_of_its_patient(tmp_path: Path) -> None:
    client = app_with(tmp_path, served("06-rising-on-statin"))
    pid = patient_of("06-rising-on-statin")
    answer = client.get(signed(pid), headers=HTML)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert 'class="score-chart"' in page and 'id="statin-context"' in page
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


def test_links_that_must_not_open_get_401(tmp_path: Path) -> None:
    client = app_with(tmp_path, served("06-rising-on-statin", "07-rapid-rise-no-statin"))
    pid, other = patient_of("06-rising-on-statin"), patient_of("07-rapid-rise-no-statin")
    past = datetime.now(UTC) - timedelta(hours=2)
    refused = {
        "no token": f"/report/{pid}",
        "another patient's": f"/report/{pid}?access={token(other)}",
        "expired": f"/report/{pid}?access={token(pid, now=past)}",
        "another key": f"/report/{pid}?access={token(pid, key='x' * 40)}",
        "another FHIR server": f"/report/{pid}?access={token(pid, server='https://other.example/fhir')}",
        "garbage": f"/report/{pid}?access=not.a.token",
    }
    for why, url in refused.items():
        answer = client.get(url)
        assert answer.status_code == 401, why
        outcome = answer.get_json()
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "login"
    html = client.get(refused["expired"], headers=HTML)
    assert html.status_code == 401 and "open the report from the EHR again" in html.get_data(as_text=True)


def test_without_a_key_no_link_opens_and_none_is_offered(tmp_path: Path) -> None:
    client = app_with(tmp_path, served("06-rising-on-statin"), report_key=None)
    assert client.get(signed(patient_of("06-rising-on-statin"))).status_code == 401
    assert link(settings(tmp_path, report_key=None), BASE, grant("p1")) is None
    assert link(settings(tmp_path, fhir_base_url=None), BASE, grant("p1")) is None
    assert link(settings(tmp_path), BASE, grant("bad id!")) is None
    url = link(settings(tmp_path), BASE, grant("p1"))
    assert url and url.startswith(f"{BASE}/report/p1?access=")
    assert links.opened(KEY, url.split("access=")[1], "p1", SERVER) == grant("p1")
    assert links.opened(KEY, url.split("access=")[1], "p1", "https://other.example/fhir") is None
    assert link(settings(tmp_path, report_auth=False), BASE, grant("p1")) == f"{BASE}/report/p1"


def test_no_link_when_the_hook_reads_another_fhir_server(tmp_path: Path) -> None:
    """Patient ids belong to their server: a card about another EHR's patient must not link to the
    report of whoever has that id on fhircac's server (review finding)."""
    for server in ("https://other-ehr.example/fhir", "", SERVER + "x"):
        assert link(settings(tmp_path), BASE, grant("p1", server)) is None, server
        assert link(settings(tmp_path, report_auth=False), BASE, grant("p1", server)) is None, server


def test_with_links_off_the_page_opens_without_token_and_a_warning_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = app_with(tmp_path, served("01-cac-zero-low-risk"), report_auth=False)
    assert client.get(f"/report/{patient_of('01-cac-zero-low-risk')}").status_code == 200
    assert any("FHIRCAC_REPORT_AUTH=off" in r.getMessage() for r in caplog.records)


def test_server_side_problems_get_their_own_status(tmp_path: Path) -> None:
    def failing(status: int | None) -> Any:
        def fetch(patient_id: str) -> Any:
            raise FhirError("down", status=status)

        return fetch

    pid = "cac-ex06"
    assert app_with(tmp_path, served()).get(signed(pid)).status_code == 404
    assert app_with(tmp_path, failing(None)).get(signed(pid)).status_code == 503
    assert app_with(tmp_path, failing(500)).get(signed(pid)).status_code == 503
    assert app_with(tmp_path, failing(403)).get(signed(pid)).status_code == 502
    no_scan = lambda _: [fb.patient(id="nocac")]  # noqa: E731
    answer = app_with(tmp_path, no_scan).get(signed("nocac"))
    assert answer.status_code == 422 and answer.get_json()["resourceType"] == "OperationOutcome"
    unconfigured = app_with(tmp_path, fhir_base_url=None).get(signed(pid))
    assert unconfigured.status_code == 503
    assert "FHIRCAC_FHIR_BASE_URL" in unconfigured.get_json()["issue"][0]["diagnostics"]
    assert app_with(tmp_path).get("/report/a%20b").status_code == 400


def test_a_posted_bundle_gets_its_report(tmp_path: Path) -> None:
    client = app_with(tmp_path)
    for name in ("03-cac-1-99-over-55", "08-known-cad-stent", "10-si-units"):
        answer = client.post("/report", json=bundle(name), headers=HTML)
        assert answer.status_code == 200, name
        assert 'id="clinician"' in answer.get_data(as_text=True)


def test_a_bundle_of_several_patients_needs_one_named(tmp_path: Path) -> None:
    client = app_with(tmp_path)
    both = {"resourceType": "Bundle", "type": "collection", "entry": bundle("01-cac-zero-low-risk")["entry"]}
    both["entry"] = both["entry"] + bundle("06-rising-on-statin")["entry"]
    answer = client.post("/report", json=both)
    assert answer.status_code == 400
    message = answer.get_json()["issue"][0]["diagnostics"]
    assert "2 patients" in message and "?patient=" in message
    chosen = client.post(f"/report?patient={patient_of('06-rising-on-statin')}", json=both)
    assert chosen.status_code == 200 and 'id="statin-context"' in chosen.get_data(as_text=True)
    assert client.post("/report?patient=nobody", json=both).status_code == 400


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"{not json", "application/fhir+json", 400, "not JSON"),
        (b"[1, 2]", "application/json", 400, "resourceType"),
        (
            b'{"resourceType": "Bundle", "type": "collection", "entry": []}',
            "application/json",
            400,
            "no Patient",
        ),
        (b"hello", "text/plain", 415, "application/fhir+json"),
        (b'{"a": 1, "a": 2}', "application/json", 400, "twice"),
    ],
)
def test_bad_posts_are_refused_with_the_problem_named(
    tmp_path: Path, body: bytes, content_type: str, status: int, words: str
) -> None:
    client = app_with(tmp_path)
    answer = client.post("/report", data=body, content_type=content_type)
    assert answer.status_code == status
    assert words in json.dumps(answer.get_json())
    html = client.post("/report", data=body, content_type=content_type, headers=HTML)
    assert (
        html.status_code == status and html.mimetype == "text/html" and words in html.get_data(as_text=True)
    )


def test_an_impossible_value_in_a_posted_bundle_is_located(tmp_path: Path) -> None:
    document = bundle("03-cac-1-99-over-55")
    scan = next(
        e["resource"] for e in document["entry"] if e["resource"].get("valueQuantity", {}).get("unit")
    )
    scan["valueQuantity"]["value"] = -5
    answer = app_with(tmp_path).post("/report", json=document)
    assert answer.status_code == 400
    index = document["entry"].index(next(e for e in document["entry"] if e["resource"] is scan))
    issue = answer.get_json()["issue"][0]
    assert issue["expression"] == [f"Bundle.entry[{index}].resource"] and "Agatston" in issue["diagnostics"]


def test_an_oversized_body_is_refused(tmp_path: Path) -> None:
    answer = app_with(tmp_path, max_body_bytes=2048).post("/report", json=bundle("06-rising-on-statin"))
    assert answer.status_code == 413


def test_the_card_links_to_the_report_only_for_a_patient_the_callers_token_read(tmp_path: Path) -> None:
    """Review finding 1: a link was minted from context.patientId alone (fabricated prefetch, no
    fhirAuthorization) and the report then showed the server's real record. Now the link needs a
    read of that patient from fhircac's own server with the caller's token."""
    name = "06-rising-on-statin"
    pid = patient_of(name)
    patient = next(r for r in resources(name) if r["resourceType"] == "Patient")
    with stub_server() as ehr:
        ehr.token = "caller-token"
        ehr.routes[f"/fhir/Patient/{pid}"] = (200, patient)
        client = app_with(tmp_path, served(name), fhir_base_url=ehr.base_url, cds_allow_loopback=True)
        request = {**cb.request("patient-view", pid, resources(name), VIEW_KEYS), "fhirServer": ehr.base_url}

        def links_of(**body: Any) -> list[str]:
            answer = client.post("/cds-services/cac-patient-view", json={**request, **body})
            cards = answer.get_json()["cards"]
            assert cards and cards[0]["summary"].startswith("CAC")
            return [entry["url"] for card in cards for entry in card.get("links", [])]

        def authorization(token: str, **more: str) -> dict[str, Any]:
            return {"fhirAuthorization": {**cb.authorization(token), **more}}

        assert links_of() == []  # prefetch alone: no token, nothing read, no link
        assert links_of(**authorization("someone-elses-token")) == []  # the server refused the read
        assert links_of(**authorization("caller-token", patient="another-patient")) == []
        assert ehr.paths() == [f"/fhir/Patient/{pid}"]  # the refused read; the others never left
        urls = links_of(**authorization("caller-token"))
        assert ehr.seen[-1].authorization == "Bearer caller-token"
        assert len(urls) == 1 and urls[0].startswith(f"{BASE}/report/{pid}?access=")
        assert client.get(urls[0].removeprefix(BASE), headers=HTML).status_code == 200
        assert links_of(**authorization("caller-token"), fhirServer=ehr.base_url + "/other") == []


def test_even_an_internal_error_keeps_the_pages_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr("fhircac.web.report.build_page", broken)
    answer = app_with(tmp_path).post("/report", json=bundle("06-rising-on-statin"))
    assert answer.status_code == 500
    assert answer.headers["Cache-Control"] == "no-store" and "Content-Security-Policy" in answer.headers


def test_input_quoted_in_an_error_is_escaped_in_html(tmp_path: Path) -> None:
    document = bundle("06-rising-on-statin")
    ldl = next(
        e["resource"]
        for e in document["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "2089-1"
    )
    ldl["valueQuantity"] = {"value": 78, "unit": "<script>alert(1)</script>"}
    answer = app_with(tmp_path).post("/report", json=document, headers=HTML)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page


def test_access_log_paths_name_no_patient() -> None:
    assert redact_path("/report/cac-ex06") == "/report/…"
    assert redact_path("/fhir-hook/Observation/obs-1") == "/fhir-hook/Observation/…"
    assert redact_path("/cds-services/cac-patient-view") == "/cds-services/cac-patient-view"
    assert redact_path("/report") == "/report"


def test_report_settings_come_from_the_environment() -> None:
    env = {"FHIRCAC_REPORT_KEY": KEY, "FHIRCAC_REPORT_AUTH": "off", "FHIRCAC_REPORT_LINK_SECONDS": "120"}
    loaded = Settings.from_env(env)
    assert (loaded.report_key, loaded.report_auth, loaded.report_link_seconds) == (KEY, False, 120)
    assert KEY not in repr(loaded)
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env({"FHIRCAC_REPORT_KEY": "short"})
    with pytest.raises(ConfigError, match="FHIRCAC_REPORT_LINK_SECONDS"):
        Settings.from_env({"FHIRCAC_REPORT_LINK_SECONDS": "5"})


def test_a_link_opens_only_while_its_cds_client_is_trusted(tmp_path: Path) -> None:
    """The link names its CDS client; GET /report checks it is still a trusted client."""
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    clients = tmp_path / "clients.json"
    clients.write_text(
        json.dumps({"clients": [{"iss": "https://ehr.test", "jwks": {"keys": [{**public, "kid": "k1"}]}}]})
    )
    client = app_with(tmp_path, served("06-rising-on-statin"), cds_auth=True, cds_clients_file=str(clients))
    pid = patient_of("06-rising-on-statin")
    opened = client.get(f"/report/{pid}?access={token(pid, client='https://ehr.test')}")
    assert opened.status_code == 200
    for other in ("https://no-longer-trusted.test", ""):
        assert client.get(f"/report/{pid}?access={token(pid, client=other)}").status_code == 401, other


def test_a_link_living_longer_than_the_longest_lifetime_never_opens(tmp_path: Path) -> None:
    client = app_with(tmp_path, served("06-rising-on-statin"))
    pid = patient_of("06-rising-on-statin")
    assert client.get(f"/report/{pid}?access={token(pid, seconds=86_400)}").status_code == 200
    assert client.get(f"/report/{pid}?access={token(pid, seconds=10 * 365 * 86_400)}").status_code == 401
