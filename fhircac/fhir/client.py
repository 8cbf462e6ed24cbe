"""A thin FHIR R4 REST client: search with paging, read, conditional create, versioned update,
transaction, ``$validate`` and ``metadata``, on ``requests`` with urllib3 retries.

Small on purpose: it speaks the REST patterns fhircac needs (design notes ``fhir.md`` §3) and maps
HTTP outcomes to exceptions; it knows nothing clinical. Bodies carry PHI and headers carry tokens:
neither is ever logged, and error messages hold no token and no query string.

One ``FhirClient`` per worker thread: a ``requests.Session`` is not documented as thread-safe.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

import fhircac
from fhircac.config import ConfigError
from fhircac.fhir.auth import SUPPORTED_ALGS, AuthError, BearerToken, SmartBackendAuth, load_private_key
from fhircac.fhir.bounded import BoundedAdapter, Refused, within

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_SCOPE = (
    "system/Patient.rs system/Observation.rs system/MedicationStatement.rs system/MedicationRequest.rs "
    "system/Condition.rs system/Procedure.rs system/FamilyMemberHistory.rs system/RiskAssessment.cru "
    "system/CarePlan.cru system/Provenance.c"
)
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_VERSION = re.compile(r'(?:W/)?"?([^"\s]+)"?')
_SECRET = re.compile(r"(?i)(bearer\s+)\S+|eyJ[\w-]+\.[\w-]+\.[\w-]*")  # tokens and JWTs echoed by a server
_QUERY = re.compile(r"\?\S*")
_RESOURCE_ID = re.compile(r"(/[A-Z][A-Za-z]+/)[A-Za-z0-9\-.]{1,64}")  # /Patient/123 → /Patient/…
Params = Mapping[str, str | int | Sequence[str]] | Sequence[tuple[str, str]]


class _NoQueryInLogs(logging.Filter):
    """urllib3 logs retried URLs (at WARNING) with their query and resource ids, and either may
    identify a patient: both are blanked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _RESOURCE_ID.sub(r"\1…", _QUERY.sub("?…", arg)) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_NoQueryInLogs())


def _user_agent() -> str:
    version = getattr(fhircac, "__version__", None)
    if version is None:
        try:
            version = metadata.version("fhircac")
        except metadata.PackageNotFoundError:
            version = "0"
    return f"fhircac/{version}"


