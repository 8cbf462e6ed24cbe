"""Shared fixtures for tests against the real test FHIR server (HAPI FHIR JPA, started here)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import processes  # noqa: E402
from hapi_server import HapiServer, free_port  # noqa: E402

from fhircac.fhir.client import FhirClient  # noqa: E402
from tests.log_scan import findings  # noqa: E402

EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]-*.json"))
SECRET_SETTINGS = ("FHIRCAC_HOOK_TOKEN", "FHIRCAC_REPORT_KEY", "FHIRCAC_FHIR_TOKEN")
# Every log a fhircac process of this run wrote, with the secrets it was given (checked at the end).
FHIRCAC_LOGS: list[tuple[Path, tuple[str, ...]]] = []


def fhircac_log(path: Path, env: dict[str, str]) -> Path:
    """Register a log of a fhircac process for the end-of-run PHI and secrets check."""
    FHIRCAC_LOGS.append((path, tuple(env[name] for name in SECRET_SETTINGS if env.get(name))))
    return path


@pytest.fixture(scope="session", autouse=True)
def logs_hold_no_phi_or_secrets() -> Iterator[None]:
    """After the integration run: no line of any fhircac log holds a patient id, name or birth date,
    a token or a key (tests/log_scan.py). Fails the run (an error at teardown) if one does."""
    yield
    problems = []
    for path, secrets in FHIRCAC_LOGS:
        if path.exists():
            problems += [f"{path}: {finding}" for finding in findings(path.read_text(), secrets)]
    if problems:
        pytest.fail("PHI or secrets in fhircac logs:\n" + "\n".join(problems[:50]))


@pytest.fixture(scope="session")
def hapi() -> Iterator[HapiServer]:
    """One HAPI server for the whole run (about 20-40 s to start); tests use their own patient ids."""
    server = HapiServer(log_path=ROOT / ".artifacts" / "hapi-session.log")
    server.log_path.parent.mkdir(exist_ok=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fhir(hapi: HapiServer) -> Iterator[FhirClient]:
    client = FhirClient(hapi.base_url, retries=2, backoff_factor=0.1)
    try:
        yield client
    finally:
        client.close()


def load_example(client: FhirClient, path: Path) -> dict[str, Any]:
    """PUT an example transaction into the server (client ids, so loading twice is harmless)."""
    bundle = json.loads(path.read_text())
    client.transaction(bundle)
    return bundle


def patient_id(bundle: dict[str, Any]) -> str:
    return next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")


# Under load gunicorn listens well before its workers have imported the app: the wait is long, and
# a passing run does not pay for it.
SERVICE_STARTUP_SECONDS = 180


@contextmanager
def fhircac_service(
    settings: dict[str, str], log_path: Path, cwd: Path | None = None, argv: list[str] | None = None
) -> Iterator[str]:
    """``fhircac serve`` (gunicorn, 2 workers) on a free 127.0.0.1 port; yields its base URL, which is
    also its ``FHIRCAC_PUBLIC_BASE_URL``. Its output goes to ``log_path``, checked for tracebacks.
    Started in a process group of its own and stopped with it, whatever happens (``processes``)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix="fhircac-data-")  # nothing carries over between runs
    env = {
        **os.environ,
        "FHIRCAC_WORKERS": "2",
        "FHIRCAC_PUBLIC_BASE_URL": base_url,
        "FHIRCAC_DATA_DIR": data_dir,
        **settings,
    }
    command = argv or [sys.executable, "-m", "fhircac", "serve"]
    log_path.unlink(missing_ok=True)
    fhircac_log(log_path, env)
    try:
        with processes.running(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            log_path,
            lambda: processes.http_ok(f"{base_url}/healthz", timeout=2),
            timeout=SERVICE_STARTUP_SECONDS,
            what="fhircac serve",
            env=env,
            cwd=cwd,
        ):
            yield base_url
    except processes.ProcessError as error:
        pytest.fail(str(error))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    assert "Traceback" not in log_path.read_text()
