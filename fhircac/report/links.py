"""Signed report links: a CDS card may link to ``/report/{patient}`` without exposing every patient.

The link carries a short-lived HS256 JWT (PyJWT) naming the one patient it opens, signed with
``FHIRCAC_REPORT_KEY``. It is a capability, so the page sends ``Referrer-Policy: no-referrer`` and
the access log records paths only. A SMART on FHIR launch would replace it with the EHR's own token.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt

AUDIENCE = "fhircac-report"
ALGORITHM = "HS256"
LEEWAY_SECONDS = 30


def sign(key: str, patient_id: str, fhir_server: str, seconds: int, now: datetime | None = None) -> str:
    """A link to ``patient_id`` as held by ``fhir_server``: a link made for one server never opens
    a report read from another (after a reconfiguration, say)."""
    now = now or datetime.now(UTC)
    claims = {
        "sub": patient_id,
        "fhir": fhir_server,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=seconds),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def opens(key: str, token: str, patient_id: str, fhir_server: str) -> bool:
    """True when ``token`` is a valid, unexpired link for ``patient_id`` on ``fhir_server``."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            leeway=LEEWAY_SECONDS,
            options={"require": ["sub", "aud", "exp", "iat", "fhir"]},
        )
    except jwt.PyJWTError:
        return False
    return claims.get("sub") == patient_id and claims.get("fhir") == fhir_server
