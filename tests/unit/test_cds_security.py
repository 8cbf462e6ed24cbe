"""CDS Client JWT verification: real keys, real signatures, and a local JWKS endpoint on 127.0.0.1.

Every refused token is checked for the reason it was refused, so a test cannot pass because the
token failed some other, earlier check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhircac.cdshooks.security import (
    ALGORITHMS,
    Claims,
    ReplayGuard,
    TrustConfigError,
    TrustedClient,
    Unauthorized,
    Verifier,
    load_clients,
)
from fhircac.storage import StorageError
from tests.http_stub import BlackHole

ISS = "https://ehr.example"
OTHER_ISS = "https://other-ehr.example"
URL_ISS = "https://url-ehr.example"
AUD = "https://cds.example/cds-services/cac-score"
JKU = "https://ehr.example/.well-known/jwks.json"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {
        "ec": ec.generate_private_key(ec.SECP384R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-other": ec.generate_private_key(ec.SECP384R1()),
        "ec-new": ec.generate_private_key(ec.SECP384R1()),
        "p256": ec.generate_private_key(ec.SECP256R1()),
    }


def public_jwk(private: PrivateKey, kid: str) -> dict[str, Any]:
    pub = private.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(pub, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(pub, as_dict=True)
    return {**jwk, "kid": kid}


def private_jwk(private: PrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return {**ECAlgorithm.to_jwk(private, as_dict=True), "kid": kid}
    return {**RSAAlgorithm.to_jwk(private, as_dict=True), "kid": kid}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "sub": "client-id",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def sign(
    private: PrivateKey,
    payload: dict[str, Any] | None = None,
    *,
    alg: str = "ES384",
    kid: str | None = "ec-1",
    **headers: Any,
) -> str:
    header: dict[str, Any] = {"typ": "JWT", **headers}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(claims() if payload is None else payload, private, algorithm=alg, headers=header)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], signer: Any = None) -> str:
    """A token built by hand, for what PyJWT refuses to produce (alg none, HS256 with a PEM secret)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = signer(signing_input.encode()) if signer else b""
    return f"{signing_input}.{b64(signature)}"


def bearer(token: str) -> str:
    return f"Bearer {token}"


