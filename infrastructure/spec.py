"""What Notiflow runs, as plain data: one spec read by the CDK app and by the embedded local stack.

Runtime, architecture, memory and timeout of every function, the intake queues, the physical names
and each function's environment are decided here once, from a validated :class:`NotiflowConfig`.
``infrastructure/`` turns the spec into CloudFormation; ``notiflow/local/stack.py`` turns the same
spec into moto API calls. This module imports no CDK, so the local stack can read it without the
CDK toolchain installed.

Names come from :class:`Names`, whose ``prefix`` is ``notiflow``, or ``notiflow-<stage>`` for a deployment
with a ``stage`` (``notiflow-prod``): every physical name follows it, so stages coexist in one account.

An environment value that only exists once a resource exists (the state machine ARN, the secret
ARN, the table name as CloudFormation reports it) is a :class:`Ref`: each platform fills it in
with what it has (a CloudFormation token on AWS, the real value locally).

The delivery mode decides what ingest starts and how long it may take: in ``fast-path`` mode it runs
the Express workflow synchronously, so its timeout covers a whole Express run and the queue's
visibility timeout (six times that) outlasts an Express claim's lease, so a message whose run died
is delivered again only once its claim can be taken over. Both state machines are always deployed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from infrastructure.config import NotiflowConfig
from lambdas.shared.constants import (
    DEFAULT_DLQ_NAME,
    DEFAULT_FAST_PATH_STATE_MACHINE_NAME,
    DEFAULT_HOST_LEASES_TABLE_NAME,
    DEFAULT_QUEUE_NAME,
    DEFAULT_STATE_MACHINE_NAME,
    DEFAULT_TABLE_NAME,
    HOST_LEASES_PARTITION_KEY,
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
    DeliveryMode,
    EnvVar,
    handler_path,
)
from workflows.definition import (
    DeliveryRetryPolicy,
    claim_lease_seconds,
    fast_path_attempts,
    fast_path_timeout_seconds,
    render_definition,
    render_fast_path_definition,
)

RUNTIME: Final = "python3.13"
"""One Python for every function; the bundled wheels are chosen for it (infrastructure/bundling.py)."""
ARCHITECTURE: Final = "arm64"
MEMORY_MB: Final = 256
INGEST_MEMORY_MB: Final = 128
"""Ingest mostly waits (on StartExecution, or on whole Express runs in fast-path mode), and Lambda bills
the wait by memory size: half the memory halves its duration cost (see `make cost`)."""
INGEST_TIMEOUT_SECONDS: Final = 30
"""Standard mode: one StartExecution per record."""
INGEST_SYNC_MARGIN_SECONDS: Final = 20
"""Fast-path mode: ingest waits for whole Express runs, so its timeout is the Express timeout plus this."""
STEP_TIMEOUT_SECONDS: Final = 15
"""Validate, deduplicate and the failure gate: one DynamoDB call at most."""
VISIBILITY_TIMEOUT_FACTOR: Final = 6
"""AWS recommends a visibility timeout of six times the timeout of the function a queue triggers."""
QUEUE_RETENTION_SECONDS: Final = 4 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS: Final = 14 * 24 * 3600
STATE_MACHINE_TYPE: Final = "STANDARD"
FAST_PATH_STATE_MACHINE_TYPE: Final = "EXPRESS"
STANDARD_LOG_LEVEL: Final = "ALL"

TRACER_CAPTURE_RESPONSE: Final = "POWERTOOLS_TRACER_CAPTURE_RESPONSE"
TRACER_CAPTURE_ERROR: Final = "POWERTOOLS_TRACER_CAPTURE_ERROR"
TRACER_ENVIRONMENT: Final = MappingProxyType({TRACER_CAPTURE_RESPONSE: "false", TRACER_CAPTURE_ERROR: "false"})
"""Handler results and exception messages carry notification content and outcomes: never into X-Ray."""

_DESCRIPTIONS: Final = {
    STEP_INGEST: "Notiflow: starts one delivery run per queued notification",
    STEP_VALIDATE: "Notiflow: checks the notification contract and the target URL policy",
    STEP_DEDUPLICATE: "Notiflow: claims the notification for this run with one conditional write",
    STEP_DELIVER: "Notiflow: one signed HTTP delivery attempt, within the target host's limit",
    STEP_FAILURE_GATE: "Notiflow: fails the run after a failed delivery, reopens it on redrive",
    STEP_RECONCILE: "Notiflow: closes records of runs that stopped outside the workflow, reopens them on redrive",
}
TABLE_PLACEHOLDER: Final = "NotificationsTableName"
STANDARD_ARN_PLACEHOLDER: Final = "StandardStateMachineArn"
STANDARD_EXECUTION_PREFIX_PLACEHOLDER: Final = "StandardExecutionArnPrefix"
FAST_PATH_STEPS: Final = (STEP_VALIDATE, STEP_DEDUPLICATE, STEP_DELIVER)
"""The Lambdas the Express workflow invokes (it has no failure gate: Express runs cannot be redriven)."""


class Ref(StrEnum):
    """A value a function's environment needs that exists only once the resource does."""

    TABLE_NAME = "table-name"
    STATE_MACHINE_ARN = "state-machine-arn"
    FAST_PATH_STATE_MACHINE_ARN = "fast-path-state-machine-arn"
    HOST_LEASES_TABLE_NAME = "host-leases-table-name"
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
    def fast_path_state_machine(self) -> str:
        """The Express workflow of the fast path, e.g. ``notiflow-fast-path``."""
        return self._named(DEFAULT_FAST_PATH_STATE_MACHINE_NAME)

    @property
    def fast_path_log_group(self) -> str:
        """Where the Express workflow's execution events go (its only history)."""
        return f"/aws/vendedlogs/states/{self.fast_path_state_machine}"

    @property
    def host_leases_table(self) -> str:
        """The per-host delivery slots, e.g. ``notiflow-host-leases``."""
        return self._named(DEFAULT_HOST_LEASES_TABLE_NAME)

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

    def alarm(self, construct_id: str) -> str:
        """``FailedExecutions`` -> ``notiflow-failed-executions``: stable alarm names to find in the console."""
        return f"{self.prefix}-" + re.sub(r"(?<!^)(?=[A-Z])", "-", construct_id).lower()

    @property
    def dashboard(self) -> str:
        """The CloudWatch dashboard, e.g. ``notiflow`` or ``notiflow-prod``."""
        return self.prefix


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
    max_concurrency: int
    """At most this many ingest invocations in flight (the trigger's ScalingConfig; the local poller's too)."""


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
class HostLeasesSpec:
    """The per-host delivery slots: one item per target host, expired by TTL when no longer used."""

    name: str
    partition_key: str = HOST_LEASES_PARTITION_KEY
    ttl_attribute: str = TABLE_TTL_ATTRIBUTE


