"""The notifications table: every read and write of a notification record from ``lambdas/`` goes through here.

Writes are single conditional ``UpdateItem`` calls, so concurrent runs (a replay racing a
redrive, a retried task) can never interleave half an update: either the whole change applies
under its condition or nothing does. The workflow's own terminal writes are native
``UpdateItem`` states in the ASL; their typed values come from ``NotificationRecord.typed_values``.

Readers (the operator tooling) use :meth:`NotificationStore.get` or, with items they fetched
themselves, ``NotificationRecord.from_item`` / ``from_typed_item``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared import aws
from lambdas.shared.clock import lease_expiry, parse_iso, utc_iso
from lambdas.shared.constants import TABLE_PARTITION_KEY, RecordStatus
from lambdas.shared.dal.codec import AttributeValue, to_attribute_value
from lambdas.shared.errors import StorageError
from lambdas.shared.models import Category, ClaimRequest
from lambdas.shared.record import ATTEMPT_LOG_HEAD, ATTEMPT_LOG_MAX, AttemptLogEntry, NotificationRecord

THROTTLING_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
CONDITION_FAILED: Final = "ConditionalCheckFailedException"
_OWNED: Final = "executionArn = :exec AND #status = :processing"
_STATUS: Final = {"#status": "status"}
_ATTEMPT_WRITE_TRIES: Final = 4


class RecordNotOwnedError(Exception):
    """The record is not PROCESSING under this execution, so this run may not write to it."""


@dataclass(frozen=True)
class ClaimAttempt:
    """What one claim write found: whether it claimed, and the record before it (or the one that refused it)."""

    claimed: bool
    previous: NotificationRecord | None


@dataclass(frozen=True)
class AttemptCount:
    """The record's attempts counter, how many entries were dropped from its log, and an accepted attempt."""

    attempts: int
    dropped: int
    succeeded: AttemptLogEntry | None = None

    @property
    def log_size(self) -> int:
        """Entries in ``attemptLog``: the counter and the log only ever change together."""
        return max(0, self.attempts - self.dropped)


