"""Names shared by the Lambdas, the CDK app and the local stack.

Everything that must agree between what deploys and what runs lives here, so the
infrastructure and the code can never drift apart.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

SERVICE_NAME: Final = "notiflow"
METRICS_NAMESPACE: Final = "Notiflow"

# DynamoDB table holding one record per notification.
TABLE_PARTITION_KEY: Final = "notificationId"
TABLE_TTL_ATTRIBUTE: Final = "expiresAt"
DEFAULT_TABLE_NAME: Final = "notiflow-notifications"
DEFAULT_STATE_MACHINE_NAME: Final = "notiflow-delivery"
"""The Standard workflow: every notification that needs waiting, redrive or the console ends up here."""
DEFAULT_FAST_PATH_STATE_MACHINE_NAME: Final = "notiflow-fast-path"
"""The Express workflow that makes the first delivery attempt in ``fast-path`` mode."""
DEFAULT_HOST_LEASES_TABLE_NAME: Final = "notiflow-host-leases"
HOST_LEASES_PARTITION_KEY: Final = "host"
DEFAULT_QUEUE_NAME: Final = "notiflow-intake"
DEFAULT_DLQ_NAME: Final = "notiflow-intake-dlq"

# The operator index: a sparse GSI over the records an operator looks for (PROCESSING under a Standard
# run, FAILED, REJECTED). Every writer keeps opsStatus (= status while in one of those) and opsSince
# (ISO 8601 UTC, ms, Z: when it entered it); SUCCESS removes both, so delivered records are not indexed.
OPS_INDEX_NAME: Final = "byOpsStatus"
OPS_STATUS_ATTRIBUTE: Final = "opsStatus"
OPS_SINCE_ATTRIBUTE: Final = "opsSince"
OPS_INDEX_PROJECTION: Final = (
    "status",
    "executionArn",
    "fastPathExecutionArn",
    "createdAt",
    "lastUpdatedAt",
    "targetHost",
    "attempts",
    "errorName",
    "deliveryResult",
    "redriveCount",
    "reconciledAt",
)
"""Non-key attributes the index carries: what `runs list`, bulk redrive and the console's list show or decide on."""


class RecordStatus(StrEnum):
    """Status of a notification record: PROCESSING while a run owns it, then exactly one terminal status."""

    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    REJECTED = "REJECTED"

    @property
    def terminal(self) -> bool:
        """Whether no run will change this status again (short of a redrive or a replay)."""
        return self is not RecordStatus.PROCESSING


class DeliveryMode(StrEnum):
    """Which workflow ingest starts for a notification.

    ``fast-path``: a synchronous Express run makes the first attempt (plus a few quick retries) and hands
    anything else over to the Standard workflow. ``standard``: every notification runs in the Standard
    workflow from the start.
    """

    FAST_PATH = "fast-path"
    STANDARD = "standard"


class FastPathOutcome(StrEnum):
    """How an Express run ended, as its output's ``outcome`` says (ingest reads it)."""

    SUCCESS = "SUCCESS"
    """Delivered and recorded SUCCESS."""
    DUPLICATE = "DUPLICATE"
    """Delivered, failed or rejected already, or owned by a Standard run; nothing was sent."""
    HANDED_OVER = "HANDED_OVER"
    """The Standard run with the notification's execution name owns it now."""
    BUSY = "BUSY"
    """Another Express run holds a live claim; only its SQS message guards it, and that may be this very
    message delivered twice, so this one stays on the queue until the holder's outcome is known."""
    STALE = "STALE"
    """A conditional write found the record was no longer this run's; the next delivery of the message decides."""

    @property
    def durable(self) -> bool:
        """Whether the outcome is safe to acknowledge: something other than this SQS message now guards it."""
        return self not in (FastPathOutcome.BUSY, FastPathOutcome.STALE)


class HandOverKind(StrEnum):
    """Why an Express run handed a notification over, and so where the Standard run picks it up."""

    RETRY = "retry"
    """A retryable failure after the fast attempts: wait the schedule's next back-off, then deliver."""
    RETRY_AFTER = "retryAfter"
    """The receiver asked to come back later: wait as asked, then deliver."""
    HOST_BUSY = "hostBusy"
    """The target host stayed at its limit of deliveries in flight: deliver (the busy retrier waits)."""
    FAILED = "failed"
    """A permanent failure: record FAILED and stop at the failure gate (redrivable)."""
    UNEXPECTED = "unexpected"
    """An error outside the delivery contract (e.g. a timed-out attempt): record FAILED, no blind retry."""


