"""What Notiflow runs, as plain data: one spec read by the CDK app and by the embedded local stack.

Runtime, architecture, memory and timeout of every function, the intake queues, the physical names
and each function's environment are decided here once, from a validated :class:`NotiflowConfig`.
``infrastructure/`` turns the spec into CloudFormation; ``notiflow/local/stack.py`` turns the same
spec into moto API calls. This module imports no CDK, so the local stack can read it without the
CDK toolchain installed.

Names come from :class:`Names`, whose ``prefix`` is the service name today; a per-stage deployment
changes the prefix (``notiflow-prod``) and every physical name follows.

An environment value that only exists once a resource exists (the state machine ARN, the secret
ARN, the table name as CloudFormation reports it) is a :class:`Ref`: each platform fills it in
with what it has (a CloudFormation token on AWS, the real value locally).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from infrastructure.config import NotiflowConfig
from lambdas.shared.constants import (
    DEFAULT_DLQ_NAME,
    DEFAULT_QUEUE_NAME,
    DEFAULT_STATE_MACHINE_NAME,
    DEFAULT_TABLE_NAME,
    OPS_INDEX_NAME,
    OPS_INDEX_PROJECTION,
    OPS_SINCE_ATTRIBUTE,
    OPS_STATUS_ATTRIBUTE,
    SERVICE_NAME,
    STATUS_CHANGE_DETAIL_TYPE,
    STATUS_CHANGE_SOURCE,
    STEP_DEDUPLICATE,
    STEP_DELIVER,
    STEP_FAILURE_GATE,
    STEP_INGEST,
    STEP_RECONCILE,
    STEP_VALIDATE,
    TABLE_PARTITION_KEY,
    TABLE_TTL_ATTRIBUTE,
    WORKFLOW_STEPS,
    EnvVar,
    handler_path,
)
from workflows.definition import DeliveryRetryPolicy

RUNTIME: Final = "python3.13"
"""One Python for every function; the bundled wheels are chosen for it (infrastructure/bundling.py)."""
ARCHITECTURE: Final = "arm64"
MEMORY_MB: Final = 256
INGEST_TIMEOUT_SECONDS: Final = 30
STEP_TIMEOUT_SECONDS: Final = 15
"""Validate, deduplicate and the failure gate: one DynamoDB call at most."""
VISIBILITY_TIMEOUT_FACTOR: Final = 6
"""AWS recommends a visibility timeout of six times the timeout of the function a queue triggers."""
QUEUE_RETENTION_SECONDS: Final = 4 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS: Final = 14 * 24 * 3600
STATE_MACHINE_TYPE: Final = "STANDARD"

TRACER_CAPTURE_RESPONSE: Final = "POWERTOOLS_TRACER_CAPTURE_RESPONSE"
TRACER_CAPTURE_ERROR: Final = "POWERTOOLS_TRACER_CAPTURE_ERROR"
TRACER_ENVIRONMENT: Final = MappingProxyType({TRACER_CAPTURE_RESPONSE: "false", TRACER_CAPTURE_ERROR: "false"})
"""Handler results and exception messages carry notification content and outcomes: never into X-Ray."""

_DESCRIPTIONS: Final = {
    STEP_INGEST: "Notiflow: starts one delivery run per queued notification",
    STEP_VALIDATE: "Notiflow: checks the notification contract and the target URL policy",
    STEP_DEDUPLICATE: "Notiflow: claims the notification for this run with one conditional write",
    STEP_DELIVER: "Notiflow: one signed HTTP delivery attempt",
    STEP_FAILURE_GATE: "Notiflow: fails the run after a failed delivery, reopens it on redrive",
    STEP_RECONCILE: "Notiflow: closes records of runs that stopped outside the workflow, reopens them on redrive",
}
TABLE_PLACEHOLDER: Final = "NotificationsTableName"


class Ref(StrEnum):
    """A value a function's environment needs that exists only once the resource does."""

    TABLE_NAME = "table-name"
    STATE_MACHINE_ARN = "state-machine-arn"
    SIGNING_SECRET_ARN = "signing-secret-arn"  # noqa: S105 - names a resource, holds no secret


class TargetPolicy(StrEnum):
    """Which targets the local stack's deliver step may reach.

    ``local``: http and https, receivers on loopback allowed, every other private address refused.
    ``production``: exactly what the deployed stack allows by default (https, nothing private), so a
    local run shows what AWS would refuse.
    """

    LOCAL = "local"
    PRODUCTION = "production"

    def config_fields(self) -> dict[str, object]:
        """The NotiflowConfig fields this policy sets (production: none, the deployed defaults)."""
        if self is TargetPolicy.PRODUCTION:
            return {}
        return {"allowed_schemes": ("http", "https"), "allow_loopback_targets": True}

    def describe(self) -> str:
        """One line for the ``local up`` banner."""
        if self is TargetPolicy.PRODUCTION:
            return "production: as deployed, https only and no private address (the example below is refused)"
        return "local: http and https, receivers on 127.0.0.1 allowed, other private addresses refused"


