"""Typed models: the notification contract, the delivery outcome, each state's input and output.

The notification contract is documented in README.md; the limits below are the
single source of those numbers.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_NOTIFICATION_BYTES: Final = 200 * 1024
"""Serialized notification bound: keeps the whole Step Functions state under 256 KiB."""
MAX_ID_LENGTH: Final = 128
MAX_URL_LENGTH: Final = 2048
MAX_HEADERS: Final = 20
MAX_HEADER_NAME_LENGTH: Final = 64
MAX_HEADER_VALUE_LENGTH: Final = 1024
MAX_HEADERS_BYTES: Final = 8 * 1024
MAX_LABEL_LENGTH: Final = 256
MAX_METADATA_BYTES: Final = 4 * 1024
MAX_NESTING_DEPTH: Final = 32
"""Nested arrays/objects in a message body, the outermost object counting as 1 (as DynamoDB limits maps).

Deeper bodies crash JSON parsers and serializers that recurse (Python's, pydantic's, Step Functions')."""


class HttpMethod(StrEnum):
    """Methods a target may ask for; webhooks carry a body, so only POST and PUT."""

    POST = "POST"
    PUT = "PUT"


class Target(BaseModel):
    """Where and how the notification is delivered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    method: HttpMethod = HttpMethod.POST
    headers: dict[str, str] = Field(default_factory=dict)

    @property
    def host(self) -> str:
        """Lower-cased host name of the URL ('' when it has none)."""
        try:
            return (urlsplit(self.url).hostname or "").lower()
        except ValueError:
            return ""


class Notification(BaseModel):
    """One notification as internal systems put it on the queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notificationId: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    target: Target
    payload: Any = Field(...)
    eventType: str | None = Field(default=None, min_length=1, max_length=MAX_LABEL_LENGTH)
    correlationId: str | None = Field(default=None, min_length=1, max_length=MAX_LABEL_LENGTH)
    metadata: dict[str, Any] | None = None

    @field_validator("notificationId", "eventType", "correlationId")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and (not value.isprintable() or value != value.strip()):
            raise ValueError("must be printable text without leading or trailing spaces")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
            raise ValueError(f"must serialize to at most {MAX_METADATA_BYTES} bytes")
        return value


class Category(StrEnum):
    """How a delivery attempt ended, as recorded in ``deliveryResult.category``."""

    SUCCESS = "SUCCESS"
    CLIENT_ERROR = "CLIENT_ERROR"
    SERVER_ERROR = "SERVER_ERROR"
    TIMEOUT = "TIMEOUT"
    CONNECTION_ERROR = "CONNECTION_ERROR"


class DeliveryOutcome(BaseModel):
    """One delivery attempt's result, as a value (the seed system's ``deliveryResult`` shape)."""

    model_config = ConfigDict(frozen=True)

    success: bool
    retryEligible: bool
    category: Category
    statusCode: int | None = None
    statusText: str | None = None
    responseTime: int = Field(ge=0, description="milliseconds from request start to response end")
    errorDetails: str | None = None
    timestamp: str = Field(description="ISO 8601 UTC time the attempt started")
    correlationId: str | None = None
    httpResponseReceivedAt: str | None = None
    attempt: int = Field(default=1, ge=1)
    retryAfterSeconds: int | None = None
    responseBodyExcerpt: str | None = None


class ExecutionInput(BaseModel):
    """What ingest passes to either workflow; ``notification`` is the parsed body, unvalidated.

    A Standard run started by the fast path gets the same fields (and, for a hand-over, the
    Express run's first outcome besides them, which Validate does not read).
    """

    model_config = ConfigDict(extra="allow")

    notificationId: str
    notification: Any = None
    rawBody: str | None = None
    parseError: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)
    replay: bool = False
    expiresAt: int = Field(description="epoch seconds after which DynamoDB may expire the record")
    fastPathExecutionArn: str | None = Field(
        default=None, description="the Express run that started this Standard run (None when ingest did)"
    )


def notification_id_of_input(execution_input: str | None) -> str | None:
    """The ``notificationId`` an execution input (an :class:`ExecutionInput` as JSON) carries, or None.

    Readers of runs (the reconciler, the operator tools, the console) see the input as text, possibly
    truncated or hostile, so this never raises.
    """
    try:
        parsed = json.loads(execution_input or "")
    except ValueError:
        return None
    value = parsed.get("notificationId") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) and value else None


class RetryAfterCount(BaseModel):
    """Retry-After waits honoured so far in this run (the workflow adds the seconds of the next one)."""

    waits: int = Field(default=0, ge=0)


class ValidatedInput(BaseModel):
    """Validate's output: the state the rest of either workflow works on.

    Besides the normalized notification it starts the run's Retry-After count and carries the
    fast-path link, so no state downstream needs a Pass state to initialise them.
    """

    notificationId: str
    notification: Notification
    source: dict[str, Any] = Field(default_factory=dict)
    replay: bool = False
    expiresAt: int
    retryAfter: RetryAfterCount = Field(default_factory=RetryAfterCount)
    fastPathExecutionArn: str | None = None


class ClaimLease(BaseModel):
    """How long an Express run's claim holds: until its run (and any invocation it started) must be over."""

    seconds: int = Field(ge=1, description="from the run's start; the definition renders it from the timeouts")
    startedAt: str = Field(description="$$.Execution.StartTime of the claiming run")


class ClaimRequest(BaseModel):
    """Deduplicate's input, from either workflow.

    An Express run sends ``lease`` (its claim expires, so a later run can take it over after a
    crash) and ``standardExecutionArn`` (the run a hand-over would start). A Standard run sends
    ``handedOverBy``: the Express run that handed it over, whose claim it may take.
    """

    notificationId: str
    executionId: str
    replay: bool = False
    expiresAt: int
    notification: Notification
    lease: ClaimLease | None = None
    standardExecutionArn: str | None = None
    handedOverBy: str | None = None


class ClaimResult(BaseModel):
    """Deduplicate's output: whether this execution owns the notification."""

    claimed: bool
    duplicate: bool
    reason: str
    handedOver: bool = Field(
        default=False, description="the record is PROCESSING under the Standard run a hand-over starts"
    )
    takenOver: bool = Field(default=False, description="claimed from a crashed Express run whose lease expired")
    busy: bool = Field(default=False, description="another Express run holds a live claim (its lease has not ended)")
    existingStatus: str | None = None
    existingExecutionArn: str | None = None


class DeliverRequest(BaseModel):
    """Deliver's input; ``retryCount`` is ``$$.State.RetryCount`` of the Deliver state."""

    notification: Notification
    executionId: str
    retryCount: int = Field(default=0, ge=0)
    retryAfterWaits: int = Field(default=0, ge=0, description="Retry-After waits already honoured in this run")
    maxRetryAfterWaits: int = Field(default=0, ge=0, description="how many the workflow honours at most")
    maxRetryAfterSeconds: int = Field(
        ge=1, description="longest single Retry-After wait honoured; the definition sets it (its one home)"
    )


class StateError(BaseModel):
    """The ``{Error, Cause}`` object a Catch writes into the state."""

    Error: str
    Cause: str | None = None


class GateRequest(BaseModel):
    """Failure gate input: live redrive count vs. the count when the failure was recorded."""

    notificationId: str
    executionId: str
    redriveCount: int = Field(ge=0)
    failedAtRedriveCount: int = Field(ge=0)
    error: StateError


class GateDecision(BaseModel):
    """Failure gate output on a redrive: reopen the notification and deliver again."""

    reopen: Literal[True] = True
    redriveCount: int
