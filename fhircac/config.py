"""Settings from ``FHIRCAC_*`` environment variables, with embedded defaults that need nothing else."""

from __future__ import annotations

import os
from dataclasses import dataclass

from fhircac.clinical.policies import DEFAULT_POLICY, get_policy


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    policy: str = DEFAULT_POLICY.id.value
    max_body_bytes: int = 1_048_576
    log_level: str = "info"

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
            log_level=(env.get("FHIRCAC_LOG_LEVEL") or defaults.log_level).lower(),
        )
