"""Outbound HTTP bounded in time, size and place: for servers fhircac does not control.

``requests`` (urllib3) timeouts bound each socket operation, not a call: a server that sends one
byte every few seconds, or a few hundred megabytes, holds fhircac as long as it likes. ``confine``
mounts an adapter on a ``requests.Session`` (a ``FhirClient``'s) under which every request:

- ends by one total deadline (every connect, send and receive waits at most until then);
- reads at most ``max_bytes`` of answer (decoded), else fails before holding more;
- goes only under ``base_url``'s path on its origin (a ``next`` link elsewhere never gets the
  bearer token);
- reaches no loopback or unspecified address unless allowed (checked on the connected socket, so a
  DNS name for 127.0.0.1 is caught too).

A request that breaks a bound raises a ``Refused`` (a ``requests.RequestException``) whose ``why``
says which bound, in words fit for the caller; ``refusal_of`` finds it behind a ``FhirError``.
"""

from __future__ import annotations

import contextvars
import io
import ipaddress
import math
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ReadTimeoutError


class Refused(requests.RequestException):
    """A request broke a bound; ``why`` is safe to show the caller (no URL query, no body)."""

    why = "a bound on outbound calls"

    def __init__(self, why: str | None = None) -> None:
        super().__init__()  # no args: FhirClient names the failure by this class's name
        if why:
            self.why = why

    def __str__(self) -> str:
        return self.why


class DeadlinePassed(Refused):
    why = "it took longer than the time allowed"


class AnswerTooLarge(Refused):
    pass


class AddressRefused(Refused):
    why = "the server's address is a loopback address (not allowed; FHIRCAC_CDS_ALLOW_LOOPBACK)"


class OutsideBase(Refused):
    why = "a link led outside the server's base URL"


class _Broken(Exception):
    """Raised inside urllib3, which would take any OSError (a RequestException is one) for a network
    fault and retry it; the adapter turns it back into its ``Refused``."""

    def __init__(self, refusal: Refused) -> None:
        super().__init__(refusal.why)
        self.refusal = refusal


def refusal_of(error: BaseException) -> Refused | None:
    """The bound behind ``error`` (FhirClient raises its own errors ``from None``: the context stays)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, Refused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class _Bounds:
    deadline: float  # time.monotonic()
    allow_loopback: bool


_BOUNDS: contextvars.ContextVar[_Bounds | None] = contextvars.ContextVar("fhircac_bounds", default=None)
_WITHIN: contextvars.ContextVar[float | None] = contextvars.ContextVar("fhircac_within", default=None)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Every bounded request made in this block (this thread or greenlet) ends within ``seconds``."""
    deadline = time.monotonic() + seconds
    outer = _WITHIN.get()
    token = _WITHIN.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _WITHIN.reset(token)


def _remaining(bounds: _Bounds) -> float:
    remaining = bounds.deadline - time.monotonic()
    if remaining <= 0:
        raise _Broken(DeadlinePassed())
    return remaining


class _DeadlineSocket:
    """A connected socket whose every receive and send waits at most until the current deadline."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._timeout = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout  # type: ignore[no-any-return]

    def _arm(self) -> None:
        bounds = _BOUNDS.get()
        if bounds is None:
            self._sock.settimeout(self._timeout)
            return
        remaining = _remaining(bounds)
        if not math.isfinite(remaining):
            self._sock.settimeout(self._timeout)
        else:
            self._sock.settimeout(remaining if self._timeout is None else min(self._timeout, remaining))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)  # type: ignore[no-any-return]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return self._sock.recv(bufsize, flags)  # type: ignore[no-any-return]

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        self._sock.sendall(data, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._arm()
        return self._sock.send(data, flags)  # type: ignore[no-any-return]

    def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
        """http.client reads answers through this file: its reads come back here (recv_into)."""
        raw = socket.SocketIO(self, mode.replace("b", ""))  # type: ignore[arg-type]
        self._sock._io_refs += 1
        if "w" in mode:
            return io.BufferedWriter(raw, buffering or io.DEFAULT_BUFFER_SIZE)
        return io.BufferedReader(raw, buffering or io.DEFAULT_BUFFER_SIZE)


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


class _Bounded:
    """Mixed into urllib3's connections: connect within the deadline, to an allowed address."""

    timeout: Any
    sock: Any

    def _new_conn(self) -> Any:
        bounds = _BOUNDS.get()
        if bounds is not None:
            remaining = _remaining(bounds)
            finite = math.isfinite(remaining)
            if finite and (not isinstance(self.timeout, int | float) or self.timeout > remaining):
                self.timeout = remaining
        sock = super()._new_conn()  # type: ignore[misc]
        if bounds is not None and not bounds.allow_loopback and _loopback(sock.getpeername()[0]):
            sock.close()
            raise _Broken(AddressRefused())
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock = _DeadlineSocket(self.sock)


