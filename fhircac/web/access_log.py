"""gunicorn's logs in fhircac's format (fhircac.logs), without identifiers or tokens: paths that
name a patient or a resource are shortened, and query strings (report links carry their token
there) never appear.

The access log format already leaves out query strings; gunicorn's error log writes the raw URI of a
failed request ("Error handling request GET /report/…?access=…") and, at debug level, every path:
every line of it passes through ``redact`` too.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

from fhircac import logs
from fhircac.config import Settings

_IDENTIFYING = re.compile(r"^(/report|/fhir-hook/Observation)/[^/]+")
_IDENTIFYING_ANYWHERE = re.compile(r"(/report|/fhir-hook/Observation)/[^/\s?#\"']+")
_QUERY = re.compile(r"\?[^\s\"']*")


def redact_path(path: str) -> str:
    return _IDENTIFYING.sub(r"\1/…", path)


def redact(text: str) -> str:
    """Any text that may hold a request URI: no query string, no identifying path segment."""
    return _IDENTIFYING_ANYWHERE.sub(r"\1/…", _QUERY.sub("?…", text))


def _clean(msg: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    return (
        redact(msg) if isinstance(msg, str) else msg,
        tuple(redact(arg) if isinstance(arg, str) else arg for arg in args),
    )


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

    def critical(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().critical(*_flat(_clean(msg, args)), **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().error(*_flat(_clean(msg, args)), **kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().warning(*_flat(_clean(msg, args)), **kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().info(*_flat(_clean(msg, args)), **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().debug(*_flat(_clean(msg, args)), **kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().exception(*_flat(_clean(msg, args)), **kwargs)

    def log(self, lvl: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().log(lvl, *_flat(_clean(msg, args)), **kwargs)


def _flat(cleaned: tuple[Any, tuple[Any, ...]]) -> tuple[Any, ...]:
    msg, args = cleaned
    return (msg, *args)
