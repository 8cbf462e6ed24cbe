"""The Flask app factory. Routes are thin: parse, call the core, serialise."""

from __future__ import annotations

import logging
from datetime import date

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from fhircac import __version__, storage
from fhircac.calc_input import calculate
from fhircac.clinical.errors import InvalidInput, Problem
from fhircac.config import Settings
from fhircac.evaluate import parse_json
from fhircac.web.cds import install as install_cds
from fhircac.web.errors import outcome_response, register_error_handlers
from fhircac.web.hooks import hooks
from fhircac.web.report import install as install_report

core = Blueprint("core", __name__)


@core.get("/healthz")
def healthz() -> Response:
    """Liveness, and whether fhircac's own files can be used (503 when one cannot)."""
    settings: Settings = current_app.config["FHIRCAC"]
    problems = {"cds": current_app.extensions["fhircac-cds"].feedback.problem()}
    if settings.fhir_base_url is not None:  # notifications use the worker's state file
        found = storage.problem(settings.state_file)
        problems["state"] = None if found is None else f"FHIRCAC_STATE_FILE {settings.state_file}: {found}"
    healthy = not any(problems.values())
    response = jsonify(
        {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "storage": {name: problem or "ok" for name, problem in problems.items()},
        }
    )
    response.status_code = 200 if healthy else 503
    return response


@core.get("/")
def index() -> Response:
    return jsonify(
        {
            "service": "fhircac",
            "version": __version__,
            "policy": current_app.config["FHIRCAC"].policy,
            "endpoints": {
                "GET /healthz": "liveness",
                "POST /calc": "interpret one calculator input (JSON)",
                "POST /fhir-hook, PUT /fhir-hook/Observation/{id}": "FHIR Subscription notifications",
                "GET /cds-services": "CDS Hooks discovery",
                "POST /cds-services/{id}": "CDS calls: cac-patient-view, cac-order-select, cac-order-sign",
                "POST /cds-services/{id}/feedback": "CDS Hooks card feedback",
                "GET /cds-feedback/summary": "acceptance of CDS cards per card kind",
                "GET /rules": "the policies, rules and sources cards cite",
                "GET /report/{patient}": "the patient and clinician report (a signed link from a CDS card)",
                "POST /report": "the report page for a posted FHIR Bundle",
            },
        }
    )


@core.post("/calc")
def calc() -> Response:
    if not request.is_json:
        return outcome_response(
            [Problem("(body)", "send the input as application/json")], 415, "not-supported"
        )
    data, issues = parse_json(request.get_data(cache=False), "(body)")
    if issues:
        return outcome_response([Problem("(body)", issue.message) for issue in issues], 400)
    if isinstance(data, dict) and "policy" not in data:
        data = {**data, "policy": current_app.config["FHIRCAC"].policy}
    try:
        return jsonify(calculate(data, date.today()))
    except InvalidInput as error:
        return outcome_response(error.problems, 400)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("fhircac")
    app.config["FHIRCAC"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.register_blueprint(core)
    app.register_blueprint(hooks)
    install_cds(app, settings)
    install_report(app, settings)
    register_error_handlers(app)
    logging.getLogger("fhircac").setLevel(settings.log_level.upper())
    return app