class _HTTPConnection(_Bounded, HTTPConnection):
    pass


class _HTTPSConnection(_Bounded, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class BoundedAdapter(HTTPAdapter):
    def __init__(
        self,
        base_url: str,
        *,
        deadline: float | None,
        max_bytes: int,
        allow_loopback: bool,
        **kwargs: Any,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.allow_loopback = allow_loopback
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def _check_place(self, url: str) -> None:
        base_path = urlsplit(self.base_url).path.rstrip("/")
        parts = urlsplit(url)
        segments = parts.path.split("/")
        inside = parts.path == base_path or parts.path.startswith(base_path + "/")
        dotted = any(s in (".", "..") or "%2e" in s.lower() for s in segments)
        if _origin(url) != _origin(self.base_url) or not inside or dotted:
            raise OutsideBase()

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **kwargs: Any
    ) -> requests.Response:
        self._check_place(str(request.url))
        deadline = min(self.deadline or math.inf, _WITHIN.get() or math.inf)
        bounds = _Bounds(deadline, self.allow_loopback)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed()
        if isinstance(timeout, tuple) and math.isfinite(remaining):
            timeout = tuple(remaining if t is None else min(t, remaining) for t in timeout)
        elif math.isfinite(remaining):
            timeout = remaining if timeout is None else min(timeout, remaining)
        token = _BOUNDS.set(bounds)
        try:
            response = super().send(request, stream=True, timeout=timeout, **kwargs)
            if not stream:
                self._read_capped(response)
            return response
        except _Broken as broken:
            raise broken.refusal from None
        finally:
            _BOUNDS.reset(token)

    def _read_capped(self, response: requests.Response) -> None:
        too_large = AnswerTooLarge(f"its answer is larger than {self.max_bytes} bytes")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise too_large
        chunks, size = [], 0
        try:
            for chunk in response.raw.stream(65_536, decode_content=True):
                size += len(chunk)
                if size > self.max_bytes:
                    raise too_large
                chunks.append(chunk)
        except ReadTimeoutError:
            response.close()
            if time.monotonic() + 0.1 >= min(self.deadline or math.inf, _WITHIN.get() or math.inf):
                raise DeadlinePassed() from None
            raise requests.ReadTimeout() from None
        except urllib3.exceptions.HTTPError as error:  # what requests would have turned into its own
            response.close()
            raise requests.ConnectionError(type(error).__name__) from None
        except (Refused, _Broken):
            response.close()
            raise
        response._content = b"".join(chunks)
        response._content_consumed = True
        response.raw.release_conn()


def confine(
    session: requests.Session,
    base_url: str,
    *,
    seconds: float | None,
    max_bytes: int,
    allow_loopback: bool,
) -> None:
    """Bound every request ``session`` makes from now on: all of them end within ``seconds`` (None:
    only within the ``within`` block around each call)."""
    current = session.get_adapter(base_url)
    adapter = BoundedAdapter(
        base_url,
        deadline=None if seconds is None else time.monotonic() + seconds,
        max_bytes=max_bytes,
        allow_loopback=allow_loopback,
        max_retries=current.max_retries if isinstance(current, HTTPAdapter) else 0,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
