"""gunicorn's access log without identifiers: paths that name a patient or a resource are shortened.

The log format already leaves out query strings (report links carry their token there).
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

_IDENTIFYING = re.compile(r"^(/report|/fhir-hook/Observation)/[^/]+")


def redact_path(path: str) -> str:
    return _IDENTIFYING.sub(r"\1/…", path)


class RedactingLogger(Logger):  # type: ignore[misc]
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact_path(str(atoms.get("U") or ""))
        atoms["r"] = "-"  # the request line holds the raw URI, query string included
        return atoms
