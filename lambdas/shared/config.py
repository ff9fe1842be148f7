"""Runtime configuration: environment variables parsed once into a typed object.

A bad value fails the cold start with a message naming the variable, instead of
surfacing later as a confusing delivery error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lambdas.shared.constants import DEFAULT_TABLE_NAME, EnvVar


def split_csv(value: object) -> object:
    """'a, B,c' -> ('a', 'b', 'c'); other values unchanged (for comma-separated variables and context)."""
    if isinstance(value, str):
        return tuple(part.strip().lower() for part in value.split(",") if part.strip())
    return value


class Settings(BaseModel):
    """Typed view of the Lambda environment; defaults are the production-safe ones."""

    model_config = ConfigDict(frozen=True)

    table_name: str = DEFAULT_TABLE_NAME
    state_machine_arn: str | None = None
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

    @field_validator("allowed_schemes", "allowed_target_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        return split_csv(value)

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