class ExecutionStatus(StrEnum):
    """Status of a Step Functions execution, as DescribeExecution and ListExecutions report it."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"

    @property
    def finished(self) -> bool:
        """Whether the run has stopped (it may still be redriven)."""
        return self not in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING_REDRIVE)


FINISHED_EXECUTION_STATUSES: Final = frozenset(status for status in ExecutionStatus if status.finished)
REDRIVABLE_EXECUTION_STATUSES: Final = frozenset(
    {ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED}
)

# EventBridge's execution status change events (Standard workflows only), which the reconciler reacts to.
STATUS_CHANGE_SOURCE: Final = "aws.states"
STATUS_CHANGE_DETAIL_TYPE: Final = "Step Functions Execution Status Change"

# SQS message attribute that marks a deliberate replay of a FAILED notification.
REPLAY_ATTRIBUTE: Final = "notiflow-replay"

# Lambda step names: the directory under lambdas/ and the logical function name.
STEP_INGEST: Final = "ingest"
STEP_VALIDATE: Final = "validate"
STEP_DEDUPLICATE: Final = "deduplicate"
STEP_DELIVER: Final = "deliver"
STEP_FAILURE_GATE: Final = "failure_gate"
STEP_RECONCILE: Final = "reconcile"
"""Not a workflow step: reacts to the state machine's status-change events (EventBridge)."""
WORKFLOW_STEPS: Final = (STEP_VALIDATE, STEP_DEDUPLICATE, STEP_DELIVER, STEP_FAILURE_GATE)


def handler_path(step: str) -> str:
    """Handler string, identical locally and on AWS (e.g. ``lambdas.deliver.handler.lambda_handler``)."""
    return f"lambdas.{step}.handler.lambda_handler"


class EnvVar:
    """Environment variable names read by the Lambdas and set by the CDK app and the local stack."""

    TABLE_NAME: Final = "NOTIFLOW_TABLE_NAME"
    STATE_MACHINE_ARN: Final = "NOTIFLOW_STATE_MACHINE_ARN"
    FAST_PATH_STATE_MACHINE_ARN: Final = "NOTIFLOW_FAST_PATH_STATE_MACHINE_ARN"
    DELIVERY_MODE: Final = "NOTIFLOW_DELIVERY_MODE"
    HOST_LEASES_TABLE_NAME: Final = "NOTIFLOW_HOST_LEASES_TABLE_NAME"
    HOST_MAX_IN_FLIGHT: Final = "NOTIFLOW_HOST_MAX_IN_FLIGHT"
    HOST_LIMITS: Final = "NOTIFLOW_HOST_LIMITS"
    SIGNING_SECRET_ID: Final = "NOTIFLOW_SIGNING_SECRET_ID"  # noqa: S105 - a variable name, not a secret
    CONNECT_TIMEOUT_SECONDS: Final = "NOTIFLOW_CONNECT_TIMEOUT_SECONDS"
    READ_TIMEOUT_SECONDS: Final = "NOTIFLOW_READ_TIMEOUT_SECONDS"
    MAX_RESPONSE_BYTES: Final = "NOTIFLOW_MAX_RESPONSE_BYTES"
    ALLOWED_SCHEMES: Final = "NOTIFLOW_ALLOWED_SCHEMES"
    ALLOW_PRIVATE_TARGETS: Final = "NOTIFLOW_ALLOW_PRIVATE_TARGETS"
    ALLOW_LOOPBACK_TARGETS: Final = "NOTIFLOW_ALLOW_LOOPBACK_TARGETS"
    ALLOWED_TARGET_HOSTS: Final = "NOTIFLOW_ALLOWED_TARGET_HOSTS"
    RECORD_TTL_DAYS: Final = "NOTIFLOW_RECORD_TTL_DAYS"
    # Powertools reads these itself; listed so the CDK app sets exactly these names.
    POWERTOOLS_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
    POWERTOOLS_LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"
