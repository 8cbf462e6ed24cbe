"""CDS Hooks requests for tests: a patient's resources sorted into the prefetch keys fhircac publishes."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from fhircac.fhir import codes

_CAC = {code for _, code in codes.CAC_CODES}


def _is_cac(resource: dict[str, Any]) -> bool:
    codings = (resource.get("code") or {}).get("coding") or []
    return resource["resourceType"] == "Observation" and any(c.get("code") in _CAC for c in codings)


def prefetch_key(resource: dict[str, Any]) -> str | None:
    """Which of fhircac's prefetch templates would return ``resource`` (None: none of them)."""
    kind = resource["resourceType"]
    if kind == "Observation":
        return "cacScores" if _is_cac(resource) else "observations"
    return {
        "Patient": "patient",
        "MedicationStatement": "medicationStatements",
        "Medication": "medicationStatements",  # _include=MedicationStatement:medication
        "MedicationRequest": "medicationRequests",
        "Condition": "conditions",
        "Procedure": "procedures",
        "FamilyMemberHistory": "familyHistory",
        "CarePlan": "cacCarePlans",
    }.get(kind)


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def prefetch(resources: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """Every key of ``keys``: the Patient as a resource (or null), searches as searchset Bundles."""
    result: dict[str, Any] = {}
    for key in keys:
        found = [r for r in resources if prefetch_key(r) == key]
        if key == "patient":
            result[key] = found[0] if found else None
        else:
            result[key] = searchset(found)
    return result


def request(
    hook: str,
    patient_id: str,
    resources: list[dict[str, Any]] | None = None,
    keys: list[str] | None = None,
    draft_orders: list[dict[str, Any]] | None = None,
    selections: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": patient_id}
    if draft_orders is not None:
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in draft_orders],
        }
    if selections is not None:
        context["selections"] = selections
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, **extra}
    if resources is not None and keys is not None:
        body["prefetch"] = prefetch(resources, keys)
    return body


def scan_order(id: str = "draft-cac", patient_id: str = "p1", when: str | None = None) -> dict[str, Any]:
    order: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": id,
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": codes.CPT, "code": "75571"}], "text": "CT heart calcium scoring"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if when:
        order["occurrenceDateTime"] = when
    return order


def aspirin_order(id: str = "draft-aspirin", patient_id: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": id,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": codes.RXNORM, "code": "1191", "display": "aspirin"}],
            "text": "aspirin 81 mg",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def client_token(
    private_key: Any,
    audience: str,
    *,
    iss: str = "https://ehr.test",
    kid: str = "k1",
    algorithm: str = "ES384",
    lifetime: int = 300,
    **claims: Any,
) -> str:
    """A CDS client JWT as the spec describes it (fresh jti every time)."""
    now = int(time.time())
    payload = {
        "iss": iss,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode(payload, private_key, algorithm=algorithm, headers={"kid": kid, "typ": "JWT"})


def authorization(access_token: str) -> dict[str, Any]:
    """A request's ``fhirAuthorization`` (CDS Hooks 2.0) carrying ``access_token``."""
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds-service",
    }
