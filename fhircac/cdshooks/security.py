"""Trust in CDS Clients: the signed JWT every CDS Hooks 2.0 call carries ("Trusting CDS Clients").

Without mutual TLS the JWT is the only proof of who is calling, so the spec's procedure is followed
strictly: issuers and their keys are agreed out of band, the algorithms are fixed here, keys are
fetched only from a pinned URL, and each token is accepted once. Why a token was refused is for
our log; the caller learns nothing beyond "unauthorized".
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.exceptions import InvalidJTIError

from fhircac import storage

ALGORITHMS = ("ES384", "RS384")  # fixed allowlist; never taken from the token header
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MIN_RSA_BITS = 2048
JWKS_LIFESPAN = 300.0  # seconds a fetched JWK Set (and a key taken from it) is trusted before refetching
# After a failed JWK Set fetch, that issuer's JWKS URL is left alone this long (doubling per failure up
# to the maximum): a client whose JWKS host is down must not make every caller naming it wait.
JWKS_BACKOFF_SECONDS = 10.0
JWKS_BACKOFF_MAX_SECONDS = 300.0
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_CLIENT_FIELDS = ("iss", "jwks", "jwks_url", "jku")
_KTY_ALG = {"EC": "ES384", "RSA": "RS384"}

log = logging.getLogger(__name__)


class TrustConfigError(ValueError):
    """The trusted-clients file is unusable; the message says exactly what and where."""


class Unauthorized(Exception):
    """Why a token was refused. The reason goes to the log (no token, no PHI), never to the caller."""

    reason: str

    def __init__(self, reason: str) -> None:
        # Parts of the reason come from the token: keep log lines single and bounded.
        self.reason = "".join(ch if ch.isprintable() else "?" for ch in reason)[:300]
        super().__init__(self.reason)


@dataclass(frozen=True)
class TrustedClient:
    iss: str
    jwks: jwt.PyJWKSet | None  # keys given inline
    jwks_url: str | None  # keys fetched from this pinned URL (cached, refetched on unknown kid)
    jku: frozenset[str]  # jku header values allowed for this issuer: jwks_url plus any listed


@dataclass(frozen=True)
class Claims:
    iss: str
    jti: str
    tenant: str | None
    expires: float  # exp


class _Problem(Exception):
    """A fault in one client entry; load_clients adds the file and the index."""


def _key_alg(key: object) -> str:
    """The one allowed algorithm this key verifies; ValueError says why it can verify none."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name != "secp384r1":
            raise ValueError(f"EC key on curve {key.curve.name}, need P-384")
        return "ES384"
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits, need at least {MIN_RSA_BITS}")
        return "RS384"
    raise ValueError("not an EC P-384 or RSA public key")


def _parse_jwks(value: Any) -> jwt.PyJWKSet:
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list) or not value["keys"]:
        raise _Problem('jwks must be a JWK Set: {"keys": [...]} with at least one key')
    kids: set[str] = set()
    for index, key in enumerate(value["keys"]):
        where = f"jwks.keys[{index}]"
        if not isinstance(key, dict):
            raise _Problem(f"{where} must be a JWK object")
        private = [member for member in PRIVATE_JWK_MEMBERS if member in key]
        if private:
            raise _Problem(
                f"{where} contains private key material ({', '.join(private)}); give only the public key"
            )
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _Problem(f"{where} needs a kid (CDS Clients must send one)")
        if kid in kids:
            raise _Problem(f"{where}: kid {kid!r} appears twice")
        kids.add(kid)
        kty = key.get("kty")
        if kty not in _KTY_ALG:
            raise _Problem(f"{where} (kid {kid!r}): kty must be EC or RSA, not {kty!r}")
        if "alg" in key and key["alg"] != _KTY_ALG[kty]:
            raise _Problem(f"{where} (kid {kid!r}): alg {key['alg']!r} is not allowed for {kty} keys")
        if "use" in key and key["use"] != "sig":
            raise _Problem(f"{where} (kid {kid!r}): use must be 'sig', not {key['use']!r}")
        try:
            _key_alg(jwt.PyJWK(key).key)
        except (jwt.PyJWTError, ValueError) as exc:
            raise _Problem(f"{where} (kid {kid!r}): unusable key: {exc}") from None
    return jwt.PyJWKSet(value["keys"])


def _check_jwks_url(value: Any) -> str:
    if not isinstance(value, str):
        raise _Problem("jwks_url must be a string")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise _Problem(f"jwks_url is not a valid URL: {value!r}") from None
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)):
        raise _Problem(f"jwks_url must be https (http only for 127.0.0.1, ::1, localhost): {value!r}")
    return value


