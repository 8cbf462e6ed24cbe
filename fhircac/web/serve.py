"""``fhircac serve``: the app factory under gunicorn (the production server), settings from the env.

Workers are gevent workers (``fhircac.web.worker``): each connection is a greenlet, so slow clients
cost connections, not workers. Behind a buffering reverse proxy (nginx, HAProxy) in production.
"""

from __future__ import annotations

import os
import sys

from fhircac.config import ConfigError, Settings
from fhircac.web.cds import trusted_clients


def gunicorn_argv(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{settings.host}:{settings.port}",
        "--workers",
        str(settings.workers),
        # gevent: a slow client costs a connection, not a worker; read deadlines in worker.py
        "--worker-class",
        "fhircac.web.worker.BoundedGeventWorker",
        "--keep-alive",  # also turns on the request-head deadline (gunicorn's async keep-alive loop)
        "5",
        "--log-level",
        settings.log_level,
        "--access-logformat",
        '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',  # path without query: no PHI in logs
        "--access-logfile",
        "-",
        "--logger-class",
        "fhircac.web.access_log.RedactingLogger",  # no patient ids from paths such as /report/<id>
        "--no-control-socket",  # unused here; it would need a writable home directory (none in the image)
        "fhircac.web.app:create_app()",
    ]


def check_writable(path: str) -> None:
    """The folder of a SQLite file must exist or be creatable, and be writable (SQLite also writes
    its -wal and -shm files next to it): else a readable error here, not "Worker failed to boot"."""
    if path == ":memory:":
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create {folder} for {path} ({error.strerror}); set FHIRCAC_DATA_DIR to a folder "
            f"this user (uid {os.getuid()}) can write"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ConfigError(
            f"{path} is not writable by this user (uid {os.getuid()}); set FHIRCAC_DATA_DIR to a folder "
            "it can write"
        )


def serve(host: str | None = None, port: int | None = None) -> int:
    overrides = {"FHIRCAC_HOST": host, "FHIRCAC_PORT": None if port is None else str(port)}
    for name, value in overrides.items():
        if value is not None:
            os.environ[name] = value
    try:
        settings = Settings.from_env()
        if settings.cds_auth:
            trusted_clients(settings)  # fail here, readably, not in every gunicorn worker
        for path in settings.data_files():
            check_writable(path)
    except ConfigError as error:
        print(f"fhircac serve: {error}", file=sys.stderr)
        return 2
    os.execv(sys.executable, gunicorn_argv(settings))
    return 0  # pragma: no cover - execv does not return
