"""Authentication for the FHIR client: a static bearer token, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html) is the OAuth
``client_credentials`` grant with a ``private_key_jwt`` client assertion: no user, no refresh token,
the grant is simply run again before the access token expires. Tokens and assertions are secrets:
they never appear in messages or logs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

SUPPORTED_ALGS = ("RS384", "ES384")  # the two SMART requires servers to support
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # SMART: exp no more than five minutes ahead
DEFAULT_EXPIRES_IN = 300  # assumed when the token response omits expires_in
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class AuthError(Exception):
    """The token endpoint (or its discovery) failed; carries the OAuth error, never the assertion."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.description = description


class BearerToken(AuthBase):
    """A static access token, for servers where a token is issued out of band."""

    def __init__(self, token: str) -> None:
        if not token or any(ch.isspace() for ch in token):
            raise ValueError("bearer token must be non-empty and contain no whitespace")
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:  # never show the token
        return "BearerToken(***)"


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float  # clock time after which it is not used any more
    scope: str | None


def load_private_key(pem: bytes | str, alg: str) -> PrivateKey:
    """Load a PEM private key and check it fits ``alg``, so a mismatch fails at start-up, not at 3 a.m."""
    if alg not in SUPPORTED_ALGS:
        raise ValueError(f"unsupported signing algorithm {alg!r}: use one of {', '.join(SUPPORTED_ALGS)}")
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"not an unencrypted PEM private key ({type(error).__name__})") from None
    return _check_key(key, alg)


def _check_key(key: object, alg: str) -> PrivateKey:
    if alg == "RS384":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("RS384 needs an RSA private key")
        if key.key_size < 2048:
            raise ValueError(f"RS384 needs an RSA key of at least 2048 bits, got {key.key_size}")
        return key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError("ES384 needs an EC private key on curve P-384")
    return key


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def _token_session() -> requests.Session:
    # Connection failures only: a request that reached the server is not resent, because the token
    # endpoint may refuse a replayed assertion jti. A new grant (with a fresh jti) is the retry.
    session = requests.Session()
    adapter = HTTPAdapter(
        max_retries=Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.2)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class SmartBackendAuth(AuthBase):
    """SMART Backend Services: signs a client assertion, runs the grant, caches the token until near expiry.

    Thread-safe: one instance may serve several clients; the lock also makes concurrent callers
    share one grant instead of each running its own.
    """

    def __init__(
        self,
        client_id: str,
        private_key: PrivateKey | bytes | str,
        kid: str,
        *,
        alg: str = "RS384",
        scope: str,
        token_url: str | None = None,
        fhir_base_url: str | None = None,
        jku: str | None = None,
        margin: float = 60.0,
        timeout: tuple[float, float] = (3.05, 30.0),
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        if alg not in SUPPORTED_ALGS:
            raise ValueError(f"unsupported signing algorithm {alg!r}: use one of {', '.join(SUPPORTED_ALGS)}")
        if not client_id or not kid or not scope:
            raise ValueError("client_id, kid and scope are required")
        if token_url is None and fhir_base_url is None:
            raise ValueError("give token_url, or fhir_base_url to discover it")
        if token_url is not None:
            _check_endpoint(token_url, "token endpoint")
        self.client_id = client_id
        self.kid = kid
        self.alg = alg
        self.scope = scope
        self.jku = jku
        self.margin = margin
        self.timeout = timeout
        self.clock = clock
        self._key = (
            load_private_key(private_key, alg)
            if isinstance(private_key, bytes | str)
            else _check_key(private_key, alg)
        )
        self._token_url = token_url
        self._fhir_base_url = fhir_base_url.rstrip("/") if fhir_base_url else None
        self._session = session or _token_session()
        self._lock = threading.Lock()
        self._token: _Token | None = None

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, alg={self.alg!r}, kid={self.kid!r})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r

    @property
    def granted_scope(self) -> str | None:
        """The scope the server granted (it may be narrower than asked), once a token was obtained."""
        token = self._token
        return token.scope if token else None

    def token(self) -> str:
        """The current access token, running the grant when there is none or it is near expiry."""
        with self._lock:
            if self._token is None or self.clock() >= self._token.expires_at:
                self._token = self._grant()
            return self._token.value

    def invalidate(self) -> None:
        """Forget the cached token (the FHIR server answered 401), so the next call runs the grant."""
        with self._lock:
            self._token = None

    def token_url(self) -> str:
        """The token endpoint: as configured, or discovered once from the server's SMART configuration."""
        if self._token_url is None:
            self._token_url = self._discover()
        return self._token_url

    def assertion(self, audience: str) -> str:
        """A fresh signed client assertion: new jti every time, five minutes at most."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.kid, "typ": "JWT"}
        if self.jku:
            headers["jku"] = self.jku
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)

    def _discover(self) -> str:
        url = f"{self._fhir_base_url}/.well-known/smart-configuration"
        try:
            response = self._session.get(
                url, headers={"Accept": "application/json"}, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as failure:
            raise AuthError(f"SMART discovery at {url} failed: {type(failure).__name__}") from None
        config = _json_object(response)
        if response.status_code != 200 or config is None:
            raise AuthError(
                f"SMART discovery at {url} answered HTTP {response.status_code}", status=response.status_code
            )
        endpoint = config.get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise AuthError(f"SMART configuration at {url} has no token_endpoint")
        _check_endpoint(endpoint, "discovered token endpoint")
        methods = config.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "private_key_jwt" not in methods:
            raise AuthError(f"token endpoint {endpoint} does not support private_key_jwt")
        algs = config.get("token_endpoint_auth_signing_alg_values_supported")
        if isinstance(algs, list) and self.alg not in algs:
            raise AuthError(f"token endpoint {endpoint} does not accept {self.alg} (it lists {algs})")
        return endpoint

    def _grant(self) -> _Token:
        url = self.token_url()
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(url),
        }
        started = self.clock()
        try:
            response = self._session.post(
                url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as failure:
            raise AuthError(f"token endpoint {url} unreachable: {type(failure).__name__}") from None
        body = _json_object(response)
        if response.status_code != 200:
            error = _short(body.get("error")) if body else None
            description = _short(body.get("error_description")) if body else None
            detail = ": ".join(part for part in (error, description) if part) or "no OAuth error in the body"
            raise AuthError(
                f"token endpoint {url} refused the grant (HTTP {response.status_code}): {detail}",
                status=response.status_code,
                error=error,
                description=description,
            )
        if body is None or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise AuthError(f"token endpoint {url} answered 200 without an access_token", status=200)
        token_type = body.get("token_type")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise AuthError(
                f"token endpoint {url} issued a {token_type!r} token, not a bearer token", status=200
            )
        expires_in = body.get("expires_in")
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, int | float) and expires_in > 0
            else DEFAULT_EXPIRES_IN
        )
        # Renew `margin` seconds early, but keep at least half the lifetime for short-lived tokens.
        usable = max(lifetime - self.margin, lifetime / 2)
        scope = body.get("scope")
        return _Token(body["access_token"], started + usable, scope if isinstance(scope, str) else None)


def _check_endpoint(url: str, what: str) -> None:
    """Client credentials go over https only; plain http is allowed on loopback (tests, sidecars)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(url):
        return
    raise AuthError(f"{what} {url} is not https (plain http is allowed only on loopback)")


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _short(value: object, limit: int = 300) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= limit else value[:limit] + "…"
