"""The gunicorn worker ``fhircac serve`` runs: gevent, with read deadlines on every client.

A sync worker is held by one connection from accept to last byte, so a few clients that send their
request slowly (slowloris) take the whole service down. Here every connection is a greenlet: a slow
client costs a connection, not a worker, and still gets only so long. The request head (request line
and headers) must arrive within ``FHIRCAC_CLIENT_TIMEOUT`` seconds, and a body may pause at most that
long between two reads; a connection past either is closed. gunicorn's ``--worker-connections``
bounds how many connections one worker holds.
"""

from __future__ import annotations

import os
from typing import Any

import gevent
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from fhircac.config import Settings


class BoundedGeventWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's GeventWorker with a deadline for the request head and a timeout between reads."""

    def init_process(self) -> None:
        self.client_timeout = Settings.from_env(dict(os.environ)).client_timeout
        super().init_process()

    def timeout_ctx(self) -> Any:
        """Around reading each request head (gunicorn: also the wait for a keep-alive request)."""
        return gevent.Timeout(self.client_timeout, False)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        client.setblocking(1)
        client.settimeout(self.client_timeout)  # each read and write of this connection (body too)
        AsyncWorker.handle(self, listener, client, addr)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        super().handle_request(listener_name, req, sock, addr)
        # Let every other connection have its turn before this one's next request: a fast client's
        # next request is often already there, and reading it does not yield, so one kept-alive
        # connection could be served again and again while the others wait (seconds, measured).
        gevent.sleep(0)
