"""Typed models of the notification contract and the delivery outcome, shared by every step.

The notification contract is documented in README.md; the limits below are the single source of
those numbers. What each state sends a step and gets back lives in :mod:`lambdas.shared.contracts`,
one module per step.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Final
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


def notification_id_of_input(execution_input: str | None) -> str | None:
    """The ``notificationId`` an execution input (``contracts.validate.ExecutionInput`` as JSON) carries, or None.

    Readers of runs (the reconciler, the operator tools, the console) see the input as text, possibly
    truncated or hostile, so this never raises.
    """
    try:
        parsed = json.loads(execution_input or "")
    except ValueError:
        return None
    value = parsed.get("notificationId") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) and value else None
