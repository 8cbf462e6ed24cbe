"""The real ``fhircac serve`` at debug log level, its FHIR server frozen (review finding 10): a report
opened from a valid link gets a 503 page with the page's headers, not gunicorn's HTML 500 after its
worker timeout; and no line of the service's log holds a query string, a link token or an id from
a path, failed requests included."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fhircac.report import links
from fhircac.web.report import READ_SECONDS
from tests.http_stub import BlackHole
from tests.integration.conftest import fhircac_service

pytestmark = pytest.mark.integration

REPORT_KEY = "integration-logs-report-key-0123456789abcdef"


@pytest.fixture(scope="module")
def frozen() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture(scope="module")
def service(frozen: BlackHole, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("logs")
    settings = {
        "FHIRCAC_FHIR_BASE_URL": frozen.url.removesuffix("/jwks.json") + "/fhir",
        "FHIRCAC_REPORT_KEY": REPORT_KEY,
        "FHIRCAC_CDS_AUTH": "off",
        "FHIRCAC_CDS_DB": str(folder / "cds.sqlite"),
        "FHIRCAC_STATE_FILE": str(folder / "state.sqlite"),
        "FHIRCAC_HOOK_TOKEN": "h" * 32,
        "FHIRCAC_LOG_LEVEL": "debug",
    }
    log_path = folder / "service.log"
    with fhircac_service(settings, log_path) as base_url:
        yield base_url, log_path


def test_a_report_from_a_frozen_server_is_a_503_page_and_the_log_names_nothing(
    service: tuple[str, Path], frozen: BlackHole
) -> None:
    base_url, log_path = service
    server = frozen.url.removesuffix("/jwks.json") + "/fhir"
    token = links.sign(REPORT_KEY, links.Grant("secret-patient-1", server, ""), 600)
    started = time.monotonic()
    page = requests.get(
        f"{base_url}/report/secret-patient-1?access={token}", headers={"Accept": "text/html"}, timeout=120
    )
    elapsed = time.monotonic() - started
    assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
    assert (
        page.headers["Cache-Control"] == "no-store"
        and "default-src 'none'" in page.headers["Content-Security-Policy"]
    )
    assert elapsed < READ_SECONDS + 30  # bounded by the report's read deadline, not by the server
    assert (
        requests.get(f"{base_url}/report/secret-patient-2?access=wrong-token", timeout=30).status_code == 401
    )
    hook = requests.put(f"{base_url}/fhir-hook/Observation/secret-obs-3", json={}, timeout=30)
    assert hook.status_code == 401
    time.sleep(0.5)  # let the log lines of those requests reach the file
    log = log_path.read_text()
    assert "/report/…" in log  # the requests were logged, redacted
    for secret in ("access=", token[:20], "wrong-token", "secret-patient", "secret-obs"):
        assert secret not in log, secret
