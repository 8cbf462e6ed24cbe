"""The report page in a real browser: HAPI FHIR holds the patients, ``fhircac serve`` renders the page
from it, a CDS card supplies the signed link, and headless Chromium (Debian's, driven by Selenium
through Debian's chromedriver) opens it, reads the chart and sections, screenshots and prints it.

Screenshots and PDFs are saved under ``.artifacts/report/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hapi_server import HapiServer  # tools/ is on sys.path (conftest.py)
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.print_page_options import PrintOptions

from fhircac.fhir import codes
from fhircac.fhir.client import FhirClient
from tests import cds_builders as cb
from tests.integration.conftest import EXAMPLES, ROOT, fhircac_service, load_example, patient_id

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# The machine's closed network: without these, Chromium keeps trying to reach Google's hosts.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
PATIENTS = ("06-rising-on-statin", "01-cac-zero-low-risk", "08-known-cad-stent")
ARTIFACTS = ROOT / ".artifacts" / "report"
REPORT_KEY = "integration-test-report-key-0123456789abcdef"
SECTIONS = ["glance", "history", "measures", "meaning", "plan", "questions", "clinician"]
PAPER_CM = {"a4": (21.0, 29.7), "letter": (21.59, 27.94)}


def example(name: str) -> Path:
    return next(path for path in EXAMPLES if path.name.startswith(name))


def cac_scans(bundle: dict[str, Any]) -> list[float]:
    """The example's CAC scores, read from its JSON (not from fhircac)."""
    found = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        codings = {(c["system"], c["code"]) for c in resource.get("code", {}).get("coding", [])}
        if resource["resourceType"] == "Observation" and codings & codes.CAC_CODES:
            found.append(float(resource["valueQuantity"]["value"]))
    return found


@pytest.fixture(scope="module")
def loaded(hapi: HapiServer) -> dict[str, dict[str, Any]]:
    client = FhirClient(hapi.base_url, retries=2, backoff_factor=0.1)
    try:
        return {name: load_example(client, example(name)) for name in PATIENTS}
    finally:
        client.close()