@dataclass(frozen=True)
class StateMachineSpec:
    """The Standard workflow: its ASL file rendered with the functions' ARNs and the table name.

    ``fast_attempts`` is how many attempts the fast path makes before it hands over (0 in
    ``standard`` mode); the Deliver retrier continues the schedule after them.
    """

    name: str
    type: str
    log_group: str
    log_level: str
    retry_policy: DeliveryRetryPolicy | None
    fast_attempts: int = 0

    @staticmethod
    def substitutions(function_arns: Mapping[str, str], table_name: str) -> dict[str, str]:
        """The values of the definition's placeholders (ARN per workflow step, table name)."""
        values = {placeholder_for(step): function_arns[step] for step in WORKFLOW_STEPS}
        values[TABLE_PLACEHOLDER] = table_name
        return values

    def render(self, function_arns: Mapping[str, str], table_name: str) -> str:
        """The definition text both platforms create the state machine with."""
        return render_definition(self.substitutions(function_arns, table_name), self.retry_policy, self.fast_attempts)


@dataclass(frozen=True)
class FastPathSpec:
    """The Express workflow: its ASL file rendered with ARNs, the schedule, the quick retries and the lease."""

    name: str
    type: str
    log_group: str
    log_level: str
    retry_policy: DeliveryRetryPolicy | None
    fast_retries: int | None
    attempt_deadline_seconds: int
    lease_override_seconds: int | None = None
    """Local stacks only: a lease on the tests' shortened time scale (the deployed lease is always derived)."""

    @property
    def lease_seconds(self) -> int:
        """How long after its run's start an Express claim holds."""
        if self.lease_override_seconds is not None:
            return self.lease_override_seconds
        return claim_lease_seconds(self.attempt_deadline_seconds)

    @staticmethod
    def substitutions(
        function_arns: Mapping[str, str], table_name: str, standard_arn: str, standard_execution_prefix: str
    ) -> dict[str, str]:
        """The values of the Express definition's placeholders."""
        values = {placeholder_for(step): function_arns[step] for step in FAST_PATH_STEPS}
        values[TABLE_PLACEHOLDER] = table_name
        values[STANDARD_ARN_PLACEHOLDER] = standard_arn
        values[STANDARD_EXECUTION_PREFIX_PLACEHOLDER] = standard_execution_prefix
        return values

    def render(
        self, function_arns: Mapping[str, str], table_name: str, standard_arn: str, standard_execution_prefix: str
    ) -> str:
        """The definition text both platforms create the Express state machine with.

        ``standard_execution_prefix`` is the Standard machine's execution ARN up to and including
        the ``:`` before the execution name (``arn:aws:states:<region>:<account>:execution:<name>:``).
        """
        return render_fast_path_definition(
            self.substitutions(function_arns, table_name, standard_arn, standard_execution_prefix),
            self.retry_policy,
            self.fast_retries,
            self.attempt_deadline_seconds,
            self.lease_override_seconds,
        )


