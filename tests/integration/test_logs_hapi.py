"""The service's logs, as an operator reads them: ``fhircac serve`` under gunicorn, at DEBUG and as
JSON lines, driven with traffic full of PHI and tokens (a CDS call with a whole chart, refused
JWTs, a posted report, a notification written back to HAPI). Every line is one JSON object with
time, level, logger and message; the JWT refusal reasons are there; no line holds a patient id,
name, birth date, token or key (tests/log_scan.py, which the end-of-run check also uses).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from hapi_server import HapiServer

from fhircac.fhir.client import FhirClient
from tests import cds_builders as cb
from tests.integration.conftest import EXAMPLES, ROOT, fhircac_service
from tests.log_scan import findings, hits

pytestmark = pytest.mark.integration

ISS = "https://ehr-logs.test"
VIEW_KEYS = ["patient", "cacScores", "observations", "medicationStatements", "medicationRequests"]
VIEW_KEYS += ["conditions", "procedures", "familyHistory", "cacCarePlans"]


def reidentified_example(prefix: str) -> dict[str, Any]:
    """Example 06 under ids of this test's own (t<hex>-…), names and birth date kept: PHI to hide."""
    path = next(p for p in EXAMPLES if p.name.startswith("06-"))
    return json.loads(path.read_text().replace("cac-ex06", f"{prefix}-ex06"))


def test_service_logs_are_json_lines_with_refusal_reasons_and_no_phi(
    hapi: HapiServer, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    bundle = reidentified_example(prefix)
    resources = [entry["resource"] for entry in bundle["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    scans = [r for r in resources if cb.prefetch_key(r) == "cacScores"]
    latest = max(scans, key=lambda r: str(r["effectiveDateTime"]))
    fhir = FhirClient(hapi.base_url, retries=2, backoff_factor=0.1)
    try:
        fhir.transaction(bundle)
    finally:
        fhir.close()

    key = ec.generate_private_key(ec.SECP384R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "k1"}
    (tmp_path / "clients.json").write_text(json.dumps({"clients": [{"iss": ISS, "jwks": {"keys": [jwk]}}]}))
    hook_token, report_key = uuid.uuid4().hex, f"log-test-report-key-{uuid.uuid4().hex}"
    settings = {
        "FHIRCAC_LOG_LEVEL": "debug",
        "FHIRCAC_LOG_FORMAT": "json",
        "FHIRCAC_CDS_CLIENTS": str(tmp_path / "clients.json"),
        "FHIRCAC_DATA_DIR": str(tmp_path / "data"),
        "FHIRCAC_FHIR_BASE_URL": hapi.base_url,
        "FHIRCAC_HOOK_TOKEN": hook_token,
        "FHIRCAC_REPORT_KEY": report_key,
    }
    log_path = ROOT / ".artifacts" / "logs-test-service.log"
    used_tokens = []
    with fhircac_service(settings, log_path) as base_url:
        path = "/cds-services/cac-patient-view"
        body = cb.request("patient-view", patient["id"], resources, VIEW_KEYS)

        def call(token: str) -> requests.Response:
            used_tokens.append(token)
            headers = {"Authorization": f"Bearer {token}"}
            return requests.post(base_url + path, json=body, headers=headers, timeout=60)

        token = cb.client_token(key, base_url + path, iss=ISS)
        answer = call(token)
        assert answer.status_code == 200 and answer.json()["cards"], answer.text
        assert call(token).status_code == 401  # replay
        assert call(cb.client_token(key, "http://localhost:1/elsewhere", iss=ISS)).status_code == 401
        assert call("abc.def.ghi").status_code == 401

        report = requests.post(
            f"{base_url}/report",
            data=json.dumps(bundle),
            headers={"Content-Type": "application/fhir+json"},
            timeout=60,
        )
        assert report.status_code == 200, report.text[:500]
        notification = requests.put(
            f"{base_url}/fhir-hook/Observation/{latest['id']}",
            data=json.dumps(latest),
            headers={"Authorization": f"Bearer {hook_token}", "Content-Type": "application/fhir+json"},
            timeout=120,
        )
        assert notification.status_code == 200 and "1 written" in notification.text, notification.text
        wrong = requests.put(
            f"{base_url}/fhir-hook/Observation/{latest['id']}",
            data=json.dumps(latest),
            headers={"Authorization": f"Bearer {uuid.uuid4().hex}", "Content-Type": "application/fhir+json"},
            timeout=30,
        )
        assert wrong.status_code == 401

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert all(set(line) >= {"time", "level", "logger", "message"} for line in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines)
    assert {line["level"] for line in lines} >= {"DEBUG", "INFO"}
    refusals = [line["message"] for line in lines if line["logger"] == "fhircac.web.cds"]
    assert any("replay" in message for message in refusals), refusals
    assert any("aud does not name this endpoint" in message for message in refusals), refusals
    assert any("malformed token" in message for message in refusals), refusals
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "gunicorn.access", "fhircac.worker.poller"} <= loggers, loggers
    handled = [line["message"] for line in lines if line["logger"] == "fhircac.worker.poller"]
    assert any(message.endswith(": written") for message in handled), handled

    assert findings(log_path.read_text(), [*used_tokens, hook_token, report_key]) == []
    # the check can fail: the same scan flags a line that leaks what this test sent
    sent = {patient["id"], patient["birthDate"], "Case06", used_tokens[0], report_key, "cac-ex06"}
    assert hits(f'{{"message": "{" ".join(sorted(sent))}"}}', [report_key]) == sent
