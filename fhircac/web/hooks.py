"""The rest-hook endpoint a FHIR server's Subscription notifies (``fhircac subscribe`` registers it).

    POST /fhir-hook                   notification without payload → a poll pass, in the background (202)
    PUT  /fhir-hook/Observation/<id>  notification with the Observation → write-back for it (200)

The server sends back the ``Authorization: Bearer`` header ``fhircac subscribe`` registered
(``FHIRCAC_HOOK_TOKEN``); anything else gets 401. Answers are OperationOutcomes; 503 when the FHIR
server cannot be reached (the notifier retries, and polling catches up anyway).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from fhircac.clinical.errors import Problem
from fhircac.clinical.policies import get_policy
from fhircac.config import Settings
from fhircac.evaluate import parse_json
from fhircac.fhir.auth import AuthError
from fhircac.fhir.client import FhirError, client_from_env
from fhircac.fhir.issues import Issue, operation_outcome
from fhircac.web.errors import outcome_response
from fhircac.worker.poller import Poller, PollReport, ServerTrouble
from fhircac.worker.state import State
from fhircac.worker.subscription import notify

log = logging.getLogger(__name__)
hooks = Blueprint("hooks", __name__)
_lock = threading.Lock()
_pass_running = threading.Lock()


def _poller(app: Flask) -> Poller:
    """One poller per process, made on first use (gunicorn forks workers after the app is created)."""
    with _lock:
        poller = app.extensions.get("fhircac-poller")
        if poller is None:
            settings: Settings = app.config["FHIRCAC"]
            client = client_from_env(base_url=settings.fhir_base_url)
            state, policy = State(settings.state_file), get_policy(settings.policy)
            poller = Poller(client, state, policy, zone=settings.zone())
            app.extensions["fhircac-poller"] = poller
        return poller


def _refusal() -> Response | None:
    settings: Settings = current_app.config["FHIRCAC"]
    if settings.fhir_base_url is None:
        problem = Problem(
            "(configuration)", "FHIRCAC_FHIR_BASE_URL is not set, so notifications cannot be used"
        )
        return outcome_response([problem], 503, "not-supported")
    if not settings.hook_auth:
        return None
    expected = f"Bearer {settings.hook_token}" if settings.hook_token else None
    given = request.headers.get("Authorization", "")
    if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
        return outcome_response(
            [Problem("Authorization", "missing or wrong notification token")], 401, "login"
        )
    return None


def _information(message: str, status: int) -> Response:
    issue = Issue("information", "informational", "(notification)", message)
    return Response(json.dumps(operation_outcome([issue])), status, mimetype="application/fhir+json")


def _answer(report: PollReport) -> Response:
    counts = (
        f"{report.written} written, {report.unchanged} unchanged, "
        f"{report.skipped} skipped, {report.already} already handled, {report.deferred} deferred"
    )
    return _information(counts, 200)


def _run(resource: dict[str, Any]) -> Response:
    try:
        return _answer(notify(_poller(current_app._get_current_object()), resource))  # type: ignore[attr-defined]
    except (ServerTrouble, AuthError) as trouble:
        return outcome_response([Problem("(FHIR server)", str(trouble))], 503, "transient")
    except FhirError as error:
        if error.status is None or error.status >= 500:
            return outcome_response([Problem("(FHIR server)", str(error))], 503, "transient")
        return outcome_response([Problem("(FHIR server)", str(error))], 502, "exception")


@hooks.post("/fhir-hook")
def notification_without_payload() -> Response:
    refusal = _refusal()
    if refusal is not None:
        return refusal
    poller = _poller(current_app._get_current_object())  # type: ignore[attr-defined]
    if _pass_running.acquire(blocking=False):
        threading.Thread(target=_background_pass, args=(poller,), daemon=True).start()
        message = "a poll pass started"
    else:
        message = "a poll pass is already running; it will see this change"
    return _information(message, 202)


def _background_pass(poller: Poller) -> None:
    """A pass can take longer than a request may; one at a time per process."""
    try:
        poller.poll_once()
    except Exception as error:  # logged by type only: messages may quote data
        log.warning("poll pass after a notification failed: %s", type(error).__name__)
    finally:
        _pass_running.release()


@hooks.put("/fhir-hook/Observation/<observation_id>")
def notification_with_payload(observation_id: str) -> Response:
    refusal = _refusal()
    if refusal is not None:
        return refusal
    resource, issues = parse_json(request.get_data(cache=False) or b"null", "(body)")
    if issues:
        return outcome_response([Problem("(body)", issue.message) for issue in issues], 400)
    if not isinstance(resource, dict) or resource.get("resourceType") != "Observation":
        return outcome_response([Problem("(body)", "the notification must carry an Observation")], 400)
    for element in ("meta", "subject"):
        if element in resource and not isinstance(resource[element], dict):
            return outcome_response([Problem(f"Observation.{element}", "must be a JSON object")], 400)
    if str(resource.get("id")) != observation_id:
        problem = Problem("Observation.id", f"the body's id does not match the URL's ({observation_id})")
        return outcome_response([problem], 400)
    return _run(resource)
