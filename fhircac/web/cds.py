"""CDS Hooks 2.0 over HTTP: discovery, the three services, feedback and its summary.

    GET  /cds-services                   discovery
    POST /cds-services/{id}              a hook call → {"cards": [...]}
    POST /cds-services/{id}/feedback     the clinician accepted or overrode cards
    GET  /cds-feedback/summary           acceptance per card kind (no patient data)
    GET  /rules                          the policies, rules and sources cards cite (card source.url)

Every CDS call carries the client's JWT (aud = the URL called); a refused token gets 401 and no
reason (the reason goes to the log). Errors are JSON OperationOutcomes: 400 for a body that is
not a valid call (oversized bodies included, so EHRs see one kind of client error), 404 for an
unknown service, 412 when data the service needs is neither prefetched nor reachable.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_cors import CORS
from werkzeug.exceptions import RequestEntityTooLarge

from fhircac.cdshooks.feedback import FeedbackRefused, FeedbackStore
from fhircac.cdshooks.prefetch import BadPrefetch, Gathered, PrefetchUnavailable
from fhircac.cdshooks.schemas import feedback_problems, request_problems
from fhircac.cdshooks.security import (
    Claims,
    ReplayGuard,
    TrustedClient,
    Unauthorized,
    Verifier,
    load_clients,
)
from fhircac.cdshooks.services import SERVICES, Service, Situation, call
from fhircac.clinical import citations
from fhircac.clinical.policies import POLICIES, get_policy
from fhircac.config import ConfigError, Settings
from fhircac.evaluate import parse_json
from fhircac.fhir import bounded
from fhircac.fhir.auth import BearerToken, is_loopback
from fhircac.fhir.client import FhirClient, FhirError
from fhircac.fhir.conformance import PROFILES_DIR
from fhircac.fhir.issues import Issue, operation_outcome
from fhircac.report.links import Grant
from fhircac.web.report import link as report_link

log = logging.getLogger(__name__)
cds = Blueprint("cds", __name__)
JSON = "application/json"


@dataclass
class CdsRuntime:
    """What the CDS endpoints share within one process."""

    verifier: Verifier | None  # None: verification turned off (FHIRCAC_CDS_AUTH=off)
    feedback: FeedbackStore


def install(app: Flask, settings: Settings) -> None:
    """Register the CDS blueprint, CORS, the feedback store and the JWT verifier (fail fast on a bad
    trusted-clients file: a service that cannot authenticate anyone should not start quietly)."""
    feedback = FeedbackStore(settings.cds_db, settings.cds_retention_days)
    verifier = None
    if settings.cds_auth:
        clients = trusted_clients(settings)
        if not settings.cds_clients_file:
            log.warning("no trusted CDS clients (FHIRCAC_CDS_CLIENTS unset): every CDS Hooks call gets 401")
        verifier = Verifier(clients, ReplayGuard(settings.cds_db), fetch_timeout=settings.cds_fetch_timeout)
    else:
        log.warning(
            "CDS Hooks JWT verification is OFF (FHIRCAC_CDS_AUTH=off): any caller is trusted. "
            "For local development only."
        )
    app.extensions["fhircac-cds"] = CdsRuntime(verifier, feedback)
    app.register_blueprint(cds)
    CORS(
        app,
        resources={r"/cds-services(/.*)?": {}, r"/cds-feedback/.*": {}},
        origins=list(settings.cors_origins),
        allow_headers=["Authorization", "Content-Type"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
        supports_credentials=False,
    )


def trusted_clients(settings: Settings) -> dict[str, TrustedClient]:
    """The trusted CDS clients, or ConfigError: ``fhircac serve`` checks this before gunicorn starts."""
    if not settings.cds_clients_file:
        return {}
    if not settings.public_base_url:
        raise ConfigError(
            "FHIRCAC_PUBLIC_BASE_URL must be set when CDS clients are trusted: a client JWT's aud is "
            "checked against it, never against the Host header a caller chooses"
        )
    try:
        return load_clients(settings.cds_clients_file)
    except ValueError as error:
        raise ConfigError(f"FHIRCAC_CDS_CLIENTS: {error}") from None


def _runtime() -> CdsRuntime:
    runtime: CdsRuntime = current_app.extensions["fhircac-cds"]
    return runtime


def _settings() -> Settings:
    settings: Settings = current_app.config["FHIRCAC"]
    return settings


def _base_url() -> str:
    return _settings().public_base_url or request.host_url.rstrip("/")


def _error(status: int, problems: list[str], code: str = "invalid") -> Response:
    issues = [Issue("error", code, *_split(problem)) for problem in problems]
    response = jsonify(operation_outcome(issues))
    response.status_code = status
    response.mimetype = JSON
    return response


def _split(problem: str) -> tuple[str, str]:
    where, _, message = problem.partition(": ")
    return (where, message) if message else ("(request)", problem)


def _unauthorized() -> Response:
    response = jsonify(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
    )
    response.status_code = 401
    response.mimetype = JSON
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _authenticate() -> Claims | Response | None:
    """The caller's verified claims (None when verification is off), or the 401 answer unless the
    request carries a valid, fresh client JWT for exactly this URL."""
    verifier = _runtime().verifier
    if verifier is None:
        return None
    audience = _base_url() + request.path
    try:
        return verifier.verify(request.headers.get("Authorization"), audience)
    except Unauthorized as refusal:  # the reason (never the token) for the operator, nothing for the caller
        log.info("CDS call refused: %s (this endpoint's aud: %s)", refusal.reason, audience)
        return _unauthorized()


def _refused() -> Response | None:
    caller = _authenticate()
    return caller if isinstance(caller, Response) else None


def _json_body() -> tuple[Any, Response | None]:
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        limit = _settings().max_body_bytes
        return None, _error(400, [f"(body): larger than the limit of {limit} bytes (FHIRCAC_MAX_BODY_BYTES)"])
    if not raw:
        return None, _error(400, ["(body): empty; send the JSON request body"])
    data, issues = parse_json(raw, "(body)")
    if issues:
        return None, _error(400, [str(issue) for issue in issues])
    return data, None


# --- discovery ------------------------------------------------------------------------------------


@cds.get("/cds-services")
def discovery() -> Response:
    refused = _refused()
    if refused is not None:
        return refused
    return jsonify({"services": [service.discovery() for service in SERVICES.values()]})


# --- hook calls -----------------------------------------------------------------------------------


@cds.post("/cds-services/<service_id>")
def service_call(service_id: str) -> Response:
    caller = _authenticate()
    if isinstance(caller, Response):
        return caller
    service = SERVICES.get(service_id)
    if service is None:
        return _error(
            404, [f"(url): no CDS service {service_id!r}; GET /cds-services lists them"], "not-found"
        )
    body, bad = _json_body()
    if bad is not None:
        return bad
    problems = request_problems(service.hook, body)
    if problems:
        return _error(400, problems)
    if body["hook"] != service.hook:
        message = f"(body).hook: {body['hook']!r} sent to {service.id}, a {service.hook} service"
        return _error(400, [message])
    server = body.get("fhirServer")
    if server is not None:
        problem = _server_problem(server)
        if problem:
            return _error(400, [f"(body).fhirServer: {problem}"])
    return _answer(service, body, caller)


def _server_problem(server: str) -> str | None:
    try:
        parts = urlsplit(server)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as error:
        return f"not a usable URL ({error})"
    if not parts.hostname:
        return "not a usable URL (no host)"
    if "@" in parts.netloc:  # requests would send it as Basic auth, to wherever the URL points
        return "must not carry credentials (user@host); the token belongs in fhirAuthorization"
    loopback = is_loopback(server)
    if loopback and not _settings().cds_allow_loopback:
        return "a loopback address is not allowed (FHIRCAC_CDS_ALLOW_LOOPBACK, for tests)"
    if parts.scheme != "https" and not loopback:
        return "must be https (plain http only for a loopback address, when allowed)"
    return None


def _answer(service: Service, body: dict[str, Any], caller: Claims | None) -> Response:
    started = time.perf_counter()
    clients: list[FhirClient] = []
    deadline = time.monotonic() + 2 * _settings().cds_fetch_timeout
    client = _fhir_client_maker(body, clients, deadline)
    try:
        answer = call(service, body, _situation(body, caller, client), client, deadline)
    except PrefetchUnavailable as missing:
        return _error(412, [f"(body).prefetch.{missing.key}: {missing.why}"], "processing")
    except BadPrefetch as bad:
        return _error(400, [f"(body).prefetch.{bad.key}: {bad.why}"])
    finally:
        for made in clients:
            made.close()
    _runtime().feedback.record_cards(service.id, answer.cards)
    fetched = answer.gathered.fetched if answer.gathered else []
    log.debug(
        "%s: %d card(s), fetched %s, %.1f ms",
        service.id,
        len(answer.cards),
        ",".join(fetched) or "nothing",
        (time.perf_counter() - started) * 1000,
    )
    return jsonify({"cards": [card.to_json() for card in answer.cards]})


def _fhir_client_maker(
    body: dict[str, Any], made: list[FhirClient], deadline: float
) -> Callable[[], FhirClient | None]:
    """The EHR's FHIR server, made on first need; the access token is used for this call only.
    Every request to it ends by the call's ``deadline`` (time.monotonic), reads a bounded answer and
    stays under ``fhirServer`` (fhircac.fhir.bounded)."""

    def client() -> FhirClient | None:
        if made:
            return made[0]
        server = body.get("fhirServer")
        if server is None:
            return None
        token = (body.get("fhirAuthorization") or {}).get("access_token")
        timeout = float(_settings().cds_fetch_timeout)
        fhir = FhirClient(
            server, auth=BearerToken(token) if token else None, timeout=(timeout, timeout), retries=1
        )
        settings = _settings()
        bounded.confine(
            fhir.session,
            server,
            seconds=max(0.0, deadline - time.monotonic()),
            max_bytes=settings.cds_fetch_max_bytes,
            allow_loopback=settings.cds_allow_loopback,
        )
        made.append(fhir)
        return fhir

    return client


def _situation(
    body: dict[str, Any], caller: Claims | None, client: Callable[[], FhirClient | None]
) -> Situation:
    settings = _settings()
    now = datetime.now(UTC)
    base = _base_url()

    def report_url(patient_id: str, gathered: Gathered) -> str | None:
        grant = _report_grant(settings, body, caller, patient_id, gathered, client)
        return None if grant is None else report_link(settings, base, grant)

    writes_back = frozenset({*settings.servers(), *filter(None, [settings.fhir_base_url])})
    server = (body.get("fhirServer") or "").rstrip("/")
    return Situation(get_policy(settings.policy), now.date(), now, base, report_url, server in writes_back)


def _report_grant(
    settings: Settings,
    body: dict[str, Any],
    caller: Claims | None,
    patient_id: str,
    gathered: Gathered,
    client: Callable[[], FhirClient | None],
) -> Grant | None:
    """A report link only for a patient the caller has shown it may read on fhircac's own server:
    the hook's fhirServer is that server, and fhircac read the patient there with the caller's own
    token during this call (prefetch alone proves nothing: the caller can send any data). The link
    then names the caller (iss, tenant), and GET /report checks it again."""
    server = (body.get("fhirServer") or "").rstrip("/")
    authorization = body.get("fhirAuthorization") or {}
    if settings.fhir_base_url is None or server != settings.fhir_base_url:
        return None
    if not authorization.get("access_token") or authorization.get("patient") not in (None, patient_id):
        return None
    read_by_fhircac = "patient" in gathered.fetched and any(
        r.get("resourceType") == "Patient" and r.get("id") == patient_id for r in gathered.of("patient")
    )
    if not read_by_fhircac:
        fhir = client()
        try:
            if fhir is None or fhir.read("Patient", patient_id).get("id") != patient_id:
                return None
        except FhirError as error:
            log.info("no report link: the caller's token did not read the patient (%s)", error.status)
            return None
    return Grant(patient_id, server, caller.iss if caller else "", caller.tenant if caller else None)


# --- feedback -------------------------------------------------------------------------------------


@cds.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    refused = _refused()
    if refused is not None:
        return refused
    if service_id not in SERVICES:
        return _error(
            404, [f"(url): no CDS service {service_id!r}; GET /cds-services lists them"], "not-found"
        )
    body, bad = _json_body()
    if bad is not None:
        return bad
    problems = feedback_problems(body)
    if problems:
        return _error(400, problems)
    try:
        stored, repeated = _runtime().feedback.record_feedback(service_id, body["feedback"])
    except FeedbackRefused as refusal:
        return _error(400, [f"(body).feedback: {refusal}"], "business-rule")
    return jsonify({"stored": stored, "already_stored": repeated})


@cds.get("/cds-feedback/summary")
def feedback_summary() -> Response:
    return jsonify(_runtime().feedback.summary())


# --- the rules page cards link to -----------------------------------------------------------------


@cds.get("/rules")
def rules() -> Response:
    path = PROFILES_DIR / "CodeSystem-fhircac-rule.json"
    rule_system = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"concept": []}
    sources = [value for name, value in vars(citations).items() if name.isupper() and isinstance(value, str)]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>fhircac rules</title></head><body>",
        "<main><h1>fhircac: policies, rules and sources</h1><h2>Policies</h2><dl>",
    ]
    for policy in POLICIES.values():
        name = html.escape(policy.id.value)
        parts.append(
            f"<dt id='{name}'>{name} {html.escape(policy.version)}: {html.escape(policy.title)}</dt>"
            f"<dd>{html.escape(policy.basis)}</dd>"
        )
    parts.append("</dl><h2>Rules (statement ids on cards and in written resources)</h2><ul>")
    for concept in rule_system["concept"]:
        code = html.escape(concept["code"])
        parts.append(f"<li id='{code}'><code>{code}</code>: {html.escape(concept.get('display', ''))}</li>")
    parts.append(
        "</ul><h2 id='data'>Data fhircac could not interpret</h2><p>When the CAC data sent or fetched "
        "cannot be read (a score that is not a number or not possible, a unit fhircac does not know, "
        "a reference that does not resolve, a record that is not valid FHIR), fhircac gives no "
        "interpretation rather than a wrong one: the card lists each problem and where it is. What "
        "fhircac reads, and how, is described in its documentation (docs/reading.md).</p>"
    )
    parts.append("<h2>Sources</h2><ul>")
    parts += [f"<li>{html.escape(source)}</li>" for source in sources]
    parts.append("</ul></main></body></html>")
    return Response("".join(parts), mimetype="text/html")
