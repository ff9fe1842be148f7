"""Deployment configuration: CDK context parsed once into a typed, validated object.

Values come from ``cdk.json`` (JSON types) or ``-c key=value`` (strings); both parse the same way.
Defaults have one home each: the delivery retry schedule and the fast path's quick retries are read
from the ASL files, the delivery settings (the delivery mode and the per-host limits included) from
:class:`lambdas.shared.config.Settings`. The Lambda environment rendered here is validated with the
very parser the Lambdas run at cold start, so a deploy cannot ship settings the functions would refuse.

Context keys (default in brackets):
  stage [none]: a deployment name (lowercase letters, digits and single hyphens, at most 16 characters,
    e.g. "prod"); every physical name is prefixed "notiflow-<stage>-", the CloudFormation stack is
    "Notiflow-<stage>", and the functions' Powertools service (the metrics' service dimension) is
    "notiflow-<stage>", so several deployments live side by side in one account and region.
  deliveryMode ["fast-path"; or "standard"], fastPathRetries [Express ASL file: 2],
  expressLogLevel ["ERROR"; ALL, ERROR, FATAL or OFF]
  retryIntervalSeconds, retryMaxAttempts, retryBackoffRate, retryMaxDelaySeconds [Standard ASL file]
  connectTimeoutSeconds [5], readTimeoutSeconds [15], maxResponseBytes [65536]
  allowedSchemes ["https"], allowPrivateTargets [false], allowLoopbackTargets [false],
  allowedTargetHosts [any public host]
  hostMaxInFlight [10; 0: no per-host limit], hostLimits ["" e.g. "hooks.example.com=5,api.example.net=20"]
  recordTtlDays [90], logLevel ["INFO"], logRetentionDays [30], retainData [true]
  maxReceiveCount [5], ingestBatchSize [10]
  alarmEmail [none], alarmTopicArn [none]: where alarms go; an email gets a new SNS topic with that
    subscription, a topic ARN is used as it is (both may be given; neither: alarms notify nobody)
  ingestMaxConcurrency [20; 2..1000]: the SQS trigger's maximum concurrency (ScalingConfig), which the
    local poller honours too. Why 20: in fast-path mode one ingest invocation holds a whole batch of
    Express runs, each running one step Lambda at a time, so ingest concurrency N can hold about
    N x (1 + ingestBatchSize) functions at once: 220 at the default, under a quarter of the default
    regional quota (1,000), while an unbounded trigger scales toward 1,000 pollers and throttles the
    workflow's own steps. About 200 notifications a second at 1 s per delivery; raise it with the quota.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from lambdas.shared.config import (
    ATTEMPT_MARGIN_SECONDS,
    ConfigurationError,
    Settings,
    format_host_limits,
    parse_host_limits,
    parse_settings,
    split_csv,
)
from lambdas.shared.constants import METRICS_NAMESPACE, SERVICE_NAME, DeliveryMode, EnvVar
from workflows.definition import (
    DELIVER_STATE,
    DeliveryRetryPolicy,
    default_fast_retry_policy,
    default_retry_policy,
    fast_path_attempts,
    fast_path_timeout_seconds,
    load_definition,
    load_fast_path_definition,
)

LOG_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
DELIVER_TIMEOUT_MARGIN_SECONDS: Final = ATTEMPT_MARGIN_SECONDS
"""Room for the secret lookup, the host slot and the DynamoDB writes around one HTTP attempt."""
EXPRESS_LOG_LEVELS: Final = ("ALL", "ERROR", "FATAL", "OFF")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STAGE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
STAGE_MAX_LENGTH: Final = 16
"""Keeps the longest derived name (``notiflow-<stage>-failure-gate``, a function) far below Lambda's 64."""
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
STACK_NAME: Final = "Notiflow"
"""The CloudFormation stack of the default deployment; a stage's is ``Notiflow-<stage>``."""


def stage_prefix(stage: str | None) -> str:
    """The prefix of every physical name of a deployment: ``notiflow``, or ``notiflow-<stage>``."""
    return f"{SERVICE_NAME}-{stage}" if stage else SERVICE_NAME


def stack_name(stage: str | None) -> str:
    """The CloudFormation stack of a deployment: ``Notiflow``, or ``Notiflow-<stage>``."""
    return f"{STACK_NAME}-{stage}" if stage else STACK_NAME


_OWN_KEY_SHAPE = re.compile(r"^[a-z][A-Za-z0-9]*$")
"""Notiflow keys are lowerCamel words; CDK's own keys carry ':' '@' or '-' and are left alone."""
_RETRY_KEYS: Final = {
    "interval_seconds": "retryIntervalSeconds",
    "max_attempts": "retryMaxAttempts",
    "backoff_rate": "retryBackoffRate",
    "max_delay_seconds": "retryMaxDelaySeconds",
}


