"""The real service: ``fhircac serve`` under gunicorn, called over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import fhircac_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("service") / "service.log"
    with fhircac_service({"FHIRCAC_MAX_BODY_BYTES": "65536"}, log_path) as url:
        yield url
    # no PHI in logs: the id we sent never appears in the access log
    assert "patient-secret-id" not in log_path.read_text()


def test_health_over_http(base_url: str) -> None:
    assert requests.get(f"{base_url}/healthz", timeout=5).json()["status"] == "ok"


def test_calc_over_http(base_url: str) -> None:
    body = {"id": "patient-secret-id", "cac": 1200, "age": 72, "sex": "male", "race": "white"}
    response = requests.post(f"{base_url}/calc", json=body, timeout=10)
    assert response.status_code == 200
    summary = response.json()
    assert summary["percentile"]["value"] == 85  # REFERENCE §3 check value
    assert summary["score"]["band"] == "≥400"


def test_bad_input_over_http_is_an_operation_outcome(base_url: str) -> None:
    response = requests.post(
        f"{base_url}/calc", data="{oops", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert response.json()["resourceType"] == "OperationOutcome"


def test_oversized_body_over_http(base_url: str) -> None:
    response = requests.post(
        f"{base_url}/calc",
        data=json.dumps({"id": "x" * 100_000, "cac": 1}),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"


def test_cli_exit_codes_in_a_real_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "fhircac",
            "calc",
            "--cac",
            "35",
            "--age",
            "46",
            "--sex",
            "female",
            "--race",
            "chinese",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["percentile"]["value"] == 97  # REFERENCE §3
    bad = subprocess.run(
        [sys.executable, "-m", "fhircac", "calc", "--cac", "-3"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "--cac" in bad.stderr and bad.stdout == ""
