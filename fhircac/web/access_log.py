"""gunicorn's logs in fhircac's format (fhircac.logs), and its access log without identifiers:
paths that name a patient or a resource are shortened.

The access log format already leaves out query strings (report links carry their token there).
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

from fhircac import logs
from fhircac.config import Settings

_IDENTIFYING = re.compile(r"^(/report|/fhir-hook/Observation)/[^/]+")


def redact_path(path: str) -> str:
    return _IDENTIFYING.sub(r"\1/…", path)


class RedactingLogger(Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        """Runs in the master before the workers fork, so they inherit it: fhircac's own loggers
        (INFO by default) and gunicorn's error and access logs all write fhircac's format."""
        super().setup(cfg)
        settings = Settings.from_env()  # `fhircac serve` checked it before starting gunicorn
        logs.configure(settings.log_level, settings.log_format)
        logs.use_format(self.error_log, settings.log_format)
        logs.use_format(self.access_log, settings.log_format)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact_path(str(atoms.get("U") or ""))
        atoms["r"] = "-"  # the request line holds the raw URI, query string included
        return atoms