@dataclass(frozen=True)
class NotiflowSpec:
    """Everything both platforms build, in one value."""

    names: Names
    functions: Mapping[str, FunctionSpec]
    intake: IntakeSpec
    table: TableSpec
    host_leases: HostLeasesSpec
    state_machine: StateMachineSpec
    fast_path: FastPathSpec
    delivery_mode: DeliveryMode
    log_retention_days: int
    reconciler: ReconcilerSpec

    def function(self, step: str) -> FunctionSpec:
        """The spec of one step's function."""
        return self.functions[step]


def ingest_timeout_seconds(mode: DeliveryMode) -> int:
    """Ingest's timeout: a few StartExecution calls, or (fast path) whole synchronous Express runs."""
    if mode is DeliveryMode.FAST_PATH:
        return fast_path_timeout_seconds() + INGEST_SYNC_MARGIN_SECONDS
    return INGEST_TIMEOUT_SECONDS


def _timeout(step: str, config: NotiflowConfig) -> int:
    if step == STEP_INGEST:
        return ingest_timeout_seconds(config.delivery_mode)
    if step == STEP_DELIVER:
        return config.deliver_timeout_seconds
    return STEP_TIMEOUT_SECONDS


def _refs(step: str, mode: DeliveryMode) -> dict[str, Ref]:
    """Every step reads the table name; ingest starts the workflow its mode names; deliver signs and limits hosts."""
    refs = {EnvVar.TABLE_NAME: Ref.TABLE_NAME}
    if step == STEP_INGEST and mode is DeliveryMode.FAST_PATH:
        refs[EnvVar.FAST_PATH_STATE_MACHINE_ARN] = Ref.FAST_PATH_STATE_MACHINE_ARN
    elif step == STEP_INGEST:
        refs[EnvVar.STATE_MACHINE_ARN] = Ref.STATE_MACHINE_ARN
    if step == STEP_DELIVER:
        refs[EnvVar.SIGNING_SECRET_ID] = Ref.SIGNING_SECRET_ARN
        refs[EnvVar.HOST_LEASES_TABLE_NAME] = Ref.HOST_LEASES_TABLE_NAME
    return refs


def build_spec(config: NotiflowConfig, names: Names | None = None) -> NotiflowSpec:
    """The spec of a deployment configured by ``config`` (names under ``names``, default the config's prefix)."""
    names = names or Names(prefix=config.prefix)
    shared_environment = MappingProxyType({**config.settings_environment(), **TRACER_ENVIRONMENT})

    def function_spec(step: str) -> FunctionSpec:
        return FunctionSpec(
            step=step,
            name=names.function(step),
            handler=handler_path(step),
            description=_DESCRIPTIONS[step],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            memory_mb=INGEST_MEMORY_MB if step == STEP_INGEST else MEMORY_MB,
            timeout_seconds=_timeout(step, config),
            log_group=names.function_log_group(step),
            environment=shared_environment,
            refs=MappingProxyType(_refs(step, config.delivery_mode)),
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
        visibility_timeout_seconds=VISIBILITY_TIMEOUT_FACTOR * ingest_timeout_seconds(config.delivery_mode),
        retention_seconds=QUEUE_RETENTION_SECONDS,
        dead_letter_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
        max_receive_count=config.max_receive_count,
        batch_size=config.ingest_batch_size,
        max_concurrency=config.ingest_max_concurrency,
    )
    fast_mode = config.delivery_mode is DeliveryMode.FAST_PATH
    state_machine = StateMachineSpec(
        name=names.state_machine,
        type=STATE_MACHINE_TYPE,
        log_group=names.state_machine_log_group,
        log_level=STANDARD_LOG_LEVEL,
        retry_policy=config.retry_policy(),
        fast_attempts=fast_path_attempts(config.fast_retry_policy()) if fast_mode else 0,
    )
    fast_path = FastPathSpec(
        name=names.fast_path_state_machine,
        type=FAST_PATH_STATE_MACHINE_TYPE,
        log_group=names.fast_path_log_group,
        log_level=config.express_log_level,
        retry_policy=config.retry_policy(),
        fast_retries=config.fast_path_retries,
        attempt_deadline_seconds=config.deliver_timeout_seconds,
    )
    if fast_mode and intake.visibility_timeout_seconds < fast_path.lease_seconds + ingest_timeout_seconds(
        config.delivery_mode
    ):
        # A message whose Express run died must come back only once that run's claim can be taken over.
        raise ValueError("the intake visibility timeout must outlast an Express claim's lease and an ingest run")
    return NotiflowSpec(
        names=names,
        functions=MappingProxyType(functions),
        intake=intake,
        table=TableSpec(name=names.table),
        host_leases=HostLeasesSpec(name=names.host_leases_table),
        state_machine=state_machine,
        fast_path=fast_path,
        delivery_mode=config.delivery_mode,
        log_retention_days=config.log_retention_days,
        reconciler=reconciler,
    )
