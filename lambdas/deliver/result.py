"""The deliver Lambda's result: the outcome plus the DynamoDB-typed attributes the workflow writes as is."""

from __future__ import annotations

import json
from typing import Any, Final

from lambdas.shared.models import Category, DeliveryOutcome
from lambdas.shared.record import NotificationRecord

MAX_MESSAGE_CHARS: Final = 30_000
"""Error messages become the state's Cause, which Step Functions caps at 32 KB."""


def failure_reason(outcome: DeliveryOutcome) -> str:
    """One line for humans, e.g. ``HTTP 503 Service Unavailable after 3 attempts (SERVER_ERROR, retryable)``."""
    if outcome.statusCode is not None:
        what = f"HTTP {outcome.statusCode} {outcome.statusText or ''}".rstrip()
    else:
        what = (outcome.errorDetails or "no response")[:300]
    plural = "attempt" if outcome.attempt == 1 else "attempts"
    verdict = ""
    if outcome.category is not Category.SUCCESS:
        verdict = ", retryable" if outcome.retryEligible else ", permanent"
    return f"{what} after {outcome.attempt} {plural} ({outcome.category.value}{verdict})"


def to_item(outcome: DeliveryOutcome) -> dict[str, Any]:
    """Typed attribute values for RecordSuccess / RecordFailure (``deliveryResult`` as an ``M`` map)."""
    return NotificationRecord.typed_values(
        deliveryResult=outcome,
        attempts=outcome.attempt,
        lastDeliveryAttempt=outcome.timestamp,
        deliveredAt=outcome.httpResponseReceivedAt or outcome.timestamp,
        failureReason=failure_reason(outcome),
    )


def to_result(outcome: DeliveryOutcome) -> dict[str, Any]:
    """What the Lambda returns on success and puts, as JSON, in its error message on failure."""
    return {"outcome": outcome.model_dump(mode="json"), "item": to_item(outcome)}


def to_message(outcome: DeliveryOutcome, wait_seconds: int | None = None) -> str:
    """The error message of a failed attempt: the result as JSON, kept under the Cause limit.

    ``wait_seconds`` is set for a Retry-After answer: how long the workflow's Wait state sleeps.
    """
    extra = {} if wait_seconds is None else {"waitSeconds": wait_seconds}
    message = json.dumps({**to_result(outcome), **extra}, separators=(",", ":"))
    if len(message) > MAX_MESSAGE_CHARS:
        trimmed = outcome.model_copy(
            update={"responseBodyExcerpt": None, "errorDetails": (outcome.errorDetails or "")[:2000] or None}
        )
        message = json.dumps({**to_result(trimmed), **extra}, separators=(",", ":"))
    return message


def retry_after_wait(outcome: DeliveryOutcome, waits_so_far: int, max_waits: int, max_seconds: int) -> int | None:
    """Seconds to wait before the next attempt when the receiver sent Retry-After, else None.

    Honoured for retryable answers only, at most ``max_waits`` times a run, and clamped to
    [1 s, ``max_seconds``] so a receiver cannot park a run for days. Past the
    budget the normal back-off schedule takes over.
    """
    if outcome.success or not outcome.retryEligible or outcome.retryAfterSeconds is None:
        return None
    if waits_so_far >= max_waits:
        return None
    return max(1, min(outcome.retryAfterSeconds, max_seconds))