class FhirError(Exception):
    """A FHIR request failed; ``outcome`` is the server's OperationOutcome when it sent one."""

    def __init__(
        self, message: str, *, status: int | None = None, outcome: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class NotFound(FhirError):
    pass


class Gone(FhirError):
    """The resource was deleted (410)."""


class VersionConflict(FhirError):
    """If-Match lost to another writer: HAPI answers 409, the spec 412. Re-read and retry."""


class PreconditionFailed(FhirError):
    """412 without If-Match: a conditional create (If-None-Exist) matched several resources."""


class FhirUnavailable(FhirError):
    """No HTTP answer after the retries: connection refused, timed out or dropped."""


@runtime_checkable
class Invalidatable(Protocol):
    """An auth that can drop a cached token; the client calls it on a 401 and retries once."""

    def invalidate(self) -> None: ...


@dataclass(frozen=True)
class WriteResult:
    status: int
    location: str | None
    etag: str | None
    resource: dict[str, Any] | None
    created: bool


@dataclass
class SearchResult:
    """Entries of every page, split by ``search.mode``; includes de-duplicated across pages."""

    matches: list[dict[str, Any]] = field(default_factory=list)
    includes: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # search.mode = outcome (warnings)

    @property
    def resources(self) -> list[dict[str, Any]]:
        return self.matches + self.includes


def outcome_message(outcome: Mapping[str, Any]) -> str:
    """One line per OperationOutcome issue: severity, code, text and where."""
    parts = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (details.get("text") if isinstance(details, dict) else None)
        where = issue.get("expression") or issue.get("location") or []
        line = f"{issue.get('severity', '?')} {issue.get('code', '?')}: {text or '(no text)'}"
        if isinstance(where, list) and where:
            line += f" at {', '.join(str(w) for w in where)}"
        parts.append(line)
    return "; ".join(parts) or "OperationOutcome without issues"


def _redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


def _excerpt(response: requests.Response, limit: int = 300) -> str:
    text = " ".join(response.text.split())
    return _redact(text if len(text) <= limit else text[:limit] + "…") or "(empty body)"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


_NO_CACHE = {"Cache-Control": "no-cache"}  # HAPI serves identical searches from a cache for 60 s
DEFAULT_DEADLINE = 120.0  # seconds for one request, its retries included
DEFAULT_MAX_BYTES = 64 * 1_048_576  # one answer, decoded: a page of 1000 rich resources is far less


class _PerRequestBounds(BoundedAdapter):
    """The bounds of ``fhircac.fhir.bounded`` with a deadline per request (``seconds`` from its
    start, urllib3's retries and their back-off included) rather than one for the session: the
    worker's client lives for days. The server is the operator's own, so loopback is allowed."""

    def __init__(self, base_url: str, *, seconds: float, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(base_url, deadline=None, max_bytes=max_bytes, allow_loopback=True, **kwargs)
        self.seconds = seconds

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        with within(self.seconds):
            return super().send(request, *args, **kwargs)


class FhirClient:
    """FHIR R4 REST client for one base URL. Every call has a (connect, read) timeout and retries."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthBase | None = None,
        timeout: tuple[float, float] = (3.05, 30.0),
        retries: int = 3,
        backoff_factor: float = 0.5,
        backoff_jitter: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: int = 120,
        deadline: float = DEFAULT_DEADLINE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base URL must be an absolute http(s) URL")
        self.base_url = base_url.rstrip("/")
        # For messages: no credentials in userinfo, no query.
        self.display_base = (
            f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        )
        self.auth = auth
        self.timeout = timeout
        # allowed_methods=None retries every method, POST and PUT included: fhircac's writes are
        # conditional (If-None-Exist, If-Match, transactions of conditional entries), so resending
        # one that did reach the server changes nothing. An unconditional create could duplicate.
        # urllib3 sleeps nothing before the first retry, then backoff_factor * 2**n + jitter.
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            backoff_factor=backoff_factor,
            backoff_jitter=backoff_jitter,
            backoff_max=backoff_max,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,
            respect_retry_after_header=True,
            retry_after_max=retry_after_max,
            raise_on_status=False,
        )
        self.session = requests.Session()
        # Every request ends within ``deadline`` seconds (retries included) and reads at most
        # ``max_bytes`` of answer, however slowly or much the server sends; next links stay under
        # the base URL. Enough pooled connections for the worker's threads (--concurrency ≤ 16).
        adapter = _PerRequestBounds(
            self.base_url, seconds=deadline, max_bytes=max_bytes, max_retries=retry, pool_maxsize=16
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": FHIR_JSON, "User-Agent": _user_agent()})
        self._count_lock = threading.Lock()
        self.requests_sent = 0  # HTTP exchanges answered (urllib3's own retries not counted), for benchmarks

    def __repr__(self) -> str:
        return f"FhirClient({self.display_base!r})"

    def close(self) -> None:
        self.session.close()

    # -- reading -----------------------------------------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        return self._expect(self._send("GET", f"{self.base_url}/metadata"), "CapabilityStatement")

    def read(self, resource_type: str, id: str) -> dict[str, Any]:
        url = f"{self.base_url}/{_type(resource_type)}/{_id(id)}"
        return self._expect(self._send("GET", url), resource_type)

    def history(
        self, resource_type: str, id: str | None = None, params: Params | None = None
    ) -> Iterator[dict[str, Any]]:
        """``[base]/Type[/id]/_history`` pages; deletions are entries with ``request.method`` DELETE."""
        url = f"{self.base_url}/{_type(resource_type)}" + (f"/{_id(id)}" if id is not None else "")
        first = self._expect(self._send("GET", f"{url}/_history", params=params, headers=_NO_CACHE), "Bundle")
        yield first
        yield from self.pages_after(first)

    def search(self, resource_type: str, params: Params | None = None) -> Iterator[dict[str, Any]]:
        """Yield each searchset page Bundle, following ``link[relation=next]`` as the server wrote it."""
        url = f"{self.base_url}/{_type(resource_type)}"
        first = self._expect(self._send("GET", url, params=params, headers=_NO_CACHE), "Bundle")
        yield first
        yield from self.pages_after(first)

    def pages_after(self, bundle: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The pages after ``bundle`` (a searchset, e.g. one from a batch response), by its next links."""
        seen: set[str] = set()
        url = self._next_link(bundle)
        while url is not None:
            if url in seen:
                raise FhirError(f"search paging loops back to a page already read ({self.display_base})")
            seen.add(url)
            page = self._expect(self._send("GET", url, headers=_NO_CACHE), "Bundle")
            yield page
            url = self._next_link(page)

    def search_all(self, resource_type: str, params: Params | None = None) -> SearchResult:
        result = SearchResult()
        included: set[tuple[Any, Any, Any]] = set()
        for bundle in self.search(resource_type, params):
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict):
                    continue
                mode = (entry.get("search") or {}).get("mode", "match")
                if mode == "include":
                    key = (
                        resource.get("resourceType"),
                        resource.get("id"),
                        (resource.get("meta") or {}).get("versionId"),
                    )
                    if key not in included:
                        included.add(key)
                        result.includes.append(resource)
                elif mode == "outcome":
                    result.outcomes.append(resource)
                else:
                    result.matches.append(resource)
        return result

    def search_resources(self, resource_type: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Every matched and ``_include``d resource across all pages (``search_all`` keeps them apart)."""
        return self.search_all(resource_type, params).resources

    # -- writing -----------------------------------------------------------------------------------

    def create(self, resource: Mapping[str, Any], if_none_exist: str | None = None) -> WriteResult:
        """POST; with ``if_none_exist`` a match returns 200 and the existing resource (``created`` False)."""
        headers = {"Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        url = f"{self.base_url}/{_type(_resource_type(resource))}"
        return self._write(self._send("POST", url, body=resource, headers=headers), resource)

    def update(self, resource: Mapping[str, Any], if_match: str | int | None = None) -> WriteResult:
        """PUT ``[base]/Type/id``; with ``if_match`` (``3`` or ``W/"3"``) a stale version: VersionConflict."""
        resource_type = _type(_resource_type(resource))
        resource_id = resource.get("id")
        if not isinstance(resource_id, str):
            raise ValueError("update needs a resource with an id")
        headers = {"Prefer": "return=representation"}
        if if_match is not None:
            headers["If-Match"] = weak_etag(if_match)
        url = f"{self.base_url}/{resource_type}/{_id(resource_id)}"
        return self._write(self._send("PUT", url, body=resource, headers=headers), resource)

    def transaction(self, bundle: Mapping[str, Any], *, representation: bool = False) -> dict[str, Any]:
        """POST a transaction (or batch) Bundle to the base; returns the response Bundle."""
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") not in ("transaction", "batch"):
            raise ValueError("transaction needs a Bundle of type transaction or batch")
        headers = {"Prefer": "return=representation" if representation else "return=minimal"}
        if bundle.get("type") == "batch":
            headers.update(_NO_CACHE)  # a batch of searches must see what was just written
        response = self._send("POST", self.base_url, body=bundle, headers=headers)
        result = self._expect(response, "Bundle")
        if result.get("type") not in ("transaction-response", "batch-response"):
            raise FhirError(f"POST {self.display_base} answered a {result.get('type')!r} Bundle", status=200)
        return result

    def validate(self, resource: Mapping[str, Any], profile: str | None = None) -> dict[str, Any]:
        """``$validate``: the OperationOutcome, also when the server answers 400/412/422 (a failed check)."""
        url = f"{self.base_url}/{_type(_resource_type(resource))}/$validate"
        params = {"profile": profile} if profile else None
        response = self._send("POST", url, body=resource, params=params, check=False)
        if response.status_code in (200, 400, 412, 422):
            body = _json(response)
            if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
                return body
        self._raise_for(response, "POST", urlsplit(url).path, {})
        return self._expect(response, "OperationOutcome")

    # -- plumbing ----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        body: Mapping[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> requests.Response:
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
        path = urlsplit(url).path
        for attempt in (1, 2):
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    auth=self.auth,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                raise FhirUnavailable(
                    f"FHIR server {self.display_base} unavailable: {_reason(error)} "
                    f"({method} {path}, after retries)"
                ) from None
            with self._count_lock:
                self.requests_sent += 1
            log.debug("%s %s -> %s", method, path, response.status_code)
            if response.status_code == 401 and attempt == 1 and isinstance(self.auth, Invalidatable):
                self.auth.invalidate()  # the token may have been revoked or expired early: one new grant
                continue
            break
        if check:
            self._raise_for(response, method, path, headers)
        return response

    def _raise_for(
        self, response: requests.Response, method: str, path: str, headers: Mapping[str, str]
    ) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        body = _json(response)
        outcome = body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None
        detail = _redact(outcome_message(outcome)) if outcome else _excerpt(response)
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", "")).path or "?"
            detail = f"redirect to {target}; configure the final base URL"
        message = f"{method} {path} → HTTP {status}: {detail}"
        cls: type[FhirError] = FhirError
        if status == 404:
            cls = NotFound
        elif status == 410:
            cls = Gone
        elif status == 409 or (status == 412 and "If-Match" in headers):
            cls = VersionConflict
        elif status == 412:
            cls = PreconditionFailed
        raise cls(message, status=status, outcome=outcome)

    def _expect(self, response: requests.Response, resource_type: str) -> dict[str, Any]:
        body = _json(response)
        if not isinstance(body, dict) or body.get("resourceType") != resource_type:
            found = repr(body.get("resourceType")) if isinstance(body, dict) else "a non-JSON body"
            raise FhirError(
                f"{response.request.method} {urlsplit(response.url).path} → HTTP {response.status_code}: "
                f"expected {resource_type}, got {found}",
                status=response.status_code,
            )
        return body

    def _write(self, response: requests.Response, sent: Mapping[str, Any]) -> WriteResult:
        body = _json(response) if response.content else None
        if response.content and body is None:
            raise FhirError(
                f"write answered HTTP {response.status_code} with a non-JSON body",
                status=response.status_code,
            )
        resource = (
            body if isinstance(body, dict) and body.get("resourceType") == sent.get("resourceType") else None
        )
        return WriteResult(
            status=response.status_code,
            location=response.headers.get("Location") or response.headers.get("Content-Location"),
            etag=response.headers.get("ETag"),
            resource=resource,
            created=response.status_code == 201,
        )

    def _next_link(self, bundle: Mapping[str, Any]) -> str | None:
        for link in bundle.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                try:
                    url: str = urljoin(self.base_url + "/", link["url"])
                    origin = _origin(url)
                except ValueError:
                    raise FhirError("the server's next link is not a usable URL") from None
                if origin != _origin(self.base_url):
                    raise FhirError(f"refusing a next link to another server than {self.display_base}")
                return url
        return None


def weak_etag(version: str | int) -> str:
    """``3``, ``"3"`` or ``W/"3"`` → ``W/"3"``, the form FHIR servers send and expect in If-Match."""
    match = _VERSION.fullmatch(str(version).strip())
    if not match:
        raise ValueError("not a version id or ETag")
    return f'W/"{match.group(1)}"'


def _type(resource_type: str) -> str:
    if not _TYPE.fullmatch(resource_type):
        raise ValueError(f"not a FHIR resource type: {resource_type!r}")
    return resource_type


def _id(resource_id: str) -> str:
    if not _ID.fullmatch(resource_id):
        raise ValueError("not a FHIR logical id")
    return resource_id


def _resource_type(resource: Mapping[str, Any]) -> str:
    value = resource.get("resourceType")
    if not isinstance(value, str):
        raise ValueError("resource has no resourceType")
    return value


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reason(error: requests.RequestException) -> str:
    """What went wrong, without the URL (its query may name a patient)."""
    if isinstance(error, Refused):
        return str(error)
    cause: object = error.args[0] if error.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(cause, NewConnectionError):  # before ConnectTimeoutError: urllib3 subclasses it
        return "connection refused or failed"
    if isinstance(error, requests.ConnectTimeout) or isinstance(cause, ConnectTimeoutError):
        return "connect timed out"
    if isinstance(error, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        return "read timed out"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error"
    return type(cause or error).__name__


def client_from_env(env: Mapping[str, str] | None = None, base_url: str | None = None) -> FhirClient:
    """A client from ``FHIRCAC_FHIR_*`` / ``FHIRCAC_SMART_*``; a bad or ambiguous setting → ConfigError."""
    env = os.environ if env is None else env

    def get(name: str) -> str | None:
        return (env.get(name) or "").strip() or None

    base_url = base_url or get("FHIRCAC_FHIR_BASE_URL")
    if base_url is None:
        raise ConfigError("FHIRCAC_FHIR_BASE_URL is not set: the FHIR server's base URL is required")
    if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).hostname:
        raise ConfigError(f"FHIRCAC_FHIR_BASE_URL={base_url!r} is not an absolute http(s) URL")
    read_timeout = 30.0
    raw_timeout = get("FHIRCAC_FHIR_TIMEOUT")
    if raw_timeout is not None:
        try:
            read_timeout = float(raw_timeout)
        except ValueError:
            raise ConfigError(f"FHIRCAC_FHIR_TIMEOUT={raw_timeout!r} is not a number of seconds") from None
        if not (math.isfinite(read_timeout) and 0 < read_timeout <= 600):
            raise ConfigError(
                f"FHIRCAC_FHIR_TIMEOUT={raw_timeout!r} must be more than 0 and at most 600 seconds"
            )
    timeout = (3.05, read_timeout)
    deadline = _seconds(get("FHIRCAC_FHIR_DEADLINE"), "FHIRCAC_FHIR_DEADLINE", DEFAULT_DEADLINE, 3600)
    max_bytes = DEFAULT_MAX_BYTES
    raw_bytes = get("FHIRCAC_FHIR_MAX_BYTES")
    if raw_bytes is not None:
        if not raw_bytes.isdigit() or not 1024 <= int(raw_bytes) <= 1024 * 1_048_576:
            raise ConfigError(f"FHIRCAC_FHIR_MAX_BYTES={raw_bytes!r} must be a whole number 1024-1073741824")
        max_bytes = int(raw_bytes)

    smart = sorted(name for name in env if name.startswith("FHIRCAC_SMART_") and get(name))
    token = get("FHIRCAC_FHIR_TOKEN")
    auth: AuthBase | None = None
    if token and smart:
        raise ConfigError(
            f"FHIRCAC_FHIR_TOKEN and SMART settings ({', '.join(smart)}) are both set: "
            "choose one way to authenticate"
        )
    if token:
        try:
            auth = BearerToken(token)
        except ValueError:
            raise ConfigError("FHIRCAC_FHIR_TOKEN must contain no whitespace") from None
    elif smart:
        auth = _smart_from_env(get, base_url, timeout)
    return FhirClient(base_url, auth=auth, timeout=timeout, deadline=deadline, max_bytes=max_bytes)


def _seconds(raw: str | None, name: str, default: float, most: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= most):
        raise ConfigError(f"{name}={raw!r} must be more than 0 and at most {most:g} seconds")
    return value


def _smart_from_env(
    get: Callable[[str], str | None], base_url: str, timeout: tuple[float, float]
) -> SmartBackendAuth:
    required = ("FHIRCAC_SMART_CLIENT_ID", "FHIRCAC_SMART_KEY_FILE", "FHIRCAC_SMART_KID")
    client_id, key_file, kid = (get(name) or "" for name in required)
    missing = [name for name, value in zip(required, (client_id, key_file, kid), strict=True) if not value]
    if missing:
        raise ConfigError(f"SMART Backend Services needs {', '.join(missing)} too")
    alg = get("FHIRCAC_SMART_ALG") or "RS384"
    if alg not in SUPPORTED_ALGS:
        raise ConfigError(f"FHIRCAC_SMART_ALG={alg!r} is not supported: use {' or '.join(SUPPORTED_ALGS)}")
    try:
        key = load_private_key(Path(key_file).read_bytes(), alg)
    except OSError as error:
        raise ConfigError(f"FHIRCAC_SMART_KEY_FILE={key_file!r} cannot be read: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"FHIRCAC_SMART_KEY_FILE={key_file!r}: {error}") from None
    try:
        return SmartBackendAuth(
            client_id,
            key,
            kid,
            alg=alg,
            scope=get("FHIRCAC_SMART_SCOPE") or DEFAULT_SCOPE,
            token_url=get("FHIRCAC_SMART_TOKEN_URL"),
            fhir_base_url=base_url,
            timeout=timeout,
        )
    except AuthError as error:
        raise ConfigError(f"FHIRCAC_SMART_TOKEN_URL: {error}") from None