def pascal(step: str) -> str:
    """``failure_gate`` -> ``FailureGate``: construct ids and ASL placeholder names."""
    return "".join(part.capitalize() for part in step.split("_"))


def placeholder_for(step: str) -> str:
    """The ASL placeholder of a step's function ARN, e.g. ``FailureGateFunctionArn``."""
    return f"{pascal(step)}FunctionArn"


@dataclass(frozen=True)
class Names:
    """Physical names of every resource, all derived from one prefix (a stage would extend it)."""

    prefix: str = SERVICE_NAME

    def _named(self, default: str) -> str:
        # The default names live in lambdas.shared.constants (the Lambdas fall back on them); a
        # different prefix replaces their leading service name.
        return self.prefix + default.removeprefix(SERVICE_NAME)

    @property
    def table(self) -> str:
        """The notifications table, e.g. ``notiflow-notifications``."""
        return self._named(DEFAULT_TABLE_NAME)

    @property
    def queue(self) -> str:
        """The intake queue, e.g. ``notiflow-intake``."""
        return self._named(DEFAULT_QUEUE_NAME)

    @property
    def dead_letter_queue(self) -> str:
        """The intake queue's DLQ, e.g. ``notiflow-intake-dlq``."""
        return self._named(DEFAULT_DLQ_NAME)

    @property
    def state_machine(self) -> str:
        """The delivery state machine, e.g. ``notiflow-delivery``."""
        return self._named(DEFAULT_STATE_MACHINE_NAME)

    @property
    def state_machine_log_group(self) -> str:
        """Where the state machine's execution events go (a vended-logs group)."""
        return f"/aws/vendedlogs/states/{self.state_machine}"

    @property
    def signing_secret(self) -> str:
        """The Secrets Manager secret holding the Standard Webhooks key."""
        return f"{self.prefix}-signing-secret"

    def function(self, step: str) -> str:
        """A step's function, e.g. ``notiflow-failure-gate``: predictable for the console and the CLI."""
        return f"{self.prefix}-{step.replace('_', '-')}"

    def function_log_group(self, step: str) -> str:
        """The log group Lambda writes a step's logs to."""
        return f"/aws/lambda/{self.function(step)}"


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda step: what it runs on, how long it may take, and what its environment holds."""

    step: str
    name: str
    handler: str
    description: str
    runtime: str
    architecture: str
    memory_mb: int
    timeout_seconds: int
    log_group: str
    environment: Mapping[str, str]
    refs: Mapping[str, Ref] = field(default_factory=dict)
    """Environment variable -> the resource value it takes, filled in per platform."""

    def resolved_environment(self, resolve: Callable[[Ref], str]) -> dict[str, str]:
        """The complete environment, with every :class:`Ref` replaced by ``resolve(ref)``."""
        return {**self.environment, **{name: resolve(ref) for name, ref in self.refs.items()}}


@dataclass(frozen=True)
class IntakeSpec:
    """The intake queue, its dead-letter queue and how the ingest function consumes it."""

    queue_name: str
    dead_letter_queue_name: str
    visibility_timeout_seconds: int
    retention_seconds: int
    dead_letter_retention_seconds: int
    max_receive_count: int
    batch_size: int


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index with string keys and an INCLUDE projection."""

    name: str
    partition_key: str
    sort_key: str
    projected: tuple[str, ...]

    def request(self) -> dict[str, Any]:
        """The index as CreateTable's ``GlobalSecondaryIndexes`` entry (on-demand: no throughput)."""
        return {
            "IndexName": self.name,
            "KeySchema": [
                {"AttributeName": self.partition_key, "KeyType": "HASH"},
                {"AttributeName": self.sort_key, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(self.projected)},
        }


OPS_INDEX: Final = IndexSpec(
    name=OPS_INDEX_NAME,
    partition_key=OPS_STATUS_ATTRIBUTE,
    sort_key=OPS_SINCE_ATTRIBUTE,
    projected=OPS_INDEX_PROJECTION,
)
"""The operator index: sparse (only records that carry opsStatus), queried by status and time."""


@dataclass(frozen=True)
class TableSpec:
    """The notifications table: one record per notification, expired by TTL, with the operator index."""

    name: str
    partition_key: str = TABLE_PARTITION_KEY
    ttl_attribute: str = TABLE_TTL_ATTRIBUTE
    ops_index: IndexSpec = OPS_INDEX

    def create_table_request(self) -> dict[str, Any]:
        """CreateTable's parameters for this table (on-demand), as the local stack and tests create it."""
        index = self.ops_index
        return {
            "TableName": self.name,
            "KeySchema": [{"AttributeName": self.partition_key, "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": "S"}
                for name in (self.partition_key, index.partition_key, index.sort_key)
            ],
            "GlobalSecondaryIndexes": [index.request()],
            "BillingMode": "PAY_PER_REQUEST",
        }


@dataclass(frozen=True)
class ReconcilerSpec:
    """The reconciler: a function invoked by an EventBridge rule on the state machine's status changes."""

    function: FunctionSpec
    rule_name: str
    dead_letter_queue_name: str
    dead_letter_retention_seconds: int

    @staticmethod
    def event_pattern(state_machine_arn: str) -> dict[str, Any]:
        """The rule's pattern: this machine's runs that stopped (ABORTED, TIMED_OUT, FAILED) or were redriven.

        FAILED is not narrowed by error name here: events may come without one, and the function skips
        the failures the workflow recorded itself without touching the table. A RUNNING change matters
        only for a redrive (redriveCount above 0), so first starts never invoke the function.
        """
        return {
            "source": [STATUS_CHANGE_SOURCE],
            "detail-type": [STATUS_CHANGE_DETAIL_TYPE],
            "detail": {
                "stateMachineArn": [state_machine_arn],
                "$or": [
                    {"status": ["ABORTED", "TIMED_OUT", "FAILED"]},
                    {"status": ["RUNNING"], "redriveCount": [{"numeric": [">", 0]}]},
                ],
            },
        }


@dataclass(frozen=True)
class StateMachineSpec:
    """The delivery workflow: the ASL file rendered with the functions' ARNs and the table name."""

    name: str
    type: str
    log_group: str
    retry_policy: DeliveryRetryPolicy | None

    @staticmethod
    def substitutions(function_arns: Mapping[str, str], table_name: str) -> dict[str, str]:
        """The values of the definition's placeholders (ARN per workflow step, table name)."""
        values = {placeholder_for(step): function_arns[step] for step in WORKFLOW_STEPS}
        values[TABLE_PLACEHOLDER] = table_name
        return values


@dataclass(frozen=True)
class NotiflowSpec:
    """Everything both platforms build, in one value."""

    names: Names
    functions: Mapping[str, FunctionSpec]
    intake: IntakeSpec
    table: TableSpec
    state_machine: StateMachineSpec
    log_retention_days: int
    reconciler: ReconcilerSpec

    def function(self, step: str) -> FunctionSpec:
        """The spec of one step's function."""
        return self.functions[step]


def _timeout(step: str, config: NotiflowConfig) -> int:
    if step == STEP_INGEST:
        return INGEST_TIMEOUT_SECONDS
    if step == STEP_DELIVER:
        return config.deliver_timeout_seconds
    return STEP_TIMEOUT_SECONDS


def _refs(step: str) -> dict[str, Ref]:
    """Every step reads the table name; only ingest starts runs and only deliver signs."""
    refs = {EnvVar.TABLE_NAME: Ref.TABLE_NAME}
    if step == STEP_INGEST:
        refs[EnvVar.STATE_MACHINE_ARN] = Ref.STATE_MACHINE_ARN
    if step == STEP_DELIVER:
        refs[EnvVar.SIGNING_SECRET_ID] = Ref.SIGNING_SECRET_ARN
    return refs


def build_spec(config: NotiflowConfig, names: Names | None = None) -> NotiflowSpec:
    """The spec of a deployment configured by ``config`` (names under ``names``, default ``notiflow-*``)."""
    names = names or Names()
    shared_environment = MappingProxyType({**config.settings_environment(), **TRACER_ENVIRONMENT})

    def function_spec(step: str) -> FunctionSpec:
        return FunctionSpec(
            step=step,
            name=names.function(step),
            handler=handler_path(step),
            description=_DESCRIPTIONS[step],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            memory_mb=MEMORY_MB,
            timeout_seconds=_timeout(step, config),
            log_group=names.function_log_group(step),
            environment=shared_environment,
            refs=MappingProxyType(_refs(step)),
        )

    functions = {step: function_spec(step) for step in (STEP_INGEST, *WORKFLOW_STEPS)}
    reconciler = ReconcilerSpec(
        function=function_spec(STEP_RECONCILE),
        rule_name=f"{names.prefix}-run-status-changes",
        dead_letter_queue_name=f"{names.prefix}-reconcile-dlq",
        dead_letter_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
    )
    intake = IntakeSpec(
        queue_name=names.queue,
        dead_letter_queue_name=names.dead_letter_queue,
        visibility_timeout_seconds=VISIBILITY_TIMEOUT_FACTOR * INGEST_TIMEOUT_SECONDS,
        retention_seconds=QUEUE_RETENTION_SECONDS,
        dead_letter_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
        max_receive_count=config.max_receive_count,
        batch_size=config.ingest_batch_size,
    )
    state_machine = StateMachineSpec(
        name=names.state_machine,
        type=STATE_MACHINE_TYPE,
        log_group=names.state_machine_log_group,
        retry_policy=config.retry_policy(),
    )
    return NotiflowSpec(
        names=names,
        functions=MappingProxyType(functions),
        intake=intake,
        table=TableSpec(name=names.table),
        state_machine=state_machine,
        log_retention_days=config.log_retention_days,
        reconciler=reconciler,
    )
