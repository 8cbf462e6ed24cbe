"""Bearer and SMART Backend Services auth against a local token endpoint that verifies every assertion.

The fake token endpoint checks the client assertion with PyJWT and the public key, as a real
authorisation server would; the claims it saw are kept for the tests to inspect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhircac.config import ConfigError
from fhircac.fhir.auth import ASSERTION_TYPE, AuthError, BearerToken, SmartBackendAuth, load_private_key
from fhircac.fhir.client import DEFAULT_SCOPE, FhirClient, FhirError, client_from_env
from tests.unit.test_fhir_client import FakeServer, Reply, Request

CLIENT_ID = "fhircac-backend"
KID = "key-2026"
SCOPE = "system/Observation.rs system/RiskAssessment.cru"
PATIENT = {"resourceType": "Patient", "id": "p1"}
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {
        "RS384": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
    }


def pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class AuthServer:
    """A FHIR endpoint that wants a current token, a token endpoint and a SMART configuration."""

    def __init__(self, server: FakeServer, key: Key, alg: str) -> None:
        self.server = server
        self.public_key = key.public_key()
        self.alg = alg
        self.token_url = f"{server.origin}/token"
        self.expires_in: int | None = 300
        self.error: dict[str, str] | None = None
        self.token_delay = 0.0
        self.grants: list[tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]] = []
        self.fhir_401_for: set[str] = set()  # tokens the FHIR endpoint rejects
        self.config: dict[str, Any] = {
            "token_endpoint": self.token_url,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        }
        server.responder = self.route

    def route(self, request: Request) -> Reply:
        if request.path == "/token":
            return self.token(request)
        if request.path == "/fhir/.well-known/smart-configuration":
            return Reply(body=self.config)
        if request.headers.get("authorization", "").removeprefix("Bearer ") in self.fhir_401_for:
            return Reply(
                401, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
            )
        return Reply(body=PATIENT)

    def token(self, request: Request) -> Reply:
        form = parse_qs(request.body.decode())
        if self.error:
            return Reply(400, dict(self.error))
        try:
            assertion = form["client_assertion"][0]
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=[self.alg],
                audience=self.token_url,
                issuer=CLIENT_ID,
                leeway=600,  # the test clock runs ahead of the real one; exp - iat is checked below
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
            )
        except (KeyError, jwt.PyJWTError) as error:
            return Reply(400, {"error": "invalid_client", "error_description": f"assertion refused: {error}"})
        self.grants.append((header, claims, form))
        body: dict[str, Any] = {
            "access_token": f"tok-{len(self.grants)}",
            "token_type": "bearer",
            "scope": SCOPE,
        }
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return Reply(body=body, delay=self.token_delay)

    def fhir_requests(self) -> list[Request]:
        return [r for r in self.server.requests if r.path.startswith("/fhir/Patient")]

    def token_requests(self) -> list[Request]:
        return [r for r in self.server.requests if r.path == "/token"]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


@pytest.fixture(params=["RS384", "ES384"])
def alg(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def authserver(server: FakeServer, keys: dict[str, Key], alg: str) -> AuthServer:
    return AuthServer(server, keys[alg], alg)


def smart(authserver: AuthServer, keys: dict[str, Key], **kwargs: Any) -> SmartBackendAuth:
    options: dict[str, Any] = {"alg": authserver.alg, "scope": SCOPE, "token_url": authserver.token_url}
    options.update(kwargs)
    return SmartBackendAuth(CLIENT_ID, keys[authserver.alg], KID, **options)


def client(server: FakeServer, auth: Any) -> FhirClient:
    return FhirClient(server.base, auth=auth, retries=1, backoff_factor=0.01, timeout=(1, 5))


def test_bearer_token_header(server: FakeServer) -> None:
    server.script(Reply(body=PATIENT))
    client(server, BearerToken("abc.def")).read("Patient", "p1")
    assert server.requests[0].headers["authorization"] == "Bearer abc.def"
    with pytest.raises(ValueError):
        BearerToken("two words")


def test_smart_grant_is_verified_and_cached(authserver: AuthServer, keys: dict[str, Key]) -> None:
    auth = smart(authserver, keys)
    fhir = client(authserver.server, auth)
    fhir.read("Patient", "p1")
    fhir.read("Patient", "p1")

    assert len(authserver.token_requests()) == 1  # the second request used the cached token
    assert [r.headers["authorization"] for r in authserver.fhir_requests()] == ["Bearer tok-1"] * 2
    header, claims, form = authserver.grants[0]
    assert header == {"alg": authserver.alg, "kid": KID, "typ": "JWT"}
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == authserver.token_url
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == [SCOPE]
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    assert auth.granted_scope == SCOPE

    auth.invalidate()
    fhir.read("Patient", "p1")
    assert len(authserver.grants) == 2
    assert authserver.grants[0][1]["jti"] != authserver.grants[1][1]["jti"]
    assert authserver.fhir_requests()[-1].headers["authorization"] == "Bearer tok-2"


def test_jku_header_when_given(authserver: AuthServer, keys: dict[str, Key]) -> None:
    smart(authserver, keys, jku="https://fhircac.example/jwks.json").token()
    assert authserver.grants[0][0]["jku"] == "https://fhircac.example/jwks.json"


@pytest.mark.parametrize("expires_in", [300, None])  # None: no expires_in, 300 s assumed
def test_token_renewed_before_expiry(
    authserver: AuthServer, keys: dict[str, Key], expires_in: int | None
) -> None:
    authserver.expires_in = expires_in
    clock = Clock()
    auth = smart(authserver, keys, clock=clock, margin=60)
    assert auth.token() == "tok-1"
    clock.now += 239
    assert auth.token() == "tok-1"
    clock.now += 2  # 241 s: within the 60 s margin of expiry
    assert auth.token() == "tok-2"
    assert len(authserver.grants) == 2


def test_short_lived_token_is_kept_for_half_its_life(authserver: AuthServer, keys: dict[str, Key]) -> None:
    authserver.expires_in = 40  # shorter than the margin: still reused for 20 s, not re-granted every call
    clock = Clock()
    auth = smart(authserver, keys, clock=clock)
    auth.token()
    clock.now += 19
    auth.token()
    assert len(authserver.grants) == 1
    clock.now += 2
    auth.token()
    assert len(authserver.grants) == 2


def test_concurrent_callers_share_one_grant(authserver: AuthServer, keys: dict[str, Key]) -> None:
    authserver.token_delay = 0.1
    auth = smart(authserver, keys)
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(auth.token())) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tokens == ["tok-1"] * 5 and len(authserver.grants) == 1


def test_token_endpoint_discovered(authserver: AuthServer, keys: dict[str, Key]) -> None:
    auth = smart(authserver, keys, token_url=None, fhir_base_url=authserver.server.base + "/")
    fhir = client(authserver.server, auth)
    fhir.read("Patient", "p1")
    auth.invalidate()
    fhir.read("Patient", "p1")
    paths = [r.path for r in authserver.server.requests]
    assert paths.count("/fhir/.well-known/smart-configuration") == 1
    assert paths.count("/token") == 2
    discovery = authserver.server.requests[0]
    assert discovery.headers["accept"] == "application/json" and "authorization" not in discovery.headers


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token_endpoint": "http://auth.example.org/token"}, "not https"),
        ({"token_endpoint": None}, "no token_endpoint"),
        ({"token_endpoint_auth_methods_supported": ["client_secret_basic"]}, "private_key_jwt"),
        ({"token_endpoint_auth_signing_alg_values_supported": ["PS256"]}, "does not accept"),
    ],
)
def test_discovery_refusals(
    authserver: AuthServer, keys: dict[str, Key], change: dict[str, Any], message: str
) -> None:
    authserver.config.update(change)
    auth = smart(authserver, keys, token_url=None, fhir_base_url=authserver.server.base)
    with pytest.raises(AuthError, match=message):
        client(authserver.server, auth).read("Patient", "p1")
    assert authserver.token_requests() == [] and authserver.fhir_requests() == []


def test_token_endpoint_error_is_an_auth_error(authserver: AuthServer, keys: dict[str, Key]) -> None:
    authserver.error = {"error": "invalid_client", "error_description": "unknown kid key-2026"}
    with pytest.raises(AuthError) as failure:
        client(authserver.server, smart(authserver, keys)).read("Patient", "p1")
    assert "invalid_client: unknown kid key-2026" in str(failure.value)
    assert failure.value.status == 400 and failure.value.error == "invalid_client"
    assertion = parse_qs(authserver.token_requests()[0].body.decode())["client_assertion"][0]
    assert assertion not in str(failure.value) and "eyJ" not in str(failure.value)
    assert authserver.fhir_requests() == []


def test_unreachable_token_endpoint(keys: dict[str, Key]) -> None:
    auth = SmartBackendAuth(
        CLIENT_ID, keys["RS384"], KID, scope=SCOPE, token_url="http://127.0.0.1:1/token", timeout=(0.5, 1)
    )
    with pytest.raises(AuthError, match="unreachable"):
        auth.token()


def test_401_triggers_exactly_one_new_grant(authserver: AuthServer, keys: dict[str, Key]) -> None:
    authserver.fhir_401_for = {"tok-1"}  # revoked server-side before it expired
    fhir = client(authserver.server, smart(authserver, keys))
    assert fhir.read("Patient", "p1") == PATIENT
    assert len(authserver.grants) == 2
    assert [r.headers["authorization"] for r in authserver.fhir_requests()] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def test_persistent_401_is_retried_once_then_raised(authserver: AuthServer, keys: dict[str, Key]) -> None:
    authserver.fhir_401_for = {f"tok-{n}" for n in range(1, 10)}
    with pytest.raises(FhirError) as failure:
        client(authserver.server, smart(authserver, keys)).read("Patient", "p1")
    assert failure.value.status == 401
    assert len(authserver.grants) == 2 and len(authserver.fhir_requests()) == 2
    assert "tok-" not in str(failure.value)


def test_unsupported_algorithms_and_keys_refused(keys: dict[str, Key]) -> None:
    for alg in ("RS256", "HS256", "none", "PS384"):
        with pytest.raises(ValueError, match="unsupported"):
            SmartBackendAuth(
                CLIENT_ID, keys["RS384"], KID, alg=alg, scope=SCOPE, token_url="https://a.example/t"
            )
    with pytest.raises(ValueError, match="RSA"):
        SmartBackendAuth(
            CLIENT_ID, keys["ES384"], KID, alg="RS384", scope=SCOPE, token_url="https://a.example/t"
        )
    with pytest.raises(ValueError, match="P-384"):
        load_private_key(pem(ec.generate_private_key(ec.SECP256R1())), "ES384")
    with pytest.raises(ValueError, match="2048"):
        load_private_key(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "RS384")
    with pytest.raises(ValueError, match="PEM"):
        load_private_key(b"-----BEGIN NOTHING-----", "RS384")
    with pytest.raises(AuthError, match="not https"):
        SmartBackendAuth(
            CLIENT_ID, keys["RS384"], KID, scope=SCOPE, token_url="http://auth.example.org/token"
        )
    with pytest.raises(ValueError, match="token_url"):
        SmartBackendAuth(CLIENT_ID, keys["RS384"], KID, scope=SCOPE)


# -- client_from_env -------------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path, keys: dict[str, Key]) -> Path:
    path = tmp_path / "rs384.pem"
    path.write_bytes(pem(keys["RS384"]))
    return path


def smart_env(key_file: Path, **extra: str) -> dict[str, str]:
    env = {
        "FHIRCAC_FHIR_BASE_URL": "https://fhir.example.org/r4",
        "FHIRCAC_SMART_CLIENT_ID": CLIENT_ID,
        "FHIRCAC_SMART_KEY_FILE": str(key_file),
        "FHIRCAC_SMART_KID": KID,
    }
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "FHIRCAC_FHIR_BASE_URL is not set"),
        ({"FHIRCAC_FHIR_BASE_URL": "fhir.example.org"}, "FHIRCAC_FHIR_BASE_URL"),
        (
            {"FHIRCAC_FHIR_BASE_URL": "https://f.example", "FHIRCAC_FHIR_TIMEOUT": "soon"},
            "FHIRCAC_FHIR_TIMEOUT",
        ),
        ({"FHIRCAC_FHIR_BASE_URL": "https://f.example", "FHIRCAC_FHIR_TIMEOUT": "0"}, "FHIRCAC_FHIR_TIMEOUT"),
        (
            {"FHIRCAC_FHIR_BASE_URL": "https://f.example", "FHIRCAC_FHIR_TIMEOUT": "nan"},
            "FHIRCAC_FHIR_TIMEOUT",
        ),
        ({"FHIRCAC_FHIR_BASE_URL": "https://f.example", "FHIRCAC_FHIR_TOKEN": "a b"}, "FHIRCAC_FHIR_TOKEN"),
        (
            {"FHIRCAC_FHIR_BASE_URL": "https://f.example", "FHIRCAC_SMART_CLIENT_ID": "x"},
            "FHIRCAC_SMART_KEY_FILE",
        ),
    ],
)
def test_env_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        client_from_env(env)


def test_env_token_and_smart_together_is_an_error(key_file: Path) -> None:
    with pytest.raises(ConfigError, match="FHIRCAC_FHIR_TOKEN and SMART settings"):
        client_from_env(smart_env(key_file, FHIRCAC_FHIR_TOKEN="abc"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"FHIRCAC_SMART_ALG": "RS256"}, "FHIRCAC_SMART_ALG='RS256'"),
        ({"FHIRCAC_SMART_ALG": "ES384"}, "FHIRCAC_SMART_KEY_FILE=.*EC private key"),  # an RSA key
        ({"FHIRCAC_SMART_KEY_FILE": "/nonexistent/key.pem"}, "FHIRCAC_SMART_KEY_FILE=.*cannot be read"),
        ({"FHIRCAC_SMART_KID": ""}, "FHIRCAC_SMART_KID"),
        ({"FHIRCAC_SMART_TOKEN_URL": "http://auth.example.org/token"}, "FHIRCAC_SMART_TOKEN_URL"),
    ],
)
def test_env_smart_errors(key_file: Path, extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        client_from_env(smart_env(key_file, **extra))


def test_env_static_token() -> None:
    env = {
        "FHIRCAC_FHIR_BASE_URL": "https://ignored.example",
        "FHIRCAC_FHIR_TOKEN": "abc",
        "FHIRCAC_FHIR_TIMEOUT": "12.5",
    }
    fhir = client_from_env(env, base_url="https://fhir.example.org/r4/")
    assert fhir.base_url == "https://fhir.example.org/r4"
    assert isinstance(fhir.auth, BearerToken) and fhir.timeout == (3.05, 12.5)
    assert (
        client_from_env({"FHIRCAC_FHIR_BASE_URL": "https://f.example", "FHIRCAC_FHIR_TOKEN": ""}).auth is None
    )


def test_env_smart_end_to_end_with_discovery(
    server: FakeServer, keys: dict[str, Key], key_file: Path
) -> None:
    authserver = AuthServer(server, keys["RS384"], "RS384")
    fhir = client_from_env(smart_env(key_file, FHIRCAC_FHIR_BASE_URL=server.base))
    assert isinstance(fhir.auth, SmartBackendAuth) and fhir.auth.alg == "RS384"
    assert fhir.read("Patient", "p1") == PATIENT
    assert authserver.grants[0][2]["scope"] == [DEFAULT_SCOPE]
    assert [r.path for r in server.requests] == [
        "/fhir/.well-known/smart-configuration",
        "/token",
        "/fhir/Patient/p1",
    ]
