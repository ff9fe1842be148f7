"""Per-attempt history on the notification record: one compact entry and the attempts counter per try.

By the time this runs the HTTP request has already happened, so nothing here may
turn a delivered notification into an error: DynamoDB problems are logged and the
caller's estimate of the attempt number is used instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared.clock import utc_iso
from lambdas.shared.constants import TABLE_PARTITION_KEY, RecordStatus
from lambdas.shared.models import DeliveryOutcome
from lambdas.shared.observability import logger

EXCERPT_LIMIT: Final = 1024
_UPDATE_EXPRESSION: Final = (
    "SET attemptLog = list_append(if_not_exists(attemptLog, :empty), :entry), "
    "lastDeliveryAttempt = :ts, lastUpdatedAt = :now ADD attempts :one"
)
_CONDITION: Final = "executionArn = :exec AND #status = :processing"


@lru_cache(maxsize=8)
def _table(table_name: str) -> Any:
    """One resource per table name, reused by warm invocations."""
    return boto3.resource("dynamodb").Table(table_name)


def clear_cache() -> None:
    """Forget cached clients (tests switch regions, endpoints and mocks)."""
    _table.cache_clear()


def entry_for(outcome: DeliveryOutcome, attempt: int, execution_id: str) -> dict[str, Any]:
    """The compact attemptLog entry of one attempt; absent values are left out."""
    entry = {
        "attempt": attempt,
        "timestamp": outcome.timestamp,
        "category": outcome.category.value,
        "statusCode": outcome.statusCode,
        "responseTime": outcome.responseTime,
        "errorDetails": outcome.errorDetails,
        "retryAfterSeconds": outcome.retryAfterSeconds,
        "responseBodyExcerpt": outcome.responseBodyExcerpt[:EXCERPT_LIMIT] if outcome.responseBodyExcerpt else None,
        "executionId": execution_id,
    }
    return {key: value for key, value in entry.items() if value is not None}


def attempts_so_far(table_name: str, notification_id: str, execution_id: str) -> int | None:
    """The record's attempts counter before this attempt (it spans redrives); None unless this run owns it."""
    try:
        item = (
            _table(table_name)
            .get_item(
                Key={TABLE_PARTITION_KEY: notification_id},
                ProjectionExpression="attempts, executionArn",
                ConsistentRead=True,
            )
            .get("Item")
        )
    except (ClientError, BotoCoreError) as exc:
        logger.warning("could not read the attempts counter", extra={"error": _error_code(exc)})
        return None
    if item is None or item.get("executionArn") != execution_id:
        return None
    return int(item.get("attempts", 0))


def record_attempt(
    table_name: str,
    notification_id: str,
    execution_id: str,
    outcome: DeliveryOutcome,
    fallback_attempt: int,
) -> int:
    """Append the attempt and bump ``attempts`` in one UpdateItem; returns the new count.

    The condition keeps a run that lost its claim from writing into another run's
    record. On any failure ``fallback_attempt`` is returned and the failure logged.
    """
    entry = entry_for(outcome, fallback_attempt, execution_id)
    try:
        response = _table(table_name).update_item(
            Key={TABLE_PARTITION_KEY: notification_id},
            UpdateExpression=_UPDATE_EXPRESSION,
            ConditionExpression=_CONDITION,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":empty": [],
                ":entry": [entry],
                ":ts": outcome.timestamp,
                ":now": utc_iso(),
                ":one": 1,
                ":exec": execution_id,
                ":processing": RecordStatus.PROCESSING,
            },
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as exc:
        if _error_code(exc) == "ConditionalCheckFailedException":
            logger.warning(
                "attempt not logged: the record is not PROCESSING under this execution",
                extra={"fallbackAttempt": fallback_attempt},
            )
        else:
            logger.warning(
                "attempt not logged: DynamoDB refused the update",
                extra={"error": _error_code(exc), "fallbackAttempt": fallback_attempt},
            )
        return fallback_attempt
    except BotoCoreError as exc:
        logger.warning(
            "attempt not logged: DynamoDB unreachable",
            extra={"error": type(exc).__name__, "fallbackAttempt": fallback_attempt},
        )
        return fallback_attempt
    return int(response["Attributes"]["attempts"])


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
