"""Shared fixtures for tests against the real test FHIR server (HAPI FHIR JPA, started here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from hapi_server import HapiServer, free_port  # noqa: E402

from fhircac.fhir.client import FhirClient  # noqa: E402

EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]-*.json"))


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


@contextmanager
def fhircac_service(settings: dict[str, str], log_path: Path) -> Iterator[str]:
    """``fhircac serve`` (gunicorn, 2 workers) on a free 127.0.0.1 port; yields its base URL, which is
    also its ``FHIRCAC_PUBLIC_BASE_URL``. Its output goes to ``log_path``, checked for tracebacks."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FHIRCAC_WORKERS": "2", "FHIRCAC_PUBLIC_BASE_URL": base_url, **settings}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fhircac", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base_url}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            process.kill()
            pytest.fail(f"service did not start: {log_path.read_text()}")
        try:
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=20)
    assert "Traceback" not in log_path.read_text()
