"""Settings from ``FHIRCAC_*`` environment variables, with embedded defaults that need nothing else."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import tzinfo
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhircac.clinical.policies import DEFAULT_POLICY, get_policy


class ConfigError(ValueError):
    pass


DEFAULT_DATA_DIR = ".fhircac"  # relative to the working directory


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    policy: str = DEFAULT_POLICY.id.value
    max_body_bytes: int = 1_048_576
    log_level: str = "info"
    log_format: str = "text"  # or "json": one object a line (fhircac.logs)
    client_timeout: int = 10  # seconds for a request head, and between two reads of a body (worker.py)
    # FHIR server write-back, polling and subscriptions (client auth: fhircac.fhir.client.client_from_env)
    fhir_base_url: str | None = None
    poll_servers: tuple[str, ...] = ()  # default: fhir_base_url
    # the writable folder every SQLite file lives in unless named on its own (the image: /var/lib/fhircac)
    data_dir: str = DEFAULT_DATA_DIR
    state_file: str = f"{DEFAULT_DATA_DIR}/state.sqlite"
    poll_interval: int = 30
    # the clinic's time zone (IANA name): "today" for a scan written without a UTC offset
    timezone: str | None = None
    # shared secret HAPI sends back in the notification's Authorization header
    hook_token: str | None = field(default=None, repr=False)
    hook_auth: bool = True
    # CDS Hooks (fhircac.cdshooks)
    cds_clients_file: str | None = None  # trusted CDS clients: {"clients": [{"iss", "jwks" | "jwks_url"}]}
    cds_auth: bool = True  # off only for local development: every call is then trusted
    cds_db: str = f"{DEFAULT_DATA_DIR}/cds.sqlite"  # feedback, issued cards and seen JWT ids
    public_base_url: str | None = None  # the URL EHRs call (JWT aud, links); default: the request's own
    cors_origins: tuple[str, ...] = ("*",)
    cds_fetch_timeout: int = 5  # seconds per request to the EHR's FHIR server for missing prefetch
    cds_fetch_max_bytes: int = 16 * 1_048_576  # largest answer read from the EHR's FHIR server
    cds_allow_loopback: bool = False  # fhirServer on a loopback address (and plain http there): tests
    cds_retention_days: int = 30  # issued cards, their suggestions and feedback are kept this long
    # Report page (fhircac.web.report): links from CDS cards are signed with this secret
    report_key: str | None = field(default=None, repr=False)
    report_auth: bool = True  # off only for local development: GET /report/{patient} is then open
    report_link_seconds: int = 3600  # how long a report link from a card stays valid

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        defaults = cls()

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a whole number") from None
            if not low <= value <= high:
                raise ConfigError(f"{name}={value} is outside {low}-{high}")
            return value

        data_dir = (env.get("FHIRCAC_DATA_DIR") or "").strip() or defaults.data_dir
        policy = env.get("FHIRCAC_POLICY") or defaults.policy
        try:
            get_policy(policy)
        except ValueError as error:
            raise ConfigError(f"FHIRCAC_POLICY: {error}") from None
        return cls(
            host=env.get("FHIRCAC_HOST") or defaults.host,
            port=integer("FHIRCAC_PORT", defaults.port, 1, 65535),
            workers=integer("FHIRCAC_WORKERS", defaults.workers, 1, 64),
            policy=policy,
            max_body_bytes=integer("FHIRCAC_MAX_BODY_BYTES", defaults.max_body_bytes, 1024, 64 * 1_048_576),
            log_level=_choice(env, "FHIRCAC_LOG_LEVEL", defaults.log_level, LOG_LEVELS),
            log_format=_choice(env, "FHIRCAC_LOG_FORMAT", defaults.log_format, LOG_FORMATS),
            client_timeout=integer("FHIRCAC_CLIENT_TIMEOUT", defaults.client_timeout, 1, 300),
            fhir_base_url=(env.get("FHIRCAC_FHIR_BASE_URL") or "").rstrip("/") or None,
            poll_servers=tuple(
                url.strip().rstrip("/")
                for url in (env.get("FHIRCAC_POLL_SERVERS") or "").split(",")
                if url.strip()
            ),
            data_dir=data_dir,
            state_file=env.get("FHIRCAC_STATE_FILE") or os.path.join(data_dir, "state.sqlite"),
            poll_interval=integer("FHIRCAC_POLL_INTERVAL", defaults.poll_interval, 1, 86_400),
            timezone=_timezone(env),
            hook_token=env.get("FHIRCAC_HOOK_TOKEN") or None,
            hook_auth=_switch(env, "FHIRCAC_HOOK_AUTH", True),
            cds_clients_file=env.get("FHIRCAC_CDS_CLIENTS") or None,
            cds_auth=_switch(env, "FHIRCAC_CDS_AUTH", True),
            cds_db=env.get("FHIRCAC_CDS_DB") or os.path.join(data_dir, "cds.sqlite"),
            public_base_url=_base_url(env, "FHIRCAC_PUBLIC_BASE_URL"),
            cors_origins=tuple(
                origin.strip().rstrip("/")
                for origin in (env.get("FHIRCAC_CORS_ORIGINS") or "*").split(",")
                if origin.strip()
            ),
            cds_fetch_timeout=integer("FHIRCAC_CDS_FETCH_TIMEOUT", defaults.cds_fetch_timeout, 1, 60),
            cds_fetch_max_bytes=integer(
                "FHIRCAC_CDS_FETCH_MAX_BYTES", defaults.cds_fetch_max_bytes, 65_536, 1024 * 1_048_576
            ),
            cds_allow_loopback=_switch(env, "FHIRCAC_CDS_ALLOW_LOOPBACK", False),
            cds_retention_days=integer("FHIRCAC_CDS_RETENTION_DAYS", defaults.cds_retention_days, 1, 3650),
            report_key=_secret(env, "FHIRCAC_REPORT_KEY"),
            report_auth=_switch(env, "FHIRCAC_REPORT_AUTH", True),
            report_link_seconds=integer(
                "FHIRCAC_REPORT_LINK_SECONDS", defaults.report_link_seconds, 60, 86_400
            ),
        )

    def data_files(self) -> tuple[str, ...]:
        """Every SQLite file the service writes (each in FHIRCAC_DATA_DIR unless set on its own)."""
        return (self.cds_db, self.state_file)

    def zone(self) -> tzinfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    def servers(self) -> tuple[str, ...]:
        """The servers to poll: ``FHIRCAC_POLL_SERVERS``, else ``FHIRCAC_FHIR_BASE_URL``."""
        if self.poll_servers:
            return self.poll_servers
        return (self.fhir_base_url,) if self.fhir_base_url else ()


def _base_url(env: dict[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip().rstrip("/")
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name}={raw!r}: give an absolute http(s) URL without query or fragment")
    return raw


MIN_SECRET_LENGTH = 32


def _secret(env: dict[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if len(raw) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{name} must be at least {MIN_SECRET_LENGTH} characters (use a random secret)")
    return raw


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")


def _choice(env: dict[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r}: use one of {', '.join(choices)}")
    return raw


def _switch(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name}={raw!r}: use on or off")


def _timezone(env: dict[str, str]) -> str | None:
    name = (env.get("FHIRCAC_TIMEZONE") or "").strip() or None
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"FHIRCAC_TIMEZONE={name!r} is not an IANA time zone name (e.g. Pacific/Auckland)"
            ) from None
    return name
