"""One logging configuration for ``fhircac serve`` (gunicorn's master and workers), ``fhircac poll``
and the other commands: every line has a UTC timestamp, the level, the logger and the message, as
text or, with ``FHIRCAC_LOG_FORMAT=json``, as one JSON object a line.

Log lines carry no PHI and no secrets: call sites log ids of rules, services and counts, not
patient data. As a last guard the formatter blanks anything shaped like a bearer token or a JWT,
and the id in every FHIR reference (``Observation/abc`` → ``Observation/…``): resource ids often
embed the patient's (the access log shortens such paths the same way, fhircac.web.access_log).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

FORMATS = ("text", "json")
_SECRET = re.compile(r"(?i)(bearer\s+)\S+|eyJ[\w-]{4,}\.[\w-]+\.[\w-]*")
_REFERENCE = re.compile(r"\b([A-Z][a-z]+(?:[A-Z][a-z]+)*/)[A-Za-z0-9\-.]{1,64}\b")  # Patient/123
_HANDLER_NAME = "fhircac"


def _redact(text: str) -> str:
    text = _SECRET.sub(lambda m: f"{m.group(1)}…" if m.group(1) else "…", text)
    return _REFERENCE.sub(r"\1…", text)


class Formatter(logging.Formatter):
    """``2026-12-03T10:05:31.123Z INFO fhircac.web.cds message`` or the same fields as JSON."""

    def __init__(self, fmt: str = "text") -> None:
        super().__init__()
        self.json = fmt == "json"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        message = _redact(record.getMessage())
        trace = _redact(self.formatException(record.exc_info)) if record.exc_info else None
        if self.json:
            line: dict[str, Any] = {
                "time": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": message,
            }
            if trace:
                line["exception"] = trace
            return json.dumps(line, ensure_ascii=False)
        text = f"{self.formatTime(record)} {record.levelname} {record.name} {message}"
        return f"{text}\n{trace}" if trace else text


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Whatever ``sys.stderr`` is when a line is written (as logging's last-resort handler does),
    so a redirected or captured stderr never leaves the handler writing to a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records through one stderr handler with fhircac's format (again: the
    handler is replaced, not added, so gunicorn's re-setup on HUP does not double lines)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(Formatter(fmt))
    root.addHandler(handler)
    wanted = logging.getLevelName(level.upper())
    # DEBUG is for fhircac's own lines; libraries' debug output (urllib3 names every URL) stays out
    root.setLevel(max(wanted, logging.INFO))
    logging.getLogger("fhircac").setLevel(wanted)
    return handler


def use_format(logger: logging.Logger, fmt: str) -> None:
    """Give a logger's own handlers (gunicorn's error and access logs) fhircac's format."""
    for handler in logger.handlers:
        handler.setFormatter(Formatter(fmt))
