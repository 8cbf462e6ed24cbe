"""One trusted client's JWKS host stops answering (review finding 7), against the real ``fhircac
serve``: callers sending tokens that name that client used to stall every CDS call ~5 s (a sync
worker waited on each fetch). Now the legitimate client is answered while those calls are stuck,
and after the first failure tokens naming the dead host are refused without fetching again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from tests import cds_builders as cb
from tests.http_stub import BlackHole
from tests.integration.conftest import fhircac_service

pytestmark = pytest.mark.integration

GOOD, DEAD = "https://ehr-good.test", "https://ehr-dead-jwks.test"
FETCH_SECONDS = 8  # FHIRCAC_CDS_FETCH_TIMEOUT: how long one hung JWKS fetch lasts
PATH = "/cds-services"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def hole() -> Iterator[BlackHole]:
    dead = BlackHole()
    yield dead
    dead.close()


@pytest.fixture(scope="module")
def service(key: Any, hole: BlackHole, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("jwks")
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    clients = [
        {"iss": GOOD, "jwks": {"keys": [{**public, "kid": "k1"}]}},
        {"iss": DEAD, "jwks_url": hole.url},
    ]
    (folder / "clients.json").write_text(json.dumps({"clients": clients}))
    settings = {
        "FHIRCAC_CDS_CLIENTS": str(folder / "clients.json"),
        "FHIRCAC_CDS_DB": str(folder / "cds.sqlite"),
        "FHIRCAC_CDS_FETCH_TIMEOUT": str(FETCH_SECONDS),
        "FHIRCAC_WORKERS": "1",  # one worker: a stall of the worker would stall everyone
    }
    with fhircac_service(settings, folder / "service.log") as base_url:
        yield base_url


def discovery(base_url: str, key: Any, iss: str, kid: str, timeout: float) -> int:
    token = cb.client_token(key, base_url + PATH, iss=iss, kid=kid)
    answer = requests.get(base_url + PATH, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    return answer.status_code


def test_a_dead_jwks_host_stalls_no_other_client(service: str, key: Any, hole: BlackHole) -> None:
    stuck: list[int] = []
    attackers = [
        threading.Thread(target=lambda i=i: stuck.append(discovery(service, key, DEAD, f"k{i}", 60)))
        for i in range(3)
    ]
    for attacker in attackers:
        attacker.start()
    deadline = time.monotonic() + 30
    while not hole.accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hole.accepted, "the JWKS fetch never started"
    # the fetch hangs for FETCH_SECONDS; the good client is answered meanwhile, several times
    answered = [discovery(service, key, GOOD, "k1", FETCH_SECONDS / 2) for _ in range(3)]
    assert answered == [200, 200, 200]
    assert any(attacker.is_alive() for attacker in attackers)
    for attacker in attackers:
        attacker.join(timeout=60)
    assert stuck == [401, 401, 401]
    # within the back-off: refused at once, and the dead host is not asked again
    fetches = len(hole.accepted)
    assert [discovery(service, key, DEAD, "k9", 30) for _ in range(5)] == [401] * 5
    assert len(hole.accepted) == fetches == 1
