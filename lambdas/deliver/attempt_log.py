"""Per-attempt history on the notification record: one compact entry and the attempts counter per try.

By the time this runs the HTTP request has already happened, so nothing here may
turn a delivered notification into an error: DynamoDB problems are logged and the
caller's estimate of the attempt number is used instead.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared.dal.notifications import AttemptCount, NotificationStore, RecordNotOwnedError
from lambdas.shared.errors import StorageError
from lambdas.shared.models import DeliveryOutcome
from lambdas.shared.observability import logger
from lambdas.shared.record import ATTEMPT_TEXT_LIMIT, AttemptLogEntry


def entry_for(outcome: DeliveryOutcome, attempt: int, execution_id: str) -> AttemptLogEntry:
    """The compact attemptLog entry of one attempt, its texts cut to ``ATTEMPT_TEXT_LIMIT`` characters."""
    return AttemptLogEntry(
        attempt=attempt,
        timestamp=outcome.timestamp,
        category=outcome.category,
        statusCode=outcome.statusCode,
        responseTime=outcome.responseTime,
        errorDetails=outcome.errorDetails[:ATTEMPT_TEXT_LIMIT] if outcome.errorDetails else None,
        retryAfterSeconds=outcome.retryAfterSeconds,
        responseBodyExcerpt=(outcome.responseBodyExcerpt[:ATTEMPT_TEXT_LIMIT] if outcome.responseBodyExcerpt else None),
        executionId=execution_id,
    )


def attempts_so_far(store: NotificationStore, notification_id: str, execution_id: str) -> AttemptCount | None:
    """The record's attempts counter before this attempt (it spans redrives); None unless this run owns it."""
    try:
        return store.attempt_count(notification_id, execution_id)
    except (StorageError, ClientError, BotoCoreError) as exc:
        logger.warning("could not read the attempts counter", extra={"error": _describe(exc)})
        return None


def record_attempt(
    store: NotificationStore,
    notification_id: str,
    execution_id: str,
    outcome: DeliveryOutcome,
    fallback_attempt: int,
    known: AttemptCount | None = None,
) -> int:
    """Append the attempt and bump ``attempts`` in one conditional write; returns the new count.

    The condition keeps a run that lost its claim from writing into another run's
    record. On any failure ``fallback_attempt`` is returned and the failure logged.
    """
    entry = entry_for(outcome, fallback_attempt, execution_id)
    try:
        return store.record_attempt(notification_id, execution_id, entry, known=known)
    except RecordNotOwnedError:
        logger.warning(
            "attempt not logged: the record is not PROCESSING under this execution",
            extra={"fallbackAttempt": fallback_attempt},
        )
    except (StorageError, ClientError, BotoCoreError) as exc:
        logger.warning(
            "attempt not logged: DynamoDB refused the update",
            extra={"error": _describe(exc), "fallbackAttempt": fallback_attempt},
        )
    return fallback_attempt


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