def _settings_default(field: str) -> Any:
    """The Lambdas' own default of a setting: one home for every default."""
    return Settings.model_fields[field].default


class ContextError(ValueError):
    """The CDK context does not describe a valid deployment; the message names the context key."""


class NotiflowConfig(BaseModel):
    """Everything a deployment may choose; see the module docstring for the context keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    delivery_mode: DeliveryMode = _settings_default("delivery_mode")
    fast_path_retries: int | None = Field(default=None, ge=0)
    express_log_level: Literal["ALL", "ERROR", "FATAL", "OFF"] = "ERROR"
    retry_interval_seconds: int | None = None
    retry_max_attempts: int | None = None
    retry_backoff_rate: float | None = None
    retry_max_delay_seconds: int | None = None
    connect_timeout_seconds: float = _settings_default("connect_timeout_seconds")
    read_timeout_seconds: float = _settings_default("read_timeout_seconds")
    max_response_bytes: int = _settings_default("max_response_bytes")
    allowed_schemes: tuple[str, ...] = _settings_default("allowed_schemes")
    allow_private_targets: bool = _settings_default("allow_private_targets")
    allow_loopback_targets: bool = _settings_default("allow_loopback_targets")
    allowed_target_hosts: tuple[str, ...] = _settings_default("allowed_target_hosts")
    host_max_in_flight: int = _settings_default("host_max_in_flight")
    host_limits: dict[str, int] = Field(default_factory=dict)
    record_ttl_days: int = _settings_default("record_ttl_days")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_retention_days: int = 30
    retain_data: bool = True
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    ingest_batch_size: int = Field(default=10, ge=1, le=10)
    ingest_max_concurrency: int = Field(default=20, ge=2, le=1000)
    alarm_email: str | None = None
    alarm_topic_arn: str | None = None
    stage: str | None = None

    @field_validator("allowed_schemes", "allowed_target_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("host_limits", mode="before")
    @classmethod
    def _parse_host_limits(cls, value: object) -> object:
        return parse_host_limits(value)

    @field_validator("alarm_email", "alarm_topic_arn", "stage", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"not an email address: {value!r}")
        return value

    @field_validator("alarm_topic_arn")
    @classmethod
    def _topic_arn(cls, value: str | None) -> str | None:
        if value is not None and not _TOPIC_ARN.match(value):
            raise ValueError(f"not an SNS topic ARN: {value!r}")
        return value

    @field_validator("stage")
    @classmethod
    def _stage(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > STAGE_MAX_LENGTH or not _STAGE.match(value)):
            raise ValueError(
                f"a stage is 1-{STAGE_MAX_LENGTH} lowercase letters, digits and single hyphens, starting with a "
                f"letter (e.g. prod, eu-test), got {value!r}"
            )
        return value

    @property
    def prefix(self) -> str:
        """The prefix of every physical name and the Powertools service: ``notiflow`` or ``notiflow-<stage>``."""
        return stage_prefix(self.stage)

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {list(LOG_RETENTION_DAYS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NotiflowConfig:
        try:
            self.retry_policy()
        except ValueError as exc:
            raise ValueError(_rename(str(exc), _RETRY_KEYS)) from exc
        try:
            parse_settings(self.settings_environment())
        except ConfigurationError as exc:
            message = str(exc).removeprefix("invalid Notiflow configuration: ")
            raise ValueError(_rename(message, _SETTINGS_KEYS)) from exc
        limit = int(load_definition()["States"][DELIVER_STATE]["TimeoutSeconds"])
        if self.deliver_timeout_seconds >= limit:
            raise ValueError(
                f"connectTimeoutSeconds + readTimeoutSeconds + {DELIVER_TIMEOUT_MARGIN_SECONDS}s must stay below "
                f"the {DELIVER_STATE} state's TimeoutSeconds ({limit}s), got {self.deliver_timeout_seconds}s"
            )
        schedule = self.retry_policy() or default_retry_policy()
        try:
            schedule.continued_after(fast_path_attempts(self.fast_retry_policy()))
        except ValueError as exc:
            raise ValueError(f"fastPathRetries must stay below the retries of the schedule: {exc}") from exc
        if (
            self.delivery_mode is DeliveryMode.FAST_PATH
            and self.fast_path_budget_seconds >= fast_path_timeout_seconds()
        ):
            raise ValueError(
                f"the fast path's attempts and waits may take {self.fast_path_budget_seconds:g}s, not below the "
                f"Express run's TimeoutSeconds ({fast_path_timeout_seconds()}s): lower fastPathRetries or the "
                "HTTP timeouts, or use deliveryMode standard"
            )
        return self

    def fast_retry_policy(self) -> DeliveryRetryPolicy:
        """The fast path's quick retries: the Express file's retrier with ``fastPathRetries`` written in."""
        return default_fast_retry_policy().with_overrides(max_attempts=self.fast_path_retries)

    @property
    def fast_path_budget_seconds(self) -> float:
        """The longest the fast path's attempts and waits take in a run: it must fit the Express timeout."""
        deliver = load_fast_path_definition()["States"][DELIVER_STATE]
        busy = next(r for r in deliver["Retry"] if r["ErrorEquals"] == ["HostBusyError"])
        busy_waits = DeliveryRetryPolicy(
            interval_seconds=busy["IntervalSeconds"],
            max_attempts=busy["MaxAttempts"],
            backoff_rate=busy["BackoffRate"],
            max_delay_seconds=busy["MaxDelaySeconds"],
        ).nominal_delays()
        quick = self.fast_retry_policy()
        http = self.connect_timeout_seconds + self.read_timeout_seconds
        return fast_path_attempts(quick) * http + sum(quick.nominal_delays()) + sum(busy_waits)

    @classmethod
    def from_context(cls, get: Callable[[str], Any], present: Iterable[str] = ()) -> NotiflowConfig:
        """Read every Notiflow key through ``get`` (e.g. ``app.node.try_get_context``) and validate once.

        ``present`` lists the context keys that were given, so a misspelt key fails instead of
        silently deploying the default.
        """
        known = {field.alias for field in cls.model_fields.values() if field.alias}
        unknown = sorted(key for key in present if _OWN_KEY_SHAPE.match(key) and key not in known)
        if unknown:
            hints = [
                f"{key} (did you mean {match[0]}?)" if (match := difflib.get_close_matches(key, known, 1)) else key
                for key in unknown
            ]
            raise ContextError(f"invalid Notiflow context: unknown key {', '.join(hints)}")
        values = {key: get(key) for key in known}
        try:
            return cls.model_validate({key: value for key, value in values.items() if value is not None})
        except ValidationError as exc:
            problems = "; ".join(
                ": ".join(filter(None, [".".join(map(str, err["loc"])), err["msg"].replace("Value error, ", "")]))
                for err in exc.errors()
            )
            raise ContextError(f"invalid Notiflow context: {problems}") from exc

    def retry_policy(self) -> DeliveryRetryPolicy | None:
        """The delivery retry override, or None to deploy the schedule written in the ASL file."""
        overrides = {
            "interval_seconds": self.retry_interval_seconds,
            "max_attempts": self.retry_max_attempts,
            "backoff_rate": self.retry_backoff_rate,
            "max_delay_seconds": self.retry_max_delay_seconds,
        }
        if all(value is None for value in overrides.values()):
            return None
        return default_retry_policy().with_overrides(**overrides)

    @property
    def deliver_timeout_seconds(self) -> int:
        """The deliver Lambda's timeout: one full HTTP attempt plus bookkeeping."""
        return math.ceil(self.connect_timeout_seconds + self.read_timeout_seconds) + DELIVER_TIMEOUT_MARGIN_SECONDS

    def settings_environment(self) -> dict[str, str]:
        """Static Lambda environment shared by every function, so all steps apply the same policy."""
        return {
            EnvVar.CONNECT_TIMEOUT_SECONDS: f"{self.connect_timeout_seconds:g}",
            EnvVar.READ_TIMEOUT_SECONDS: f"{self.read_timeout_seconds:g}",
            EnvVar.MAX_RESPONSE_BYTES: str(self.max_response_bytes),
            EnvVar.ALLOWED_SCHEMES: ",".join(self.allowed_schemes),
            EnvVar.ALLOW_PRIVATE_TARGETS: "true" if self.allow_private_targets else "false",
            EnvVar.ALLOW_LOOPBACK_TARGETS: "true" if self.allow_loopback_targets else "false",
            EnvVar.ALLOWED_TARGET_HOSTS: ",".join(self.allowed_target_hosts),
            EnvVar.RECORD_TTL_DAYS: str(self.record_ttl_days),
            EnvVar.DELIVERY_MODE: self.delivery_mode.value,
            EnvVar.HOST_MAX_IN_FLIGHT: str(self.host_max_in_flight),
            EnvVar.HOST_LIMITS: format_host_limits(self.host_limits),
            EnvVar.POWERTOOLS_SERVICE_NAME: self.prefix,
            EnvVar.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
            EnvVar.POWERTOOLS_LOG_LEVEL: self.log_level,
        }


_SETTINGS_KEYS: Final = {f"NOTIFLOW_{field.upper()}": to_camel(field) for field in NotiflowConfig.model_fields}


def _rename(message: str, names: dict[str, str]) -> str:
    """Say the context key a deployer sets instead of the internal name an error was raised with."""
    for internal, key in sorted(names.items(), key=lambda item: -len(item[0])):
        message = message.replace(internal, key)
    return message
