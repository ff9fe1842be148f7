"""The notifications table: every read and write of a notification record from ``lambdas/`` goes through here.

Writes are single conditional ``UpdateItem`` calls, so concurrent runs (a replay racing a
redrive, a retried task) can never interleave half an update: either the whole change applies
under its condition or nothing does. The workflow's own terminal writes are native
``UpdateItem`` states in the ASL; their typed values come from ``NotificationRecord.typed_values``.

Readers (the operator tooling) use :meth:`NotificationStore.get`, :func:`get_many` and the operator-index
queries (:func:`query_ops`, :func:`query_ops_page`) at the end of this module; the reconciler closes runs that
stopped outside the workflow's writes with :func:`close_stopped_run` and reopens them for a redrive with
:func:`reopen_closed_run`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from lambdas.shared.clock import lease_expiry, parse_iso, utc_iso
from lambdas.shared.constants import (
    OPS_INDEX_NAME,
    OPS_SINCE_ATTRIBUTE,
    OPS_STATUS_ATTRIBUTE,
    TABLE_PARTITION_KEY,
    RecordStatus,
)
from lambdas.shared.dal.codec import AttributeValue, to_attribute_value
from lambdas.shared.dal.table import CONDITION_FAILED, TableAccess, error_code, storage_errors
from lambdas.shared.errors import StorageError
from lambdas.shared.models import Category
from lambdas.shared.record import ATTEMPT_LOG_HEAD, ATTEMPT_LOG_MAX, AttemptLogEntry, NotificationRecord

if TYPE_CHECKING:
    from lambdas.shared.contracts.deduplicate import ClaimRequest

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


class NotificationStore(TableAccess):
    """Access to one notifications table through a low-level DynamoDB client (the shared one by default)."""

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
            return super()._call(operation, **kwargs)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                raise _ConditionFailedError(exc.response.get("Item") or {}) from None
            raise


class _ConditionFailedError(Exception):
    """A conditional write was refused; ``item`` is the record as it was (empty when it does not exist)."""

    def __init__(self, item: dict[str, AttributeValue]) -> None:
        super().__init__("condition failed")
        self.item = item


def _key(notification_id: str) -> dict[str, AttributeValue]:
    return {TABLE_PARTITION_KEY: {"S": notification_id}}


# -- operator reads (the sparse operator index) and the reconciler's writes ------------------------------------------
#
# Appended for the operator tooling and the reconciler; the workflow's writers above are unchanged. Every query
# here goes through the sparse index OPS_INDEX_NAME (partition opsStatus, sort opsSince), so its cost grows with
# what it returns, never with the table.

OPS_PAGE_SIZE: Final = 100
"""Items one index query asks for when the caller gives no smaller limit."""
BATCH_GET_MAX_KEYS: Final = 100
"""BatchGetItem's limit of keys per request."""
_BATCH_GET_TRIES: Final = 5
_OPS_NAMES: Final = {"#ops": OPS_STATUS_ATTRIBUTE, "#since": OPS_SINCE_ATTRIBUTE}


@dataclass(frozen=True)
class OpsPage:
    """One page of the operator index: records (with the index's projected attributes) and what reading them cost."""

    records: tuple[NotificationRecord, ...]
    next_key: dict[str, AttributeValue] | None
    items_read: int
    """Items DynamoDB evaluated for this page (ScannedCount): what a read is billed on."""
    read_units: float | None
    """Read capacity the query consumed, when DynamoDB reported it."""


