"""fhircac's one log configuration (fhircac.logs): format, JSON lines, redaction, gunicorn's logs."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from gunicorn.config import Config

from fhircac import logs
from fhircac.config import ConfigError, Settings
from fhircac.web.access_log import RedactingLogger

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|DEBUG|ERROR) [\w.]+ .+$")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root, fhircac = logging.getLogger(), logging.getLogger("fhircac")
    handlers, level, fhircac_level = list(root.handlers), root.level, fhircac.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    fhircac.setLevel(fhircac_level)


def record(message: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("fhircac.web.cds", level, __file__, 1, message, args, None)


def test_a_text_line_has_timestamp_level_logger_and_message() -> None:
    line = logs.Formatter("text").format(record("CDS call refused: %s", "replay"))
    assert TEXT_LINE.match(line), line
    assert line.endswith(" INFO fhircac.web.cds CDS call refused: replay")


def test_a_json_line_is_one_object_with_the_same_fields_and_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failing = logging.LogRecord("fhircac.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = logs.Formatter("json").format(failing)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "ERROR" and data["logger"] == "fhircac.x" and data["message"] == "failed"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", data["time"])
    assert "ValueError: boom" in data["exception"]


@pytest.mark.parametrize(
    ("message", "kept", "gone"),
    [
        ("Authorization: Bearer s3cr3t-token", "Bearer …", "s3cr3t-token"),
        ("token eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2ln given", "token … given", "eyJhbGci"),
        ("Observation/cac-ex06-scan-2022/_history/2: written", "Observation/…/_history/2", "cac-ex06"),
        ("GET http://127.0.0.1/fhir/Patient/p-123 -> 200", "/fhir/Patient/… -> 200", "p-123"),
    ],
)
def test_tokens_and_resource_ids_are_blanked_in_every_format(message: str, kept: str, gone: str) -> None:
    for fmt in logs.FORMATS:
        line = logs.Formatter(fmt).format(record(message))
        assert kept in line and gone not in line, line


def test_configure_replaces_its_handler_and_keeps_library_debug_out() -> None:
    stream = io.StringIO()
    logs.configure("debug", "text", stream)
    logs.configure("debug", "text", stream)
    mine = [h for h in logging.getLogger().handlers if h.get_name() == "fhircac"]
    assert len(mine) == 1
    logging.getLogger("fhircac.worker").debug("one %s", "debug line")
    logging.getLogger("urllib3.connectionpool").debug("GET /fhir/Patient?name=x")
    logging.getLogger("urllib3.connectionpool").warning("Retrying")
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "DEBUG fhircac.worker one debug line",
        "WARNING urllib3.connectionpool Retrying",
    ]


def test_info_is_shown_by_default() -> None:
    stream = io.StringIO()
    settings = Settings.from_env({})
    logs.configure(settings.log_level, settings.log_format, stream)
    logging.getLogger("fhircac.web.cds").info("CDS call refused: replay")
    assert "INFO fhircac.web.cds CDS call refused: replay" in stream.getvalue()


def test_gunicorn_logs_use_the_same_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRCAC_LOG_FORMAT", "json")
    cfg = Config()
    cfg.set("accesslog", "-")
    logger = RedactingLogger(cfg)
    for gunicorn_logger in (logger.error_log, logger.access_log):
        formatters = [handler.formatter for handler in gunicorn_logger.handlers]
        assert formatters and all(isinstance(f, logs.Formatter) and f.json for f in formatters)
    assert [h for h in logging.getLogger().handlers if h.get_name() == "fhircac"]
    assert logging.getLogger("fhircac").getEffectiveLevel() == logging.INFO


@pytest.mark.parametrize(("name", "value"), [("FHIRCAC_LOG_FORMAT", "xml"), ("FHIRCAC_LOG_LEVEL", "loud")])
def test_bad_log_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}='{value}': use one of"):
        Settings.from_env({name: value})
    accepted = Settings.from_env({name: "WARNING" if name.endswith("LEVEL") else "JSON"})
    assert (accepted.log_level, accepted.log_format) in (("warning", "text"), ("info", "json"))