class NotificationStore:
    """Access to one notifications table through a low-level DynamoDB client (the shared one by default)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        """The DynamoDB client: the one given, else the process-wide one."""
        return self._client if self._client is not None else aws.client("dynamodb")

    def get(self, notification_id: str, *, consistent: bool = True) -> NotificationRecord | None:
        """The record of ``notification_id``, or None when there is none."""
        item = self._call("get_item", Key=_key(notification_id), ConsistentRead=consistent).get("Item")
        return NotificationRecord.from_typed_item(item) if item else None

    def claim(self, request: ClaimRequest, now: str | None = None) -> ClaimAttempt:
        """Claim the notification for ``request.executionId`` in one conditional write.

        Claimable: no record yet; PROCESSING under this same execution (a retried task); PROCESSING
        under an Express run whose lease has expired (it crashed or timed out: take it over, its
        attempt log and counter continue); for a Standard run handed over by the fast path,
        PROCESSING under that Express run; for a replay, a FAILED or REJECTED record.

        An Express claim (``request.lease``) carries ``leaseExpiresAt`` and no operator-index
        attributes (its SQS message guards it); a Standard claim sets ``opsStatus`` and never expires.
        """
        now = now or utc_iso()
        notification = request.notification
        express = request.lease is not None
        written: dict[str, Any] = {
            "status": RecordStatus.PROCESSING,
            "executionArn": request.executionId,
            "claimedAt": now,
            "lastUpdatedAt": now,
            "targetHost": notification.target.host,
            "targetMethod": notification.target.method,
            "expiresAt": request.expiresAt,
            "eventType": notification.eventType,
            "correlationId": notification.correlationId,
        }
        removed = ["leaseExpiresAt"] if not express else ["opsStatus", "opsSince"]
        if request.lease is not None:
            written["leaseExpiresAt"] = lease_expiry(request.lease.startedAt, request.lease.seconds)
        else:
            written["opsStatus"] = RecordStatus.PROCESSING
            written["opsSince"] = now
        if request.replay:
            written["replayedAt"] = now
            removed += ["successfulAttempt", "fastPathExecutionArn", "handedOverAt"]
        written = {name: value for name, value in written.items() if value is not None}
        values = {f":{name}": value for name, value in NotificationRecord.typed_values(**written).items()}
        names = {f"#{name}": name for name in [*written, *removed]}
        sets = [f"#{name} = :{name}" for name in written]
        sets.append("createdAt = if_not_exists(createdAt, :claimedAt)")
        values[":nowEpoch"] = to_attribute_value(int(parse_iso(now).timestamp()))
        clauses = [
            f"attribute_not_exists({TABLE_PARTITION_KEY})",
            "(executionArn = :executionArn AND #status = :status)",
            "(#status = :status AND #leaseExpiresAt < :nowEpoch)",
        ]
        names["#leaseExpiresAt"] = "leaseExpiresAt"
        if request.handedOverBy and not express:
            clauses.append("(executionArn = :handedOverBy AND #status = :status)")
            values[":handedOverBy"] = {"S": request.handedOverBy}
        if request.replay:
            clauses.append("#status IN (:failed, :rejected)")
            values[":failed"] = {"S": RecordStatus.FAILED}
            values[":rejected"] = {"S": RecordStatus.REJECTED}
        update = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(f"#{name}" for name in removed)
        try:
            response = self._call(
                "update_item",
                Key=_key(request.notificationId),
                UpdateExpression=update,
                ConditionExpression=" OR ".join(clauses),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailedError as refused:
            if refused.item:
                return ClaimAttempt(claimed=False, previous=NotificationRecord.from_typed_item(refused.item))
            existing = self.get(request.notificationId) or NotificationRecord(notificationId=request.notificationId)
            return ClaimAttempt(claimed=False, previous=existing)
        old = response.get("Attributes")
        return ClaimAttempt(claimed=True, previous=NotificationRecord.from_typed_item(old) if old else None)

    def attempt_count(self, notification_id: str, execution_id: str) -> AttemptCount | None:
        """The attempts counter before the next attempt (it spans redrives); None unless this run owns the record.

        Also says whether an earlier invocation of this run already had an attempt accepted
        (``successfulAttempt``), so the caller records that instead of sending again.
        """
        item = self._call(
            "get_item",
            Key=_key(notification_id),
            ProjectionExpression="attempts, attemptLogDropped, executionArn, successfulAttempt",
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        record = NotificationRecord.from_typed_item({**item, **_key(notification_id)})
        if record.executionArn != execution_id:
            return None
        return AttemptCount(record.attempts, record.attemptLogDropped, record.successfulAttempt)

    def record_attempt(
        self,
        notification_id: str,
        execution_id: str,
        entry: AttemptLogEntry,
        *,
        known: AttemptCount | None = None,
        now: str | None = None,
    ) -> int:
        """Log one attempt and bump ``attempts`` in one conditional write; returns the new count.

        ``attemptLog`` keeps the first ``ATTEMPT_LOG_HEAD`` entries and the latest ones up to
        ``ATTEMPT_LOG_MAX`` in all: once full, each write removes the oldest entry after the head,
        appends the new one and adds to ``attemptLogDropped``, all in the same ``UpdateItem``.
        Each write is conditional on the log size it assumes, so concurrent writers cannot
        push the log past the bound: a writer whose assumption went stale retries with the
        size the refusal returned. ``known`` (from :meth:`attempt_count`) saves that retry.

        Raises RecordNotOwnedError when the record is not PROCESSING under ``execution_id``.
        """
        typed_entry = NotificationRecord.typed_values(attemptLog=[entry])["attemptLog"]
        accepted = entry.category is Category.SUCCESS
        mark = ", successfulAttempt = :accepted" if accepted else ""
        values: dict[str, AttributeValue] = {
            ":exec": {"S": execution_id},
            ":processing": {"S": RecordStatus.PROCESSING},
            ":ts": {"S": entry.timestamp},
            ":now": {"S": now or utc_iso()},
            ":one": {"N": "1"},
        }
        size = known.log_size if known is not None else 0
        for _ in range(_ATTEMPT_WRITE_TRIES):
            if size < ATTEMPT_LOG_MAX:
                update = (
                    "SET attemptLog = list_append(if_not_exists(attemptLog, :empty), :entry), "
                    f"lastDeliveryAttempt = :ts, lastUpdatedAt = :now{mark} ADD attempts :one"
                )
                condition = f"{_OWNED} AND (attribute_not_exists(attemptLog) OR size(attemptLog) < :max)"
                extra = {":empty": {"L": []}, ":entry": typed_entry, ":max": to_attribute_value(ATTEMPT_LOG_MAX)}
            else:
                # Drop entries right after the head so the log ends at ATTEMPT_LOG_MAX with the new one
                # appended (an index past the end appends); every index refers to the log before the update.
                drop = size + 1 - ATTEMPT_LOG_MAX
                removed = ", ".join(f"attemptLog[{ATTEMPT_LOG_HEAD + offset}]" for offset in range(drop))
                update = (
                    f"REMOVE {removed} SET attemptLog[{size}] = :last, lastDeliveryAttempt = :ts, lastUpdatedAt = :now"
                    f"{mark} ADD attempts :one, attemptLogDropped :dropped"
                )
                condition = f"{_OWNED} AND size(attemptLog) = :size"
                extra = {
                    ":last": typed_entry["L"][0],
                    ":size": to_attribute_value(size),
                    ":dropped": to_attribute_value(drop),
                }
            if accepted:
                extra[":accepted"] = typed_entry["L"][0]
            try:
                response = self._call(
                    "update_item",
                    Key=_key(notification_id),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=_STATUS,
                    ExpressionAttributeValues={**values, **extra},
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except _ConditionFailedError as refused:
                current = NotificationRecord.from_typed_item(refused.item) if refused.item else None
                if current is None or current.executionArn != execution_id or current.status != RecordStatus.PROCESSING:
                    raise RecordNotOwnedError(notification_id) from None
                size = len(refused.item.get("attemptLog", {}).get("L", []))
                continue
            return int(response["Attributes"]["attempts"]["N"])
        raise StorageError("the attempt log kept changing under this write; attempt not logged")

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call on this table; throttling -> StorageError, a refused condition -> _ConditionFailedError."""
        try:
            response: dict[str, Any] = getattr(self.client, operation)(TableName=self.table_name, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == CONDITION_FAILED:
                raise _ConditionFailedError(exc.response.get("Item") or {}) from None
            if code in THROTTLING_CODES:
                raise StorageError(f"DynamoDB {code} on {operation}") from exc
            raise
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB unreachable on {operation} ({type(exc).__name__})") from exc
        return response


class _ConditionFailedError(Exception):
    """A conditional write was refused; ``item`` is the record as it was (empty when it does not exist)."""

    def __init__(self, item: dict[str, AttributeValue]) -> None:
        super().__init__("condition failed")
        self.item = item


def _key(notification_id: str) -> dict[str, AttributeValue]:
    return {TABLE_PARTITION_KEY: {"S": notification_id}}
