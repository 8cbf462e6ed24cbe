"""The report page over HTTP.

    GET  /report/<patient>   the configured FHIR server's data; needs a signed link (``?access=``)
    POST /report             a posted Bundle (``?patient=<id>`` when it holds several patients)

Browsers get HTML, error pages included; clients that ask for JSON get OperationOutcomes. The page
is self-contained (no script, no external asset) and is never cached: it holds PHI.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, request

from fhircac.clinical.errors import Problem
from fhircac.clinical.policies import get_policy
from fhircac.config import Settings
from fhircac.evaluate import parse_json
from fhircac.fhir import bounded
from fhircac.fhir.auth import AuthError
from fhircac.fhir.client import FhirError, client_from_env
from fhircac.report import links
from fhircac.report.data import FetchPatient, ReportData, ReportRefused, assessed, fetched, from_fhir_server
from fhircac.report.page import build_page, render, render_error
from fhircac.web.errors import outcome_response

log = logging.getLogger(__name__)
report = Blueprint("report", __name__)
_lock = threading.Lock()
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# Reading the patient for the page ends by then (a 503 page, with its headers, rather than a worker
# timeout), and reads at most this much: the server is fhircac's own, but may be sick.
READ_SECONDS = 20.0
READ_MAX_BYTES = 64 * 1_048_576
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
TITLES = {
    400: "The data cannot be read",
    401: "This report link is not valid",
    404: "No report for this patient",
    415: "Send a FHIR Bundle as JSON",
    422: "No report can be made from this patient's record",
    502: "The FHIR server gave an error",
    503: "The report is not available",
}


def install(app: Flask, settings: Settings) -> None:
    app.register_blueprint(report)
    if not settings.report_auth:
        app.logger.warning(
            "FHIRCAC_REPORT_AUTH=off: GET /report/<patient> is open to anyone who can reach it"
        )


def link(settings: Settings, base_url: str, grant: links.Grant) -> str | None:
    """The report URL a CDS card links to, or None when following it could not work or could show
    another patient: the report reads fhircac's FHIR server, so the grant's server must be that very
    server (patient ids belong to their server); and a key must sign the link. Whether the caller
    may see the patient at all is for the caller of this function (fhircac.web.cds) to establish."""
    server = settings.fhir_base_url
    if server is None or grant.fhir_server != server or not FHIR_ID.fullmatch(grant.patient_id):
        return None
    url = f"{base_url}/report/{quote(grant.patient_id, safe='')}"
    if not settings.report_auth:
        return url
    if settings.report_key is None:
        return None
    token = links.sign(settings.report_key, grant, settings.report_link_seconds)
    return f"{url}?access={token}"


def _still_trusted(settings: Settings, grant: links.Grant) -> bool:
    """The link's CDS client must still be a trusted client (links made for a client taken off the
    clients file stop opening); links made with CDS authentication off open only while it is off."""
    if not settings.cds_auth:
        return True
    runtime = current_app.extensions.get("fhircac-cds")
    verifier = getattr(runtime, "verifier", None)
    return bool(grant.client) and verifier is not None and verifier.trusts(grant.client)


@report.after_request
def _headers(response: Response) -> Response:
    """On every answer of this blueprint, errors included: the page holds PHI."""
    response.headers.update(HEADERS)
    return response


def _page(data: ReportData) -> Response:
    return Response(render(build_page(data, datetime.now(UTC))), 200, mimetype="text/html")


def _refusal(status: int, problems: list[Problem], code: str = "invalid") -> Response:
    wanted = request.accept_mimetypes.best_match(["application/fhir+json", "application/json", "text/html"])
    if wanted == "text/html":
        body = render_error(
            status, TITLES.get(status, "Error"), [f"{p.field}: {p.message}" for p in problems]
        )
        return Response(body, status, mimetype="text/html")
    return outcome_response(problems, status, code)


def _refused(refusal: ReportRefused) -> Response:
    problems = [Problem(i.location.split(": ", 1)[-1], i.message) for i in refusal.issues]
    return _refusal(refusal.status, problems, refusal.issues[0].code if refusal.issues else "invalid")


def _fetcher(app: Flask) -> FetchPatient:
    """One FHIR client per process, made on first use (gunicorn forks workers after create_app)."""
    with _lock:
        fetch = app.extensions.get("fhircac-report-fetch")
        if fetch is None:
            settings: Settings = app.config["FHIRCAC"]
            client = client_from_env(base_url=settings.fhir_base_url)
            bounded.confine(
                client.session, client.base_url, seconds=None, max_bytes=READ_MAX_BYTES, allow_loopback=True
            )
            fetch = from_fhir_server(client)
            app.extensions["fhircac-report-fetch"] = fetch
        return fetch


@report.get("/report/<patient_id>")
def from_server(patient_id: str) -> Response:
    settings: Settings = current_app.config["FHIRCAC"]
    if not FHIR_ID.fullmatch(patient_id):
        return _refusal(400, [Problem("patient", "not a FHIR id (1-64 of A-Z a-z 0-9 - .)")])
    server = settings.fhir_base_url
    if server is None:
        problem = Problem(
            "(configuration)", "FHIRCAC_FHIR_BASE_URL is not set, so there is no server to read"
        )
        return _refusal(503, [problem], "not-supported")
    if settings.report_auth:
        grant = None
        if settings.report_key is not None:
            grant = links.opened(settings.report_key, request.args.get("access", ""), patient_id, server)
        if grant is None or not _still_trusted(settings, grant):
            problem = Problem(
                "access", "open the report from the EHR again: the link is missing, expired or wrong"
            )
            return _refusal(401, [problem], "login")
    today = datetime.now(UTC).date()
    try:
        fetch = _fetcher(current_app._get_current_object())  # type: ignore[attr-defined]
        with bounded.within(READ_SECONDS):
            data = fetched(fetch, patient_id, get_policy(settings.policy), today)
        return _page(data)
    except ReportRefused as refusal:
        return _refused(refusal)
    except AuthError as error:
        log.warning("report: the FHIR server refused fhircac's credentials (%s)", type(error).__name__)
        return _refusal(
            503, [Problem("(FHIR server)", "fhircac could not sign in to the FHIR server")], "transient"
        )
    except FhirError as error:
        status = 503 if error.status is None or error.status >= 500 else 502
        log.warning("report: FHIR server error %s", error.status)
        return _refusal(status, [Problem("(FHIR server)", "the FHIR server could not be read")], "transient")


@report.post("/report")
def from_body() -> Response:
    settings: Settings = current_app.config["FHIRCAC"]
    if not request.is_json:
        return _refusal(
            415, [Problem("(body)", "send a FHIR Bundle as application/fhir+json")], "not-supported"
        )
    document, issues = parse_json(request.get_data(cache=False), "(body)")
    if issues:
        return _refusal(400, [Problem("(body)", issue.message) for issue in issues], "structure")
    if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
        return _refusal(400, [Problem("(body)", "not a FHIR resource: a JSON object with resourceType")])
    patient_id = request.args.get("patient") or None
    if patient_id is not None and not FHIR_ID.fullmatch(patient_id):
        return _refusal(400, [Problem("patient", "not a FHIR id (1-64 of A-Z a-z 0-9 - .)")])
    try:
        today = datetime.now(UTC).date()
        return _page(assessed([("(body)", document)], patient_id, get_policy(settings.policy), today))
    except ReportRefused as refusal:
        return _refused(refusal)
