"""Claiming a notification: the second layer of deduplication, one conditional write.

The first layer is the execution name (one run per notificationId for 90 days).
This layer protects against everything the name cannot see: a replay under a new
execution name, a manual start, or two runs racing for one id.
"""

from __future__ import annotations

from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas.shared.clock import utc_iso
from lambdas.shared.constants import TABLE_PARTITION_KEY, RecordStatus
from lambdas.shared.errors import StorageError
from lambdas.shared.models import ClaimRequest, ClaimResult

THROTTLING_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def _claim_expression(replay: bool) -> str:
    mine = f"(executionArn = :exec AND #status = :{RecordStatus.PROCESSING.lower()})"
    condition = f"attribute_not_exists({TABLE_PARTITION_KEY}) OR {mine}"
    if replay:
        condition += f" OR #status IN (:{RecordStatus.FAILED.lower()}, :{RecordStatus.REJECTED.lower()})"
    return condition


def claim(table: Any, request: ClaimRequest, now: str | None = None) -> ClaimResult:
    """Claim ``request.notificationId`` for this execution, or report why it is a duplicate.

    ``table`` is a boto3 DynamoDB Table resource. A notification that ended FAILED
    (or REJECTED) can be claimed again only when ``request.replay`` is set.
    """
    now = now or utc_iso()
    notification = request.notification
    values: dict[str, Any] = {
        ":processing": RecordStatus.PROCESSING,
        ":exec": request.executionId,
        ":now": now,
        ":host": notification.target.host,
        ":method": notification.target.method.value,
        ":expiresAt": request.expiresAt,
    }
    sets = [
        "#status = :processing",
        "executionArn = :exec",
        "claimedAt = :now",
        "lastUpdatedAt = :now",
        "createdAt = if_not_exists(createdAt, :now)",
        "targetHost = :host",
        "targetMethod = :method",
        "expiresAt = :expiresAt",
    ]
    for field in ("eventType", "correlationId"):
        value = getattr(notification, field)
        if value is not None:
            values[f":{field}"] = value
            sets.append(f"{field} = :{field}")
    if request.replay:
        values[":failed"] = RecordStatus.FAILED
        values[":rejected"] = RecordStatus.REJECTED
        sets.append("replayedAt = :now")
    try:
        table.update_item(
            Key={TABLE_PARTITION_KEY: request.notificationId},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=_claim_expression(request.replay),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            existing = exc.response.get("Item") or _read(table, request.notificationId)
            return _duplicate(existing)
        if code in THROTTLING_CODES:
            raise StorageError(f"DynamoDB {code} while claiming the notification") from exc
        raise
    return ClaimResult(
        claimed=True, duplicate=False, reason="claimed for this execution" + (" (replay)" * request.replay)
    )


def _read(table: Any, notification_id: str) -> dict[str, Any]:
    response = table.get_item(Key={TABLE_PARTITION_KEY: notification_id}, ConsistentRead=True)
    return response.get("Item", {})


def _plain(value: Any) -> Any:
    """Unwrap a low-level attribute value ({"S": ...}) when the error response carries one."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return value


def _duplicate(existing: dict[str, Any]) -> ClaimResult:
    status = _plain(existing.get("status"))
    execution = _plain(existing.get("executionArn"))
    reasons = {
        RecordStatus.SUCCESS: f"already delivered by {execution}",
        RecordStatus.PROCESSING: f"being delivered by {execution}",
        RecordStatus.FAILED: "ended FAILED; send it again as a replay to deliver it once more",
        RecordStatus.REJECTED: "was rejected; send a corrected message as a replay",
    }
    return ClaimResult(
        claimed=False,
        duplicate=True,
        reason=reasons.get(status, f"record exists with status {status}"),
        existingStatus=status,
        existingExecutionArn=execution,
    )
