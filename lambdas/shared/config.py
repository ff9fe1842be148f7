"""Runtime configuration: environment variables parsed once into a typed object.

A bad value fails the cold start with a message naming the variable, instead of
surfacing later as a confusing delivery error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lambdas.shared.constants import DEFAULT_TABLE_NAME, DeliveryMode, EnvVar

ATTEMPT_MARGIN_SECONDS: Final = 10
"""Room for the secret lookup, the host slot and the DynamoDB writes around one HTTP attempt."""
DEFAULT_HOST_MAX_IN_FLIGHT: Final = 10


def split_csv(value: object) -> object:
    """'a, B,c' -> ('a', 'b', 'c'); other values unchanged (for comma-separated variables and context)."""
    if isinstance(value, str):
        return tuple(part.strip().lower() for part in value.split(",") if part.strip())
    return value


def host_key(host: str) -> str:
    """A host name as per-host limits compare it: lower case, no trailing dot."""
    return host.strip().lower().rstrip(".")


def parse_host_limits(value: object) -> object:
    """'hooks.example.com=5, API.other.com=20' -> {'hooks.example.com': 5, 'api.other.com': 20}.

    Other values (a mapping from the CDK context, say) pass through for pydantic to check.
    """
    if not isinstance(value, str):
        return value
    limits: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        host, sep, number = part.partition("=")
        if not sep or not host.strip():
            raise ValueError(f"expected host=limit, got {part.strip()!r}")
        limits[host_key(host)] = number.strip()
    return limits


def format_host_limits(limits: Mapping[str, int]) -> str:
    """The inverse of :func:`parse_host_limits` (what the deployed environment carries)."""
    return ",".join(f"{host}={limit}" for host, limit in sorted(limits.items()))


class Settings(BaseModel):
    """Typed view of the Lambda environment; defaults are the production-safe ones."""

    model_config = ConfigDict(frozen=True)

    table_name: str = DEFAULT_TABLE_NAME
    state_machine_arn: str | None = None
    """The Standard workflow."""
    fast_path_state_machine_arn: str | None = None
    """The Express workflow ingest runs synchronously in ``fast-path`` mode."""
    delivery_mode: DeliveryMode = DeliveryMode.FAST_PATH
    signing_secret_id: str | None = None
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    read_timeout_seconds: float = Field(default=15.0, gt=0, le=840)
    max_response_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    allowed_schemes: tuple[str, ...] = ("https",)
    allow_private_targets: bool = False
    allow_loopback_targets: bool = False
    """Loopback targets (127.0.0.0/8, ::1, localhost names) allowed; every other private one still refused."""
    allowed_target_hosts: tuple[str, ...] = ()
    record_ttl_days: int = Field(default=90, ge=1, le=3650)
    host_leases_table_name: str | None = None
    """The per-host slot table; without it deliveries are not limited per host."""
    host_max_in_flight: int = Field(default=DEFAULT_HOST_MAX_IN_FLIGHT, ge=0, le=10_000)
    """Deliveries in flight to one host at most, across all runs; 0 switches the limit off."""
    host_limits: dict[str, int] = Field(default_factory=dict)
    """Per-host exceptions to ``host_max_in_flight`` (0 for a host: no limit on it)."""

    @field_validator("allowed_schemes", "allowed_target_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("host_limits", mode="before")
    @classmethod
    def _parse_host_limits(cls, value: object) -> object:
        return parse_host_limits(value)

    @field_validator("host_limits")
    @classmethod
    def _sane_limits(cls, value: dict[str, int]) -> dict[str, int]:
        for host, limit in value.items():
            if not 0 <= limit <= 10_000:
                raise ValueError(f"limit of {host} must be between 0 and 10000, got {limit}")
        return value

    def host_limit(self, host: str) -> int:
        """Deliveries in flight allowed to ``host`` (0: unlimited)."""
        return self.host_limits.get(host_key(host), self.host_max_in_flight)

    @property
    def attempt_deadline_seconds(self) -> int:
        """Longest one delivery attempt can take: the HTTP timeouts plus bookkeeping (the deliver Lambda's timeout)."""
        return math.ceil(self.connect_timeout_seconds + self.read_timeout_seconds) + ATTEMPT_MARGIN_SECONDS

    @field_validator("allowed_schemes")
    @classmethod
    def _known_schemes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - {"http", "https"}
        if unknown or not value:
            raise ValueError(f"only http and https are supported, got {sorted(value)}")
        return value


_FIELD_BY_ENV: dict[str, str] = {
    EnvVar.TABLE_NAME: "table_name",
    EnvVar.STATE_MACHINE_ARN: "state_machine_arn",
    EnvVar.FAST_PATH_STATE_MACHINE_ARN: "fast_path_state_machine_arn",
    EnvVar.DELIVERY_MODE: "delivery_mode",
    EnvVar.HOST_LEASES_TABLE_NAME: "host_leases_table_name",
    EnvVar.HOST_MAX_IN_FLIGHT: "host_max_in_flight",
    EnvVar.HOST_LIMITS: "host_limits",
    EnvVar.SIGNING_SECRET_ID: "signing_secret_id",
    EnvVar.CONNECT_TIMEOUT_SECONDS: "connect_timeout_seconds",
    EnvVar.READ_TIMEOUT_SECONDS: "read_timeout_seconds",
    EnvVar.MAX_RESPONSE_BYTES: "max_response_bytes",
    EnvVar.ALLOWED_SCHEMES: "allowed_schemes",
    EnvVar.ALLOW_PRIVATE_TARGETS: "allow_private_targets",
    EnvVar.ALLOW_LOOPBACK_TARGETS: "allow_loopback_targets",
    EnvVar.ALLOWED_TARGET_HOSTS: "allowed_target_hosts",
    EnvVar.RECORD_TTL_DAYS: "record_ttl_days",
}


class ConfigurationError(RuntimeError):
    """The environment does not describe a valid configuration."""


def parse_settings(environ: Mapping[str, str]) -> Settings:
    """Build settings from an environment mapping; raises ConfigurationError naming the variable."""
    values = {field: environ[env] for env, field in _FIELD_BY_ENV.items() if environ.get(env, "") != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        env_by_field = {field: env for env, field in _FIELD_BY_ENV.items()}
        problems = "; ".join(
            f"{env_by_field.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid Notiflow configuration: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, parsed on first use and cached for warm invocations."""
    return parse_settings(os.environ)