def _parse_client(entry: Any) -> TrustedClient:
    if not isinstance(entry, dict):
        raise _Problem("must be an object")
    unknown = sorted(set(entry) - set(_CLIENT_FIELDS))
    if unknown:
        raise _Problem(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_CLIENT_FIELDS)}")
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss:
        raise _Problem("iss must be a non-empty string")
    if ("jwks" in entry) == ("jwks_url" in entry):
        raise _Problem(f"give exactly one of jwks or jwks_url (iss {iss!r})")
    jku = entry.get("jku", [])
    if not isinstance(jku, list) or not all(isinstance(url, str) and url for url in jku):
        raise _Problem("jku must be a list of URLs")
    jwks = _parse_jwks(entry["jwks"]) if "jwks" in entry else None
    jwks_url = _check_jwks_url(entry["jwks_url"]) if "jwks_url" in entry else None
    allowed_jku = frozenset(jku) | ({jwks_url} if jwks_url else set())
    return TrustedClient(iss=iss, jwks=jwks, jwks_url=jwks_url, jku=allowed_jku)


def load_clients(path: str | os.PathLike[str]) -> dict[str, TrustedClient]:
    """Read the out-of-band trust agreements; any doubt about the file refuses to start."""
    where = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise TrustConfigError(f"{where}: trusted CDS clients file not found") from None
    except OSError as exc:
        raise TrustConfigError(f"{where}: cannot read trusted CDS clients file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TrustConfigError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno}, column {exc.colno}"
        raise TrustConfigError(f"{where}: not JSON: {exc.msg} ({at})") from None
    if not isinstance(data, dict) or not isinstance(data.get("clients"), list) or not data["clients"]:
        raise TrustConfigError(f'{where}: expected {{"clients": [...]}} with at least one client')
    clients: dict[str, TrustedClient] = {}
    first_index: dict[str, int] = {}
    for index, entry in enumerate(data["clients"]):
        try:
            client = _parse_client(entry)
        except _Problem as exc:
            raise TrustConfigError(f"{where}: clients[{index}]: {exc}") from None
        if client.iss in clients:
            first = first_index[client.iss]
            raise TrustConfigError(
                f"{where}: clients[{index}]: iss {client.iss!r} already given by clients[{first}]"
            )
        clients[client.iss] = client
        first_index[client.iss] = index
    return clients


class ReplayGuard:
    """jti store shared by all gunicorn worker processes: SQLite file (WAL, busy_timeout), thread-safe."""

    PURGE_EVERY = 1000  # inserts
    PURGE_SECONDS = 60.0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        with suppress(storage.StorageError):  # the service still starts; calls get 503 meanwhile
            self._conn = self._connect()
        self._pid = os.getpid()
        self._inserts = 0
        self._purged_at = time.monotonic()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            # other workers write the same file; never wait as long as gunicorn's worker timeout
            conn.execute(f"PRAGMA busy_timeout = {int(storage.BUSY_TIMEOUT_SECONDS * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS cds_jwt_seen (iss TEXT NOT NULL, jti TEXT NOT NULL,"
                " expires REAL NOT NULL, PRIMARY KEY (iss, jti)) WITHOUT ROWID"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS cds_jwt_seen_expires ON cds_jwt_seen (expires)")
        except sqlite3.Error as error:
            raise storage.failed(self._path, "the CDS store (FHIRCAC_CDS_DB)", error) from None
        return conn

    def first_use(self, iss: str, jti: str, expires: float) -> bool:
        """Record (iss, jti) until `expires` (epoch seconds); False if it was already recorded.
        StorageError when the store cannot be used (the caller is not at fault: 503, not 401)."""
        with self._lock:
            if self._conn is None or os.getpid() != self._pid:  # a connection must not cross fork()
                self._conn = self._connect()
                self._pid = os.getpid()
            try:
                return self._insert(self._conn, iss, jti, expires)
            except sqlite3.Error as error:
                raise storage.failed(self._path, "the CDS store (FHIRCAC_CDS_DB)", error) from None

    def _insert(self, conn: sqlite3.Connection, iss: str, jti: str, expires: float) -> bool:
        cursor = conn.execute(
            "INSERT INTO cds_jwt_seen (iss, jti, expires) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (iss, jti, expires),
        )
        if cursor.rowcount != 1:
            return False
        self._inserts += 1
        if self._inserts >= self.PURGE_EVERY or time.monotonic() - self._purged_at >= self.PURGE_SECONDS:
            conn.execute("DELETE FROM cds_jwt_seen WHERE expires < ?", (time.time(),))
            self._inserts = 0
            self._purged_at = time.monotonic()
        return True

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def _bearer(authorization: str | None) -> str:
    parts = (authorization or "").split(None, 1)
    if not parts:
        raise Unauthorized("no Authorization header")
    if parts[0].lower() != "bearer":
        raise Unauthorized("Authorization scheme is not Bearer")
    token = parts[1].strip() if len(parts) == 2 else ""
    if not token or any(ch.isspace() for ch in token):
        raise Unauthorized("Bearer token missing or malformed")
    return token


def _numeric_date(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Verifier:
    """Checks the CDS Client JWT of one request against the trusted clients."""

    def __init__(
        self,
        clients: Mapping[str, TrustedClient],
        replay: ReplayGuard,
        *,
        leeway: int = 60,
        max_lifetime: int = 3600,
        fetch_timeout: float = 5.0,
        refetch_cooldown: float = 30.0,
    ) -> None:
        self._clients = dict(clients)
        self._replay = replay
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._fetch_timeout = fetch_timeout
        # An unknown kid (a forged token needs only a known iss) refetches at most this often.
        self._refetch_cooldown = refetch_cooldown
        self._fetchers: dict[str, jwt.PyJWKClient] = {}
        self._fetchers_lock = threading.Lock()
        # (iss, kid) -> (public key, its algorithm, monotonic time it must be looked up again)
        self._keys: dict[tuple[str, str], tuple[Any, str, float]] = {}
        # iss -> (failed fetches in a row, monotonic time before which its JWKS URL is not fetched)
        self._backoff: dict[str, tuple[int, float]] = {}
        self._fetch_locks: dict[str, threading.Lock] = {}

    def trusts(self, iss: str) -> bool:
        """Whether ``iss`` is one of the trusted clients (report links re-check their client)."""
        return iss in self._clients

    def verify(self, authorization: str | None, audience: str) -> Claims:
        """The verified claims; Unauthorized (and nothing else) if the call is not to be trusted."""
        try:
            return self._verify(authorization, audience)
        except (Unauthorized, storage.StorageError):
            raise
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise Unauthorized(f"malformed token: {exc}") from None
        except Exception as exc:  # fail closed, but loudly: this is our bug or our database
            log.exception("unexpected error while verifying a CDS client token")
            raise Unauthorized(f"internal error: {type(exc).__name__}") from None

    def _verify(self, authorization: str | None, audience: str) -> Claims:
        token = _bearer(authorization)
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Unauthorized(f"alg {alg!r} is not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise Unauthorized(f"typ {typ!r} is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("no kid in the token header")

        unverified = jwt.decode(token, options={"verify_signature": False})
        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            raise Unauthorized("token has no iss claim")
        client = self._clients.get(iss)
        if client is None:
            raise Unauthorized(f"unknown issuer {iss!r}")
        if "jku" in header and (not isinstance(header["jku"], str) or header["jku"] not in client.jku):
            raise Unauthorized(f"jku {header['jku']!r} is not allowed for {iss!r}")

        key = self._key(client, kid, alg)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=client.iss,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.InvalidSignatureError:
            raise Unauthorized(f"signature does not verify with kid {kid!r} of {iss!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"missing required claim {exc.claim}") from None
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired (exp)") from None
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized(f"token not yet valid: {exc}") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("aud does not name this endpoint") from None
        except InvalidJTIError:
            raise Unauthorized("jti must be a non-empty string") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None

        exp, iat = payload["exp"], payload["iat"]
        if not (_numeric_date(exp) and _numeric_date(iat)):
            raise Unauthorized("exp and iat must be NumericDate numbers")
        if iat > time.time() + self._leeway:
            raise Unauthorized("iat is in the future")
        if exp - iat > self._max_lifetime:
            raise Unauthorized(f"lifetime exp - iat = {exp - iat:.0f}s exceeds {self._max_lifetime}s")
        jti = payload["jti"]
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("jti must be a non-empty string")
        tenant = payload.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise Unauthorized("tenant must be a string")
        # Last, so only tokens with a valid signature reach the store. Remember the jti for as long
        # as the token could still pass the exp check.
        if not self._replay.first_use(client.iss, jti, float(exp) + self._leeway):
            raise Unauthorized(f"jti already used by {iss!r} (replay)")
        return Claims(iss=client.iss, jti=jti, tenant=tenant, expires=float(exp))

    def _key(self, client: TrustedClient, kid: str, alg: str) -> Any:
        """The public key for (iss, kid), checked to suit alg; cached so verify stays cheap."""
        now = time.monotonic()
        cached = self._keys.get((client.iss, kid))
        if cached is None or cached[2] <= now:
            jwk, ttl = self._lookup(client, kid)
            try:
                key_alg = _key_alg(jwk.key)
            except ValueError as exc:
                raise Unauthorized(f"kid {kid!r} of {client.iss!r}: {exc}") from None
            cached = (jwk.key, key_alg, now + ttl)
            self._keys[(client.iss, kid)] = cached
        key, key_alg, _ = cached
        if key_alg != alg:
            raise Unauthorized(f"alg {alg} does not match kid {kid!r} ({key_alg} key)")
        return key

    def _lookup(self, client: TrustedClient, kid: str) -> tuple[jwt.PyJWK, float]:
        if client.jwks is not None:
            try:
                return client.jwks[kid], math.inf
            except KeyError:
                raise Unauthorized(f"unknown kid {kid!r} for {client.iss!r}") from None
        if client.jwks_url is None:
            raise Unauthorized(f"no keys configured for {client.iss!r}")
        fetcher = self._fetcher(client.iss, client.jwks_url)
        self._check_backoff(client.iss)
        lock = self._fetch_lock(client.iss)
        # One fetch per issuer at a time; callers naming the same issuer wait for it (never longer
        # than a fetch may take), callers naming others never do.
        if not lock.acquire(timeout=self._fetch_timeout):
            raise Unauthorized(f"JWKS fetch for {client.iss!r} still under way")
        try:
            self._check_backoff(client.iss)  # the fetch we waited for may just have failed
            key = fetcher.get_signing_key(kid)
            self._backoff.pop(client.iss, None)
            return key, JWKS_LIFESPAN
        except jwt.PyJWKClientConnectionError as exc:
            delay = self._failed(client.iss)
            log.warning(
                "cannot fetch the JWK Set of CDS client %r (%s); not trying again for %.0f s",
                client.iss,
                exc,
                delay,
            )
            raise Unauthorized(f"JWKS fetch failed for {client.iss!r}") from None
        except jwt.PyJWKClientError as exc:
            if "signing key that matches" in str(exc):
                raise Unauthorized(f"unknown kid {kid!r} for {client.iss!r} (not in its JWKS)") from None
            log.warning("unusable JWK Set from CDS client %r: %s", client.iss, exc)
            raise Unauthorized(f"JWKS of {client.iss!r} is unusable") from None
        except (jwt.PyJWTError, ValueError) as exc:  # ValueError: the URL did not return JSON
            log.warning("unusable JWK Set from CDS client %r: %s", client.iss, exc)
            raise Unauthorized(f"JWKS of {client.iss!r} is unusable") from None
        finally:
            lock.release()

    def _check_backoff(self, iss: str) -> None:
        _, retry_at = self._backoff.get(iss, (0, 0.0))
        if time.monotonic() < retry_at:
            raise Unauthorized(f"JWKS of {iss!r} failed recently; not fetched before the back-off ends")

    def _failed(self, iss: str) -> float:
        """Record a failed fetch; the seconds until the next attempt for this issuer."""
        failures = self._backoff.get(iss, (0, 0.0))[0] + 1
        delay = float(min(JWKS_BACKOFF_MAX_SECONDS, JWKS_BACKOFF_SECONDS * 2 ** (failures - 1)))
        self._backoff[iss] = (failures, time.monotonic() + delay)
        return delay

    def _fetch_lock(self, iss: str) -> threading.Lock:
        with self._fetchers_lock:
            return self._fetch_locks.setdefault(iss, threading.Lock())

    def _fetcher(self, iss: str, url: str) -> jwt.PyJWKClient:
        """One PyJWKClient per client, so each keeps its own cache and refetch cooldown."""
        with self._fetchers_lock:
            fetcher = self._fetchers.get(iss)
            if fetcher is None:
                fetcher = jwt.PyJWKClient(
                    url,
                    cache_jwk_set=True,
                    lifespan=JWKS_LIFESPAN,
                    timeout=self._fetch_timeout,
                    cooldown_duration=self._refetch_cooldown,
                )
                self._fetchers[iss] = fetcher
            return fetcher
