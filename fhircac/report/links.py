"""Signed report links: a CDS card may link to ``/report/{patient}`` without exposing every patient.

The link carries a short-lived HS256 JWT (PyJWT), signed with ``FHIRCAC_REPORT_KEY``, that names a
``Grant``: the one patient, the FHIR server holding it, and the CDS client (``iss``, ``tenant``) that
showed it may read that patient there. It is a capability, so the page sends ``Referrer-Policy:
no-referrer`` and no log line holds a query string. A SMART on FHIR launch would replace it with the
EHR's own token (``fhircac.report.data``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

AUDIENCE = "fhircac-report"
ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
MAX_SECONDS = 86_400  # the longest FHIRCAC_REPORT_LINK_SECONDS: a longer-lived token never opens


@dataclass(frozen=True)
class Grant:
    """Who may see which report: ``client`` is the CDS client's ``iss`` ("" when CDS client
    authentication is off, for local development), ``tenant`` its tenant claim when it sent one."""

    patient_id: str
    fhir_server: str
    client: str
    tenant: str | None = None


def sign(key: str, grant: Grant, seconds: int, now: datetime | None = None) -> str:
    """A link to ``grant.patient_id`` as held by ``grant.fhir_server``: a link made for one server
    never opens a report read from another (after a reconfiguration, say)."""
    now = now or datetime.now(UTC)
    claims = {
        "sub": grant.patient_id,
        "fhir": grant.fhir_server,
        "client": grant.client,
        "tenant": grant.tenant,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=seconds),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def opened(key: str, token: str, patient_id: str, fhir_server: str) -> Grant | None:
    """The grant of ``token`` when it is a valid, unexpired link for ``patient_id`` on
    ``fhir_server``; else None."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            leeway=LEEWAY_SECONDS,
            options={"require": ["sub", "aud", "exp", "iat", "fhir", "client"]},
        )
    except jwt.PyJWTError:
        return None
    lifetime = claims["exp"] - claims["iat"]
    if not isinstance(lifetime, int | float) or lifetime > MAX_SECONDS:
        return None
    tenant = claims.get("tenant")
    client = claims["client"]
    if claims["sub"] != patient_id or claims["fhir"] != fhir_server or not isinstance(client, str):
        return None
    return Grant(patient_id, fhir_server, client, tenant if isinstance(tenant, str) else None)