@pytest.fixture(scope="module")
def service(hapi: HapiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("report")
    settings = {
        "FHIRCAC_FHIR_BASE_URL": hapi.base_url,
        "FHIRCAC_REPORT_KEY": REPORT_KEY,
        "FHIRCAC_CDS_AUTH": "off",
        "FHIRCAC_CDS_DB": str(folder / "cds.sqlite"),
        "FHIRCAC_CDS_ALLOW_LOOPBACK": "on",  # HAPI is on 127.0.0.1
    }
    log_path = folder / "service.log"
    with fhircac_service(settings, log_path) as base_url:
        yield base_url, log_path


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    for program in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(program), f"{program} is missing: `make browser` installs Debian's chromium"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = ROOT / ".artifacts" / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    options.add_argument(f"--user-data-dir={profile}")
    os.environ["SE_AVOID_STATS"] = "true"  # Selenium Manager stays out: the driver is given
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def card_link(base_url: str, hapi: HapiServer, pid: str) -> str:
    """The report link of the patient-view card, the data fetched from HAPI (no prefetch) with the
    EHR's token (a link needs the caller's own read of the patient)."""
    body = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": hapi.base_url,
        "fhirAuthorization": cb.authorization("browser-test-ehr-token"),
        "context": {"userId": "Practitioner/example", "patientId": pid},
    }
    answer = requests.post(f"{base_url}/cds-services/cac-patient-view", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    urls = [link["url"] for card in answer.json()["cards"] for link in card.get("links", [])]
    assert len(urls) == 1 and f"/report/{pid}?access=" in urls[0]
    return str(urls[0])


def luminance(css_color: str) -> float:
    channels = [int(v) / 255 for v in re.findall(r"\d+", css_color)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("name", PATIENTS)
def test_the_report_opens_in_chromium_from_the_cards_link(
    name: str,
    hapi: HapiServer,
    loaded: dict[str, dict[str, Any]],
    service: tuple[str, Path],
    browser: webdriver.Chrome,
) -> None:
    base_url, _ = service
    bundle = loaded[name]
    pid = patient_id(bundle)
    browser.set_window_size(1000, 1200)
    browser.get(card_link(base_url, hapi, pid))
    assert browser.title.startswith("Your heart calcium scan")

    chart = browser.find_element(By.CSS_SELECTOR, "svg.score-chart")
    assert chart.get_attribute("role") == "img"
    assert chart.find_element(By.TAG_NAME, "title").get_attribute("textContent") == "Calcium score over time"
    points = chart.find_elements(By.CSS_SELECTOR, "circle.score-point")
    scores = sorted(float(p.get_attribute("data-score") or "nan") for p in points)
    assert scores == sorted(cac_scans(bundle))
    assert chart.size["width"] > 500 and chart.size["height"] > 200
    periods = chart.find_elements(By.CSS_SELECTOR, "rect.statin-period")
    statin = any("statin" in json.dumps(e["resource"]).lower() for e in bundle["entry"])  # atorvastatin
    assert (len(periods) > 0) == statin, name
    rows = browser.find_elements(By.CSS_SELECTOR, "#score-table tbody tr")
    assert len(rows) == len(points)

    sections = [s.get_attribute("id") for s in browser.find_elements(By.CSS_SELECTOR, "main > section")]
    assert sections == SECTIONS
    for section in SECTIONS:
        element = browser.find_element(By.ID, section)
        assert element.find_element(By.TAG_NAME, "h2").text.strip(), section
        assert element.is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#clinician table#figures tbody tr")
    assert browser.find_elements(By.CSS_SELECTOR, "#questions li")
    if name.startswith("06-"):
        assert browser.find_element(By.ID, "statin-context").is_displayed()
    if name.startswith("08-"):
        assert browser.find_element(By.ID, "percentile-text").text.startswith("Not shown")

    # nothing was loaded from anywhere but the page itself
    resources = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert resources == 0
    # readable: body text and the muted captions keep at least 4.5:1 on the page background
    for selector in ("p", "figcaption", ".source", "td"):
        color, background = browser.execute_script(
            "const e = document.querySelector(arguments[0]); const s = getComputedStyle(e);"
            "return [s.color, getComputedStyle(document.body).backgroundColor];",
            selector,
        )
        background = background if "0, 0, 0, 0" not in background else "rgb(255, 255, 255)"
        assert contrast(color, background) >= 4.5, (selector, color)
    # no sideways scrolling at a phone-to-paper width
    browser.set_window_size(700, 1200)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1000, min(int(height) + 120, 8000))
    screenshot = ARTIFACTS / f"{name}.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000

    for paper, (width, height_cm) in PAPER_CM.items():
        options = PrintOptions()
        options.page_width, options.page_height = width, height_cm
        pdf = base64.b64decode(browser.print_page(options))
        (ARTIFACTS / f"{name}.{paper}.pdf").write_bytes(pdf)
        pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
        assert pdf.startswith(b"%PDF") and 2 <= pages <= 8, (paper, pages)


def test_a_posted_bundle_renders_over_http_and_the_log_names_no_patient(
    loaded: dict[str, dict[str, Any]], service: tuple[str, Path]
) -> None:
    base_url, log_path = service
    bundle = json.loads(example("07-rapid-rise-no-statin").read_text())
    answer = requests.post(f"{base_url}/report", json=bundle, headers={"Accept": "text/html"}, timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    assert answer.headers["Cache-Control"] == "no-store"
    refused = requests.get(f"{base_url}/report/{patient_id(loaded[PATIENTS[0]])}", timeout=30)
    assert refused.status_code == 401
    log = log_path.read_text()
    assert "/report/…" in log
    for name in PATIENTS:
        patient = next(
            e["resource"] for e in loaded[name]["entry"] if e["resource"]["resourceType"] == "Patient"
        )
        assert patient["id"] not in log and patient["birthDate"] not in log
