"""Claiming a notification: the second layer of deduplication, one conditional write.

The first layer is the execution name (one run per notificationId for 90 days).
This layer protects against everything the name cannot see: a replay under a new
execution name, a manual start, or two runs racing for one id.
"""

from __future__ import annotations

from lambdas.shared.constants import RecordStatus
from lambdas.shared.dal.notifications import NotificationStore
from lambdas.shared.models import ClaimRequest, ClaimResult
from lambdas.shared.record import NotificationRecord


def claim(store: NotificationStore, request: ClaimRequest, now: str | None = None) -> ClaimResult:
    """Claim ``request.notificationId`` for this execution, or report why it is a duplicate.

    A notification that ended FAILED (or REJECTED) can be claimed again only when
    ``request.replay`` is set. Throttling surfaces as StorageError (the workflow retries it).
    """
    existing = store.claim(request, now=now)
    if existing is None:
        reason = "claimed for this execution" + (" (replay)" * request.replay)
        return ClaimResult(claimed=True, duplicate=False, reason=reason)
    return _duplicate(existing)


def _duplicate(existing: NotificationRecord) -> ClaimResult:
    execution = existing.executionArn
    reasons = {
        RecordStatus.SUCCESS: f"already delivered by {execution}",
        RecordStatus.PROCESSING: f"being delivered by {execution}",
        RecordStatus.FAILED: "ended FAILED; send it again as a replay to deliver it once more",
        RecordStatus.REJECTED: "was rejected; send a corrected message as a replay",
    }
    status = existing.status
    return ClaimResult(
        claimed=False,
        duplicate=True,
        reason=reasons.get(status, f"record exists with status {status}")
        if status
        else "record exists without a status",
        existingStatus=status.value if status else None,
        existingExecutionArn=execution,
    )
