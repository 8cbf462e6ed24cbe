"""Shared fixtures for tests against the real test FHIR server (HAPI FHIR JPA, started here)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from hapi_server import HapiServer  # noqa: E402

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
