"""Problems and notes found while reading FHIR input, and their OperationOutcome form.

``error`` issues make a patient (or a document) unusable: ``fhircac evaluate`` refuses it and
assesses the others (exit 3 for such a partial run, 2 when nothing could be assessed);
``warning`` and ``information`` issues say what was ignored or assumed, and travel with the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True)
class Issue:
    severity: Severity
    code: str  # OperationOutcome issue type: invalid, structure, value, not-found, code-invalid, …
    location: str  # FHIRPath-like, prefixed with where the resource came from
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity in ("fatal", "error")

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def has_errors(issues: list[Issue]) -> bool:
    return any(issue.is_error for issue in issues)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    if not issues:
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "no issues"}],
        }
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": issue.severity,
                "code": issue.code,
                "diagnostics": issue.message,
                "expression": [issue.location],
            }
            for issue in issues
        ],
    }
