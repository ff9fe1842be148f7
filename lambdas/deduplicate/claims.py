"""Claiming a notification: the second layer of deduplication, one conditional write.

The first layer is the execution name (one Standard run per notificationId for 90 days). The
fast path's Express runs have no such layer (Express does not deduplicate by name), so for them
this claim is the only exact one. It also protects against everything a name cannot see: a
replay under a new execution name, a manual start, or two runs racing for one id.

An Express run's claim carries a lease that ends once that run (and any invocation it started)
must be over; a later run, started by the SQS message the crashed run left on the queue, takes
the claim over and continues the attempt count. A Standard claim never expires.
"""

from __future__ import annotations

from lambdas.shared.constants import RecordStatus
from lambdas.shared.contracts.deduplicate import ClaimRequest, ClaimResult
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.record import NotificationRecord


def claim(store: NotificationStore, request: ClaimRequest, now: str | None = None) -> ClaimResult:
    """Claim ``request.notificationId`` for this execution, or report why it is a duplicate.

    A notification that ended FAILED (or REJECTED) can be claimed again only when
    ``request.replay`` is set. Throttling surfaces as StorageError (the workflow retries it).
    """
    attempt = store.claim(request, now=now)
    previous = attempt.previous
    if attempt.claimed:
        taken_over = (
            previous is not None
            and previous.status is RecordStatus.PROCESSING
            and previous.executionArn != request.executionId
        )
        reason = "claimed for this execution" + (" (replay)" * request.replay)
        if taken_over and previous is not None:
            reason = f"taken over from {previous.executionArn}"
        return ClaimResult(claimed=True, duplicate=False, reason=reason, takenOver=taken_over)
    return _duplicate(previous or NotificationRecord(notificationId=request.notificationId), request)


def _duplicate(existing: NotificationRecord, request: ClaimRequest) -> ClaimResult:
    execution = existing.executionArn
    handed_over = (
        existing.status is RecordStatus.PROCESSING
        and request.standardExecutionArn is not None
        and execution == request.standardExecutionArn
    )
    reasons = {
        RecordStatus.SUCCESS: f"already delivered by {execution}",
        RecordStatus.PROCESSING: f"being delivered by {execution}",
        RecordStatus.FAILED: "ended FAILED; send it again as a replay to deliver it once more",
        RecordStatus.REJECTED: "was rejected; send a corrected message as a replay",
    }
    status = existing.status
    reason = reasons.get(status, f"record exists with status {status}") if status else "record exists without a status"
    # A refused claim over a PROCESSING record with a lease: an Express run holds it and its lease has not ended
    # (an expired one would have been taken over).
    busy = status is RecordStatus.PROCESSING and existing.leaseExpiresAt is not None and not handed_over
    if handed_over:
        reason = f"handed over to {execution}; making sure that run exists"
    elif busy:
        reason = f"being delivered by {execution} until {existing.leaseExpiresAt} at the latest"
    return ClaimResult(
        claimed=False,
        duplicate=True,
        reason=reason,
        handedOver=handed_over,
        busy=busy,
        existingStatus=status.value if status else None,
        existingExecutionArn=execution,
    )