def query_ops_page(
    store: NotificationStore,
    status: RecordStatus,
    *,
    since: str | None = None,
    before: str | None = None,
    newest_first: bool = True,
    limit: int = OPS_PAGE_SIZE,
    start_key: dict[str, AttributeValue] | None = None,
) -> OpsPage:
    """One page of the records in ``status`` whose ``opsSince`` is at or after ``since`` and before ``before``.

    ``since`` and ``before`` are record timestamps (``utc_iso``); ``start_key`` continues from a page's
    ``next_key``. The page holds at most ``limit`` records, newest first by default.
    """
    condition = "#ops = :status"
    values: dict[str, AttributeValue] = {":status": {"S": RecordStatus(status).value}}
    if since is not None and before is not None:
        condition += " AND #since BETWEEN :since AND :before"
    elif since is not None:
        condition += " AND #since >= :since"
    elif before is not None:
        condition += " AND #since < :before"
    if since is not None:
        values[":since"] = {"S": since}
    if before is not None:
        values[":before"] = {"S": before}
    kwargs: dict[str, Any] = {
        "IndexName": OPS_INDEX_NAME,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": _OPS_NAMES if "#since" in condition else {"#ops": OPS_STATUS_ATTRIBUTE},
        "ExpressionAttributeValues": values,
        "ScanIndexForward": not newest_first,
        "Limit": max(1, limit),
        "ReturnConsumedCapacity": "TOTAL",
    }
    if start_key:
        kwargs["ExclusiveStartKey"] = start_key
    response = store._call("query", **kwargs)
    records = tuple(NotificationRecord.from_typed_item(item) for item in response.get("Items", []))
    # An entry whose status moved on without the index attributes following (a writer that does not keep
    # them) is stale: it is not a record in ``status``.
    records = tuple(record for record in records if record.status is None or record.status == status)
    if before is not None and since is not None:  # BETWEEN includes its upper bound; "before" does not
        records = tuple(record for record in records if (record.opsSince or "") < before)
    capacity = (response.get("ConsumedCapacity") or {}).get("CapacityUnits")
    return OpsPage(
        records=records,
        next_key=response.get("LastEvaluatedKey") or None,
        items_read=int(response.get("ScannedCount", len(records))),
        read_units=float(capacity) if capacity is not None else None,
    )


def query_ops(
    store: NotificationStore,
    status: RecordStatus,
    *,
    since: str | None = None,
    before: str | None = None,
    newest_first: bool = True,
    limit: int | None = None,
) -> Iterator[NotificationRecord]:
    """Every record in ``status`` in the window (at most ``limit``), page by page as the caller consumes them."""
    remaining = limit
    start_key: dict[str, AttributeValue] | None = None
    while remaining is None or remaining > 0:
        size = OPS_PAGE_SIZE if remaining is None else min(OPS_PAGE_SIZE, remaining)
        page = query_ops_page(
            store, status, since=since, before=before, newest_first=newest_first, limit=size, start_key=start_key
        )
        yield from page.records
        if remaining is not None:
            remaining -= len(page.records)
        if page.next_key is None:
            return
        start_key = page.next_key


def get_many(
    store: NotificationStore, notification_ids: Iterable[str], *, attributes: Sequence[str] | None = None
) -> dict[str, NotificationRecord]:
    """The records of ``notification_ids`` that exist, by id: BatchGetItem, 100 keys a request.

    ``attributes`` limits what is read (the key is always included); keys DynamoDB leaves unprocessed
    (throttling) are asked for again a few times with a growing pause, then StorageError.
    """
    wanted = list(dict.fromkeys(notification_ids))
    found: dict[str, NotificationRecord] = {}
    request: dict[str, Any] = {}
    if attributes:
        names = dict.fromkeys([TABLE_PARTITION_KEY, *attributes])
        request["ProjectionExpression"] = ", ".join(f"#a{index}" for index in range(len(names)))
        request["ExpressionAttributeNames"] = {f"#a{index}": name for index, name in enumerate(names)}
    for offset in range(0, len(wanted), BATCH_GET_MAX_KEYS):
        keys = [_key(notification_id) for notification_id in wanted[offset : offset + BATCH_GET_MAX_KEYS]]
        for attempt in range(_BATCH_GET_TRIES):
            with storage_errors("batch_get_item"):
                response = store.client.batch_get_item(RequestItems={store.table_name: {**request, "Keys": keys}})
            for item in response.get("Responses", {}).get(store.table_name, []):
                record = NotificationRecord.from_typed_item(item)
                found[record.notificationId] = record
            keys = response.get("UnprocessedKeys", {}).get(store.table_name, {}).get("Keys", [])
            if not keys:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise StorageError("DynamoDB kept leaving keys of batch_get_item unprocessed")
    return found


