"""The notification record: the one model of the DynamoDB item (partition key ``notificationId``).

Writers are the Deduplicate claim, the deliver step's attempt log (both through
``lambdas.shared.dal.notifications``) and the native ``UpdateItem`` states of both workflows
(Standard and the Express fast path), whose typed values the deliver step produces with
:meth:`NotificationRecord.typed_values`. Every attribute any of them sets is a field here;
``tests/unit/test_record.py`` parses the ASL expressions and fails when an attribute is written
there but missing here.

Operator index (``opsStatus``, ``opsSince``): every writer keeps them so a sparse index holds
exactly the records an operator may need to look at. They are present while the record is
PROCESSING under a Standard run (a Standard claim, or a hand-over from the fast path), or
FAILED, or REJECTED, and then equal ``status``; ``opsSince`` is when it took that value. A
SUCCESS write removes both; an Express-owned PROCESSING claim has neither (its SQS message
guards it until the Express run's outcome is durable).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from lambdas.shared.constants import TABLE_PARTITION_KEY, RecordStatus
from lambdas.shared.dal.codec import AttributeValue, from_typed_item, plain, to_attribute_value
from lambdas.shared.models import Category, DeliveryOutcome, HttpMethod

ATTEMPT_LOG_HEAD: Final = 5
"""The first attempts of a record are always kept (what went wrong at the start)."""
ATTEMPT_LOG_TAIL: Final = 20
"""The latest attempts are kept too; those in between are dropped and counted in ``attemptLogDropped``."""
ATTEMPT_LOG_MAX: Final = ATTEMPT_LOG_HEAD + ATTEMPT_LOG_TAIL
ATTEMPT_TEXT_LIMIT: Final = 1024
"""Longest ``errorDetails`` / ``responseBodyExcerpt`` of one attempt log entry, in characters."""


class AttemptLogEntry(BaseModel):
    """One HTTP attempt as the record's ``attemptLog`` keeps it (compact: absent values are left out)."""

    model_config = ConfigDict(frozen=True)

    attempt: int = Field(ge=1)
    timestamp: str
    category: Category
    statusCode: int | None = None
    responseTime: int = Field(ge=0)
    errorDetails: str | None = None
    retryAfterSeconds: int | None = None
    responseBodyExcerpt: str | None = None
    executionId: str | None = None


class NotificationRecord(BaseModel):
    """Everything the table holds about one notification; absent attributes are None (or empty)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    notificationId: str
    status: RecordStatus | None = None
    executionArn: str | None = None
    # the operator index (see the module docstring)
    opsStatus: RecordStatus | None = None
    opsSince: str | None = None
    # Deduplicate's claim
    claimedAt: str | None = None
    createdAt: str | None = None
    lastUpdatedAt: str | None = None
    targetHost: str | None = None
    targetMethod: HttpMethod | None = None
    eventType: str | None = None
    correlationId: str | None = None
    expiresAt: int | None = Field(default=None, description="epoch seconds; the table's TTL attribute")
    replayedAt: str | None = None
    leaseExpiresAt: int | None = Field(
        default=None,
        description="epoch seconds; set on an Express run's claim: after it, another run may take the claim over",
    )
    # the fast path handing over to the Standard workflow
    fastPathExecutionArn: str | None = None
    handedOverAt: str | None = None
    # the deliver step's attempt log
    attempts: int = 0
    lastDeliveryAttempt: str | None = None
    attemptLog: tuple[AttemptLogEntry, ...] = ()
    attemptLogDropped: int = Field(default=0, description="attempts dropped from the middle of attemptLog")
    successfulAttempt: AttemptLogEntry | None = Field(
        default=None,
        description="the attempt the receiver accepted, kept until SUCCESS is recorded, so a retried or "
        "taken-over run records it instead of sending again",
    )
    # the workflow's terminal writes
    deliveryResult: DeliveryOutcome | None = None
    deliveredAt: str | None = None
    failureReason: str | None = None
    errorName: str | None = None
    failedAtRedriveCount: int | None = None
    failedStep: str | None = Field(
        default=None, description="the state a FAILED run stopped in before delivering (Validate, Deduplicate)"
    )
    rejectedAt: str | None = None
    # a redrive reopening a FAILED record
    redriveCount: int | None = None
    reopenedAt: str | None = None
    # the reconciler: set when it closed a run that stopped outside the workflow's own writes
    reconciledAt: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> NotificationRecord:
        """Parse a resource-style item (``Table.get_item``: Decimals for numbers)."""
        return cls.model_validate(plain(item))

    @classmethod
    def from_typed_item(cls, item: Mapping[str, AttributeValue]) -> NotificationRecord:
        """Parse a low-level item (``client.get_item``: ``{"S": ...}`` values)."""
        return cls.model_validate(from_typed_item(item))

    @classmethod
    def typed_values(cls, **attributes: Any) -> dict[str, AttributeValue]:
        """Typed attribute values of record fields, checked against the field types.

        What the workflow's ``UpdateItem`` states and the data-access module write: an unknown
        name raises KeyError, a value of the wrong shape a pydantic ValidationError.
        """
        return {name: to_attribute_value(_dump(name, value)) for name, value in attributes.items()}

    @property
    def key(self) -> dict[str, AttributeValue]:
        """The record's primary key, typed."""
        return {TABLE_PARTITION_KEY: {"S": self.notificationId}}


def _dump(name: str, value: Any) -> Any:
    adapter = _adapter(name)
    return adapter.dump_python(adapter.validate_python(value), mode="json", exclude_none=name == "attemptLog")


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    field = NotificationRecord.model_fields.get(name)
    if field is None or field.annotation is None:
        raise KeyError(f"{name} is not an attribute of the notification record")
    return TypeAdapter(field.annotation)