def write_clients(directory: Path, clients: Any, name: str = "clients.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(clients if not isinstance(clients, list) else {"clients": clients}))
    return path


@pytest.fixture
def inline_clients(tmp_path: Path, keys: dict[str, PrivateKey]) -> dict[str, TrustedClient]:
    path = write_clients(
        tmp_path,
        [
            {
                "iss": ISS,
                "jwks": {"keys": [public_jwk(keys["ec"], "ec-1"), public_jwk(keys["rsa"], "rsa-1")]},
                "jku": [JKU],
            },
            {"iss": OTHER_ISS, "jwks": {"keys": [public_jwk(keys["ec-other"], "ec-1")]}},
        ],
    )
    return load_clients(path)


@pytest.fixture
def replay() -> Iterator[ReplayGuard]:
    guard = ReplayGuard(":memory:")
    yield guard
    guard.close()


@pytest.fixture
def verifier(inline_clients: dict[str, TrustedClient], replay: ReplayGuard) -> Verifier:
    return Verifier(inline_clients, replay)


def refused(verifier: Verifier, authorization: str | None, audience: str = AUD) -> str:
    with pytest.raises(Unauthorized) as info:
        verifier.verify(authorization, audience)
    return info.value.reason


class JwksServer:
    """Serves whatever JWK Set a test puts in `body` on 127.0.0.1, counting fetches."""

    def __init__(self) -> None:
        self.body: Any = {"keys": []}
        self.status = 200
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                data = server.body if isinstance(server.body, bytes) else json.dumps(server.body).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def url_verifier(
    tmp_path: Path, url: str, replay: ReplayGuard, *, extra_jku: list[str] | None = None, **options: Any
) -> Verifier:
    entry: dict[str, Any] = {"iss": URL_ISS, "jwks_url": url}
    if extra_jku:
        entry["jku"] = extra_jku
    return Verifier(load_clients(write_clients(tmp_path, [entry])), replay, fetch_timeout=2.0, **options)


# --- valid tokens -----------------------------------------------------------------------------------


def test_algorithms_are_the_fixed_allowlist() -> None:
    assert ALGORITHMS == ("ES384", "RS384")


def test_valid_es384_inline(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    payload = claims(tenant="hospital-7")
    result = verifier.verify(bearer(sign(keys["ec"], payload)), AUD)
    assert result == Claims(iss=ISS, jti=payload["jti"], tenant="hospital-7", expires=float(payload["exp"]))


def test_valid_rs384_inline(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    payload = claims()
    result = verifier.verify(bearer(sign(keys["rsa"], payload, alg="RS384", kid="rsa-1")), AUD)
    assert (result.iss, result.jti, result.tenant) == (ISS, payload["jti"], None)


def test_scheme_is_case_insensitive_and_typ_optional(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    token = sign(keys["ec"], typ=None)  # PyJWT drops a None typ
    assert "typ" not in jwt.get_unverified_header(token)
    assert verifier.verify(f"bEaReR  {token} ", AUD).iss == ISS
    lower_typ = sign(keys["ec"], typ="jwt")
    assert verifier.verify(bearer(lower_typ), AUD).iss == ISS


def test_aud_array_containing_the_endpoint(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    token = sign(keys["ec"], claims(aud=["https://elsewhere.example", AUD]))
    assert verifier.verify(bearer(token), AUD).iss == ISS


def test_unknown_claims_are_accepted(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    token = sign(keys["ec"], claims(nbf=int(time.time()) - 5, extra={"x": 1}))
    assert verifier.verify(bearer(token), AUD).iss == ISS


# --- keys from a jwks_url -----------------------------------------------------------------------------


def test_jwks_url_is_fetched_once_and_cached(
    tmp_path: Path, jwks_server: JwksServer, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    jwks_server.body = {"keys": [public_jwk(keys["ec"], "url-1")]}
    verifier = url_verifier(tmp_path, jwks_server.url, replay)
    for _ in range(3):
        token = sign(keys["ec"], claims(iss=URL_ISS), kid="url-1")
        assert verifier.verify(bearer(token), AUD).iss == URL_ISS
    assert jwks_server.fetches == 1


def test_key_rotation_new_kid_is_fetched(
    tmp_path: Path, jwks_server: JwksServer, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    jwks_server.body = {"keys": [public_jwk(keys["ec"], "url-1")]}
    verifier = url_verifier(tmp_path, jwks_server.url, replay, refetch_cooldown=0)
    assert verifier.verify(bearer(sign(keys["ec"], claims(iss=URL_ISS), kid="url-1")), AUD)
    jwks_server.body = {"keys": [public_jwk(keys["ec"], "url-1"), public_jwk(keys["ec-new"], "url-2")]}
    token = sign(keys["ec-new"], claims(iss=URL_ISS), kid="url-2")
    assert verifier.verify(bearer(token), AUD).iss == URL_ISS
    assert jwks_server.fetches == 2


def test_unknown_kid_refetch_is_rate_limited(
    tmp_path: Path, jwks_server: JwksServer, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    """A forged token needs only a known iss; unknown kids must not turn us into a fetch cannon."""
    jwks_server.body = {"keys": [public_jwk(keys["ec"], "url-1")]}
    verifier = url_verifier(tmp_path, jwks_server.url, replay)  # default cooldown
    assert verifier.verify(bearer(sign(keys["ec"], claims(iss=URL_ISS), kid="url-1")), AUD)
    for n in range(5):
        reason = refused(verifier, bearer(sign(keys["ec"], claims(iss=URL_ISS), kid=f"forged-{n}")))
        assert "unknown kid" in reason
    assert jwks_server.fetches == 1


def test_jwks_url_unreachable_is_unauthorized(
    tmp_path: Path, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    verifier = url_verifier(tmp_path, f"http://127.0.0.1:{port}/jwks.json", replay)
    reason = refused(verifier, bearer(sign(keys["ec"], claims(iss=URL_ISS), kid="url-1")))
    assert "JWKS fetch failed" in reason


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, {"error": "boom"}, "JWKS fetch failed"),
        (200, b"<html>not json</html>", "unusable"),
        (200, ["not", "an", "object"], "unusable"),
        (200, {"keys": []}, "unusable"),
    ],
)
def test_bad_jwks_response_is_unauthorized(
    tmp_path: Path,
    jwks_server: JwksServer,
    replay: ReplayGuard,
    keys: dict[str, PrivateKey],
    status: int,
    body: Any,
    expected: str,
) -> None:
    jwks_server.status, jwks_server.body = status, body
    verifier = url_verifier(tmp_path, jwks_server.url, replay)
    assert expected in refused(verifier, bearer(sign(keys["ec"], claims(iss=URL_ISS), kid="url-1")))


def test_weak_key_at_jwks_url_is_refused(
    tmp_path: Path, jwks_server: JwksServer, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    jwks_server.body = {"keys": [public_jwk(keys["p256"], "url-1")]}
    verifier = url_verifier(tmp_path, jwks_server.url, replay)
    token = sign(keys["p256"], claims(iss=URL_ISS), alg="ES256", kid="url-1", typ="JWT")
    assert "alg 'ES256' is not allowed" in refused(verifier, bearer(token))
    forged_alg = raw_token({"alg": "ES384", "kid": "url-1"}, claims(iss=URL_ISS))
    assert "P-384" in refused(verifier, bearer(forged_alg))


def test_jku_of_the_jwks_url_and_listed_extras_are_allowed(
    tmp_path: Path, jwks_server: JwksServer, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    jwks_server.body = {"keys": [public_jwk(keys["ec"], "url-1")]}
    extra = "https://url-ehr.example/other/jwks.json"
    verifier = url_verifier(tmp_path, jwks_server.url, replay, extra_jku=[extra])
    for jku in (jwks_server.url, extra):
        token = sign(keys["ec"], claims(iss=URL_ISS), kid="url-1", jku=jku)
        assert verifier.verify(bearer(token), AUD).iss == URL_ISS
    evil = sign(keys["ec"], claims(iss=URL_ISS), kid="url-1", jku="https://attacker.example/jwks.json")
    assert "jku" in refused(verifier, bearer(evil))
    assert jwks_server.fetches == 1  # only the pinned URL, never the jku


# --- header and issuer checks --------------------------------------------------------------------------


def test_jku_on_the_allowlist(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    assert verifier.verify(bearer(sign(keys["ec"], jku=JKU)), AUD).iss == ISS


@pytest.mark.parametrize("jku", ["https://attacker.example/jwks.json", ["https://ehr.example/jwks"]])
def test_jku_not_on_the_allowlist(verifier: Verifier, keys: dict[str, PrivateKey], jku: Any) -> None:
    assert "jku" in refused(verifier, bearer(sign(keys["ec"], jku=jku)))


def test_unknown_issuer(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    reason = refused(verifier, bearer(sign(keys["ec"], claims(iss="https://attacker.example"))))
    assert "unknown issuer 'https://attacker.example'" in reason


def test_wrong_audience(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    assert "aud" in refused(verifier, bearer(sign(keys["ec"], claims(aud="https://other.example/cds"))))
    token = sign(keys["ec"], claims(aud=["https://a.example", "https://b.example"]))
    assert "aud" in refused(verifier, bearer(token))


def test_typ_other_than_jwt(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    assert "typ" in refused(verifier, bearer(sign(keys["ec"], typ="at+jwt")))


def test_kid_missing(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    assert "kid" in refused(verifier, bearer(sign(keys["ec"], kid=None)))


def test_kid_unknown(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    assert "unknown kid 'nope'" in refused(verifier, bearer(sign(keys["ec"], kid="nope")))


def test_alg_must_match_key_type(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    token = sign(keys["rsa"], alg="RS384", kid="ec-1")
    assert "does not match" in refused(verifier, bearer(token))


# --- algorithm attacks ---------------------------------------------------------------------------------


def test_alg_none(verifier: Verifier) -> None:
    token = raw_token({"alg": "none", "typ": "JWT", "kid": "ec-1"}, claims())
    assert "alg 'none' is not allowed" in refused(verifier, bearer(token))


def test_hs256_signed_with_the_public_key(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    """Classic key confusion: the public key, as an HMAC secret, must never verify anything."""
    for key, kid in ((keys["rsa"], "rsa-1"), (keys["ec"], "ec-1")):
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = raw_token(
            {"alg": "HS256", "typ": "JWT", "kid": kid},
            claims(),
            lambda data, pem=pem: hmac.new(pem, data, hashlib.sha256).digest(),
        )
        assert "alg 'HS256' is not allowed" in refused(verifier, bearer(token))


def test_es256(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    token = sign(keys["p256"], alg="ES256", kid="ec-1")
    assert "alg 'ES256' is not allowed" in refused(verifier, bearer(token))


def test_signature_by_another_key_with_the_same_kid(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    token = sign(keys["ec-other"], kid="ec-1")
    assert "signature does not verify" in refused(verifier, bearer(token))


def test_tampered_payload(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    header, _, signature = sign(keys["ec"], claims(tenant="a")).split(".")
    forged = f"{header}.{b64(json.dumps(claims(tenant='b')).encode())}.{signature}"
    assert "signature does not verify" in refused(verifier, bearer(forged))


def test_other_issuers_key_does_not_verify(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    token = sign(keys["ec-other"], claims(iss=ISS), kid="ec-1")
    assert "signature" in refused(verifier, bearer(token))
    assert verifier.verify(bearer(sign(keys["ec-other"], claims(iss=OTHER_ISS))), AUD).iss == OTHER_ISS


# --- time and lifetime ---------------------------------------------------------------------------------


def test_expired_beyond_leeway(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    now = int(time.time())
    token = sign(keys["ec"], claims(iat=now - 400, exp=now - 61))
    assert "expired" in refused(verifier, bearer(token))


def test_expired_within_leeway(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    now = int(time.time())
    token = sign(keys["ec"], claims(iat=now - 400, exp=now - 30))
    assert verifier.verify(bearer(token), AUD).expires == now - 30


def test_iat_in_the_future(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    now = int(time.time())
    assert "iat" in refused(verifier, bearer(sign(keys["ec"], claims(iat=now + 600, exp=now + 900))))
    ok = sign(keys["ec"], claims(iat=now + 30, exp=now + 300))  # clock skew within leeway
    assert verifier.verify(bearer(ok), AUD).iss == ISS


def test_nbf_in_the_future(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    assert "nbf" in refused(verifier, bearer(sign(keys["ec"], claims(nbf=int(time.time()) + 600))))


def test_lifetime_over_max(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    now = int(time.time())
    assert "lifetime" in refused(verifier, bearer(sign(keys["ec"], claims(iat=now, exp=now + 3601))))
    ok = sign(keys["ec"], claims(iat=now, exp=now + 3600))
    assert verifier.verify(bearer(ok), AUD).iss == ISS


def test_max_lifetime_is_configurable(
    inline_clients: dict[str, TrustedClient], replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    strict = Verifier(inline_clients, replay, max_lifetime=300)
    now = int(time.time())
    assert "lifetime" in refused(strict, bearer(sign(keys["ec"], claims(iat=now, exp=now + 301))))


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_dates_must_be_numbers(verifier: Verifier, keys: dict[str, PrivateKey], claim: str) -> None:
    payload = claims()
    payload[claim] = str(payload[claim])
    assert "NumericDate" in refused(verifier, bearer(sign(keys["ec"], payload)))


# --- required claims -----------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
def test_missing_required_claim(verifier: Verifier, keys: dict[str, PrivateKey], claim: str) -> None:
    token = sign(keys["ec"], claims(**{claim: None}))
    assert claim in refused(verifier, bearer(token))


@pytest.mark.parametrize("jti", ["", 42])
def test_jti_must_be_a_non_empty_string(verifier: Verifier, keys: dict[str, PrivateKey], jti: Any) -> None:
    assert "jti" in refused(verifier, bearer(sign(keys["ec"], claims(jti=jti))))


def test_tenant_must_be_a_string(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    assert "tenant" in refused(verifier, bearer(sign(keys["ec"], claims(tenant=["a"]))))


# --- replay --------------------------------------------------------------------------------------------


def test_replay_is_refused(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    token = bearer(sign(keys["ec"]))
    assert verifier.verify(token, AUD).iss == ISS
    assert "replay" in refused(verifier, token)


def test_same_jti_from_two_issuers_is_fine(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    jti = "shared-nonce"
    assert verifier.verify(bearer(sign(keys["ec"], claims(jti=jti))), AUD).iss == ISS
    assert verifier.verify(bearer(sign(keys["ec-other"], claims(iss=OTHER_ISS, jti=jti))), AUD).jti == jti


def test_forged_tokens_do_not_reach_the_replay_store(
    verifier: Verifier, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    payload = claims()
    forged = sign(keys["ec-other"], payload, kid="ec-1")
    assert "signature" in refused(verifier, bearer(forged))
    assert verifier.verify(bearer(sign(keys["ec"], payload)), AUD).jti == payload["jti"]


def test_replay_seen_by_another_worker(
    tmp_path: Path, inline_clients: dict[str, TrustedClient], keys: dict[str, PrivateKey]
) -> None:
    """Two gunicorn workers: two ReplayGuards, two Verifiers, one SQLite file."""
    db = tmp_path / "state" / "nested" / "cds.sqlite"
    guard_a, guard_b = ReplayGuard(db), ReplayGuard(db)
    try:
        assert db.exists()
        worker_a, worker_b = Verifier(inline_clients, guard_a), Verifier(inline_clients, guard_b)
        token = bearer(sign(keys["ec"]))
        assert worker_a.verify(token, AUD).iss == ISS
        assert "replay" in refused(worker_b, token)
    finally:
        guard_a.close()
        guard_b.close()


def test_replay_guard_uses_wal(tmp_path: Path) -> None:
    guard = ReplayGuard(tmp_path / "cds.sqlite")
    guard.close()
    with sqlite3.connect(tmp_path / "cds.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_replay_guard_first_use(replay: ReplayGuard) -> None:
    expires = time.time() + 300
    assert replay.first_use(ISS, "a", expires) is True
    assert replay.first_use(ISS, "a", expires) is False
    assert replay.first_use(OTHER_ISS, "a", expires) is True


def test_replay_guard_is_thread_safe(tmp_path: Path) -> None:
    guard = ReplayGuard(tmp_path / "cds.sqlite")
    results: list[bool] = []
    lock = threading.Lock()

    def use() -> None:
        outcome = guard.first_use(ISS, "race", time.time() + 300)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    guard.close()
    assert sorted(results) == [False] * 15 + [True]


def test_replay_guard_purges_expired_entries(replay: ReplayGuard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ReplayGuard, "PURGE_EVERY", 2)
    assert replay.first_use(ISS, "old", time.time() - 10)
    assert replay.first_use(ISS, "live", time.time() + 300)  # second insert: purge runs
    assert replay.first_use(ISS, "old", time.time() + 300) is True  # gone, so new again
    assert replay.first_use(ISS, "live", time.time() + 300) is False  # unexpired entries stay


def test_replay_guard_remembers_through_the_leeway(
    verifier: Verifier, replay: ReplayGuard, keys: dict[str, PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token just past exp still verifies within leeway, so its jti must outlive exp."""
    seen: list[float] = []
    original = replay.first_use

    def spy(iss: str, jti: str, expires: float) -> bool:
        seen.append(expires)
        return original(iss, jti, expires)

    monkeypatch.setattr(replay, "first_use", spy)
    payload = claims()
    verifier.verify(bearer(sign(keys["ec"], payload)), AUD)
    assert seen == [payload["exp"] + 60]


# --- Authorization header ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, "no Authorization header"),
        ("", "no Authorization header"),
        ("Basic dXNlcjpwYXNz", "not Bearer"),
        ("Bearer", "missing"),
        ("Bearer   ", "missing"),
        ("Bearer a b", "malformed"),
        ("Bearer not-a-jwt", "malformed token"),
        ("Bearer a.b.c", "malformed token"),
    ],
)
def test_authorization_header_variants(verifier: Verifier, authorization: str | None, expected: str) -> None:
    assert expected in refused(verifier, authorization)


def test_a_store_fault_is_a_storage_error_never_a_pass_nor_a_401(
    verifier: Verifier, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    """Review finding 9: a full disk turned every CDS call into a 401 (the caller blamed). It fails
    closed still, as StorageError, which the web layer answers 503 with the reason."""
    replay.close()
    with pytest.raises(StorageError, match="FHIRCAC_CDS_DB"):
        verifier.verify(bearer(sign(keys["ec"])), AUD)


def test_reason_is_a_single_bounded_line(verifier: Verifier, keys: dict[str, PrivateKey]) -> None:
    reason = refused(verifier, bearer(sign(keys["ec"], claims(iss="https://x.example/\n" + "a" * 1000))))
    assert "\n" not in reason
    assert len(reason) <= 300


# --- load_clients --------------------------------------------------------------------------------------


def test_load_clients_builds_trusted_clients(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    path = write_clients(
        tmp_path,
        [
            {
                "iss": ISS,
                "jwks": {"keys": [public_jwk(keys["ec"], "ec-1"), public_jwk(keys["rsa"], "rsa-1")]},
            },
            {"iss": URL_ISS, "jwks_url": "https://url-ehr.example/jwks.json", "jku": [JKU]},
            {"iss": "https://dev.example", "jwks_url": "http://[::1]:8080/jwks.json"},
        ],
    )
    clients = load_clients(str(path))
    assert set(clients) == {ISS, URL_ISS, "https://dev.example"}
    inline = clients[ISS]
    assert inline.jwks is not None and inline.jwks_url is None and inline.jku == frozenset()
    assert {key.key_id for key in inline.jwks} == {"ec-1", "rsa-1"}
    fetched = clients[URL_ISS]
    assert fetched.jwks is None
    assert fetched.jku == frozenset({"https://url-ehr.example/jwks.json", JKU})


def _bad_client_cases(keys: dict[str, PrivateKey]) -> list[tuple[str, Any, str]]:
    ec_jwks = {"keys": [public_jwk(keys["ec"], "k1")]}
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return [
        (
            "both",
            {"iss": "https://b.example", "jwks": ec_jwks, "jwks_url": "https://b.example/j"},
            "exactly one",
        ),
        ("neither", {"iss": "https://b.example"}, "exactly one of jwks or jwks_url"),
        ("duplicate iss", {"iss": ISS, "jwks": ec_jwks}, "already given by clients[0]"),
        (
            "private key",
            {"iss": "https://b.example", "jwks": {"keys": [private_jwk(keys["ec"], "k")]}},
            "private",
        ),
        ("http url", {"iss": "https://b.example", "jwks_url": "http://b.example/jwks.json"}, "must be https"),
        ("file url", {"iss": "https://b.example", "jwks_url": "file:///etc/passwd"}, "must be https"),
        (
            "rsa 1024",
            {"iss": "https://b.example", "jwks": {"keys": [public_jwk(small_rsa, "k")]}},
            "1024 bits",
        ),
        ("p-256", {"iss": "https://b.example", "jwks": {"keys": [public_jwk(keys["p256"], "k")]}}, "P-384"),
        (
            "no kid",
            {"iss": "https://b.example", "jwks": {"keys": [public_jwk(keys["ec"], "")]}},
            "needs a kid",
        ),
        ("empty jwks", {"iss": "https://b.example", "jwks": {"keys": []}}, "JWK Set"),
        ("oct key", {"iss": "https://b.example", "jwks": {"keys": [{"kty": "oct", "kid": "k"}]}}, "kty"),
        (
            "alg mismatch",
            {"iss": "https://b.example", "jwks": {"keys": [{**public_jwk(keys["ec"], "k"), "alg": "ES256"}]}},
            "alg 'ES256'",
        ),
        ("no iss", {"jwks": ec_jwks}, "iss must be"),
        (
            "typo field",
            {"iss": "https://b.example", "jwks_uri": "https://b.example/j"},
            "unknown field(s) jwks_uri",
        ),
        ("jku not list", {"iss": "https://b.example", "jwks": ec_jwks, "jku": "https://x"}, "jku must be"),
        ("not object", "https://b.example", "must be an object"),
    ]


def test_load_clients_refuses_bad_entries(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    good = {"iss": ISS, "jwks": {"keys": [public_jwk(keys["ec"], "ec-1")]}}
    for name, bad, expected in _bad_client_cases(keys):
        path = write_clients(tmp_path, [good, bad], name=f"{name.replace(' ', '-')}.json")
        with pytest.raises(TrustConfigError) as info:
            load_clients(path)
        message = str(info.value)
        assert str(path) in message, name
        assert "clients[1]" in message, name
        assert expected in message, (name, message)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ("{not json", "not JSON"),
        ('{"issuers": []}', '{"clients": [...]}'),
        ('{"clients": []}', "at least one client"),
        ("[]", '{"clients": [...]}'),
    ],
)
def test_load_clients_refuses_bad_files(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "clients.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TrustConfigError) as info:
        load_clients(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_an_unreachable_jwks_host_is_backed_off_per_issuer(
    tmp_path: Path, replay: ReplayGuard, keys: dict[str, PrivateKey]
) -> None:
    """Review finding 7: every token naming the issuer used to trigger a new 5 s fetch. Now a failed
    fetch starts a back-off for that issuer, and other issuers are verified meanwhile."""
    hole = BlackHole()
    try:
        entries = [
            {"iss": URL_ISS, "jwks_url": hole.url},
            {"iss": ISS, "jwks": {"keys": [public_jwk(keys["ec"], "ec-1")]}},
        ]
        # the hung fetch lasts 8 s: ample time for the other client's call, even on a loaded machine
        verifier = Verifier(load_clients(write_clients(tmp_path, entries)), replay, fetch_timeout=8.0)
        forged = bearer(sign(keys["ec-other"], claims(iss=URL_ISS), kid="any"))
        stuck: list[str] = []
        attacker = threading.Thread(target=lambda: stuck.append(refused(verifier, forged)))
        attacker.start()
        deadline = time.monotonic() + 10
        while not hole.accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hole.accepted  # the fetch is under way and hangs
        # another client's call is verified while that fetch hangs
        assert verifier.verify(bearer(sign(keys["ec"])), AUD).iss == ISS
        assert attacker.is_alive()
        attacker.join(timeout=30)
        assert stuck == [f"JWKS fetch failed for {URL_ISS!r}"]
        for _ in range(5):  # within the back-off: refused without another fetch
            token = bearer(sign(keys["ec-other"], claims(iss=URL_ISS), kid="x"))
            assert "back-off" in refused(verifier, token)
        assert len(hole.accepted) == 1
    finally:
        hole.close()