def close_stopped_run(
    store: NotificationStore,
    notification_id: str,
    execution_id: str,
    *,
    error_name: str,
    reason: str,
    redrive_count: int,
    stopped_at: str | None = None,
    now: str | None = None,
    reopened_at: str | None = None,
) -> bool:
    """FAILED, with ``error_name`` and ``reason``, for a run that stopped while the record was still PROCESSING.

    For runs that ended outside the workflow's own terminal writes (aborted, timed out, failed in a state
    with no Catch). Conditional on PROCESSING under ``execution_id`` (and, with ``reopened_at``, on that
    reopening still being the current one), so it never overwrites what a run wrote. Sets ``reconciledAt``,
    which lets a redrive reopen the record (:func:`reopen_closed_run`). True when it wrote.
    """
    now = now or utc_iso()
    written = {
        "status": RecordStatus.FAILED,
        "errorName": error_name,
        "failureReason": reason,
        "failedAtRedriveCount": redrive_count,
        "lastUpdatedAt": now,
        "reconciledAt": now,
        OPS_STATUS_ATTRIBUTE: RecordStatus.FAILED,
        OPS_SINCE_ATTRIBUTE: stopped_at or now,
    }
    values = {f":{name}": value for name, value in NotificationRecord.typed_values(**written).items()}
    values.update({":exec": {"S": execution_id}, ":processing": {"S": RecordStatus.PROCESSING}})
    condition = _OWNED
    if reopened_at is not None:
        condition += " AND reopenedAt = :reopenedAt"
        values[":reopenedAt"] = {"S": reopened_at}
    return _conditional_update(
        store,
        notification_id,
        update="SET " + ", ".join(f"#{name} = :{name}" for name in written),
        condition=condition,
        names={**{f"#{name}": name for name in written}, **_STATUS},
        values=values,
    )


def reopen_closed_run(
    store: NotificationStore, notification_id: str, execution_id: str, *, redrive_count: int, now: str | None = None
) -> NotificationRecord | None:
    """PROCESSING again, for a redrive of a run :func:`close_stopped_run` closed; the reopened record, or None.

    A redrive resumes such a run in the state it stopped in, whose writes expect PROCESSING under the same
    execution; this is the record's side of that (the workflow's ReopenForRedrive does it for runs that
    failed in the FailureGate). Only a record still FAILED by the reconciler under ``execution_id`` reopens.
    """
    now = now or utc_iso()
    written = {
        "status": RecordStatus.PROCESSING,
        OPS_STATUS_ATTRIBUTE: RecordStatus.PROCESSING,
        OPS_SINCE_ATTRIBUTE: now,
        "redriveCount": redrive_count,
        "reopenedAt": now,
        "lastUpdatedAt": now,
    }
    values = {f":{name}": value for name, value in NotificationRecord.typed_values(**written).items()}
    values.update({":exec": {"S": execution_id}, ":failed": {"S": RecordStatus.FAILED}})
    try:
        response = store._call(
            "update_item",
            Key=_key(notification_id),
            UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in written) + " REMOVE reconciledAt",
            ConditionExpression="#status = :failed AND executionArn = :exec AND attribute_exists(reconciledAt)",
            ExpressionAttributeNames={f"#{name}": name for name in written},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    except _ConditionFailedError:
        return None
    return NotificationRecord.from_typed_item(response["Attributes"])


def _conditional_update(
    store: NotificationStore,
    notification_id: str,
    *,
    update: str,
    condition: str,
    names: dict[str, str],
    values: dict[str, AttributeValue],
) -> bool:
    try:
        store._call(
            "update_item",
            Key=_key(notification_id),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except _ConditionFailedError:
        return False
    return True
