"""Every error the service returns is a FHIR OperationOutcome with the right status: never an HTML page,
never a 500 for something the client sent."""

from __future__ import annotations

import sqlite3
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from fhircac.clinical.errors import Problem
from fhircac.storage import StorageError, reason

FHIR_JSON = "application/fhir+json"


def operation_outcome(problems: list[Problem], code: str = "invalid") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": code,
                "diagnostics": f"{p.field}: {p.message}",
                "expression": [p.field],
            }
            for p in problems
        ],
    }


def outcome_response(problems: list[Problem], status: int, code: str = "invalid") -> Response:
    response = jsonify(operation_outcome(problems, code))
    response.status_code = status
    response.mimetype = FHIR_JSON
    return response


_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        return outcome_response(
            [Problem("(request)", error.description or error.name)],
            status,
            _HTTP_CODES.get(status, "invalid"),
        )

    @app.errorhandler(StorageError)
    @app.errorhandler(sqlite3.Error)
    def storage_unusable(error: Exception) -> Response:
        """fhircac's own files failed (locked, full, damaged): not the caller's fault, and passing."""
        if isinstance(error, sqlite3.Error):
            error = StorageError(f"a local store (FHIRCAC_STATE_FILE or FHIRCAC_CDS_DB): {reason(error)}")
        app.logger.error("storage: %s", error)
        response = outcome_response([Problem("(storage)", str(error))], 503, "transient")
        response.headers["Retry-After"] = "30"
        return response

    @app.errorhandler(TimeoutError)
    def slow_body(error: TimeoutError) -> Response:
        """The client paused its body longer than FHIRCAC_CLIENT_TIMEOUT (fhircac.web.worker)."""
        problem = Problem("(body)", "the request body stopped arriving (FHIRCAC_CLIENT_TIMEOUT)")
        return outcome_response([problem], 408, "timeout")

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        app.logger.exception("unhandled error (%s)", type(error).__name__)
        return outcome_response([Problem("(server)", "internal error")], 500, "exception")
